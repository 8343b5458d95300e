package jetstream_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// runServer starts a JetStream server with the given options on a random
// loopback port.
func runServer(t *testing.T, o server.Options) string {
	t.Helper()
	o.JetStream, o.StoreDir, o.Host, o.Port, o.NoLog, o.NoSigs = true, t.TempDir(), "127.0.0.1", -1, true, true
	ns, err := server.NewServer(&o)
	require.NoError(t, err)
	ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// open connects with c and returns the error, closing any connection.
func open(t *testing.T, url string, c jetstream.Client) error {
	t.Helper()
	conn, err := jetstream.Open(context.Background(), jetstream.Options{URL: url, Client: c, ConnectTimeout: 3 * time.Second},
		zerolog.New(zerolog.NewTestWriter(t)))
	if err == nil {
		conn.Close()
	}
	return err
}

func TestOpenAuthenticates(t *testing.T) {
	t.Parallel()
	t.Run("user and password", func(t *testing.T) {
		t.Parallel()
		url := runServer(t, server.Options{Username: "webhookd", Password: "pw-8f3a"})
		require.NoError(t, open(t, url, jetstream.Client{User: "webhookd", Password: "pw-8f3a"}))
		require.NoError(t, open(t, url, jetstream.Client{User: "webhookd", PasswordFile: writeFile(t, "pw", "pw-8f3a\n")}), "file, trailing newline dropped")
		err := open(t, url, jetstream.Client{User: "webhookd", Password: "wrong-pw-77"})
		require.ErrorIs(t, err, jetstream.ErrUnavailable)
		require.NotContains(t, err.Error(), "wrong-pw-77", "never in an error")
		require.ErrorIs(t, open(t, url, jetstream.Client{}), jetstream.ErrUnavailable, "anonymous is refused")
	})
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		url := runServer(t, server.Options{Authorization: "tok-5e1d"})
		require.NoError(t, open(t, url, jetstream.Client{TokenFile: writeFile(t, "token", "tok-5e1d\n")}))
		require.NoError(t, open(t, url, jetstream.Client{Token: "tok-5e1d"}))
		err := open(t, url, jetstream.Client{Token: "bad-tok-91"})
		require.ErrorIs(t, err, jetstream.ErrUnavailable)
		require.NotContains(t, err.Error(), "bad-tok-91")
	})
	t.Run("nkey seed", func(t *testing.T) {
		t.Parallel()
		kp, err := nkeys.CreateUser()
		require.NoError(t, err)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		seed, err := kp.Seed()
		require.NoError(t, err)
		url := runServer(t, server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
		require.NoError(t, open(t, url, jetstream.Client{NKeySeed: writeFile(t, "seed", string(seed))}))
		require.ErrorIs(t, open(t, url, jetstream.Client{}), jetstream.ErrUnavailable)
	})
}

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, as PEM files.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jstest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (cert, key string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		require.NoError(t, err)
		kder, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func TestOpenWithTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	raw, err := os.ReadFile(p.ca)
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(raw))
	url := runServer(t, server.Options{
		TLS: true, TLSVerify: true, TLSTimeout: 5,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
	})
	require.NoError(t, open(t, url, jetstream.Client{TLSCA: p.ca, TLSCert: p.clientCert, TLSKey: p.clientKey}))
	require.ErrorIs(t, open(t, url, jetstream.Client{TLSCA: p.ca}), jetstream.ErrUnavailable, "the server wants a client certificate")
	require.ErrorIs(t, open(t, url, jetstream.Client{}), jetstream.ErrUnavailable, "no TLS: refused")
}

func TestOpenRefusesBadClientFiles(t *testing.T) {
	t.Parallel()
	url := runServer(t, server.Options{})
	p := newPKI(t)
	missing := filepath.Join(t.TempDir(), "missing")
	garbage := writeFile(t, "garbage", "not a key\n")
	tests := []struct {
		name string
		c    jetstream.Client
		want string
	}{
		{"missing creds", jetstream.Client{Creds: missing}, "--nats-creds " + missing + ": no such file"},
		{"garbage creds", jetstream.Client{Creds: garbage}, "--nats-creds " + garbage + ": no user JWT"},
		{"missing seed", jetstream.Client{NKeySeed: missing}, "--nats-nkey-seed " + missing},
		{"garbage seed", jetstream.Client{NKeySeed: garbage}, "--nats-nkey-seed " + garbage},
		{"missing password file", jetstream.Client{User: "u", PasswordFile: missing}, "--nats-password-file: open " + missing},
		{"empty token file", jetstream.Client{TokenFile: writeFile(t, "empty", "\n")}, "is empty"},
		{"missing CA", jetstream.Client{TLSCA: missing}, "--nats-tls-ca: open " + missing},
		{"CA without PEM", jetstream.Client{TLSCA: garbage}, "no PEM certificate"},
		{"key of another cert", jetstream.Client{TLSCert: p.clientCert, TLSKey: p.serverKey}, "--nats-tls-cert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := open(t, url, tt.c)
			require.ErrorContains(t, err, tt.want)
			require.NotErrorIs(t, err, jetstream.ErrUnavailable, "a configuration error, found before connecting")
			require.NotContains(t, err.Error(), "\n")
			require.NotContains(t, strings.ToLower(err.Error()), "not a key", "file content is never echoed")
		})
	}
}

func TestCheckSaysWhatIsMissing(t *testing.T) {
	t.Parallel()
	ns := jstest.RunRestartable(t)
	ctx := context.Background()
	conn, err := jetstream.Open(ctx, jetstream.Options{URL: ns.URL}, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	defer conn.Close()
	require.ErrorContains(t, conn.Check(ctx), "nats stream EVENTS", "not provisioned yet")
	require.NoError(t, jetstream.Provision(ctx, conn.JS, jstest.Provisioning()))
	require.NoError(t, conn.Check(ctx))
	require.NoError(t, conn.JS.DeleteConsumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers))
	require.ErrorContains(t, conn.Check(ctx), "nats consumer DELIVERIES/workers")
	ns.Stop()
	require.Eventually(t, func() bool { return conn.Check(ctx) != nil && conn.Check(ctx).Error() == "nats reconnecting" },
		10*time.Second, 20*time.Millisecond)
}

func TestReconnectDelayBacksOffWithJitter(t *testing.T) {
	t.Parallel()
	for round, want := range map[int]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 3: time.Second, 6: 5 * time.Second, 1000: 5 * time.Second} {
		for range 50 {
			d := jetstream.ReconnectDelay(round, 5*time.Second)
			require.LessOrEqual(t, d, want, "round %d", round)
			require.GreaterOrEqual(t, d, want-want/5, "round %d: at most a fifth of jitter", round)
		}
	}
}

func TestOpenWithCredsFile(t *testing.T) {
	t.Parallel()
	// An operator-mode server trusting one operator, which signed one
	// account, which signed webhookd's user: what nsc sets up.
	okp, err := nkeys.CreateOperator()
	require.NoError(t, err)
	opub, err := okp.PublicKey()
	require.NoError(t, err)
	oc := jwt.NewOperatorClaims(opub)
	akp, err := nkeys.CreateAccount()
	require.NoError(t, err)
	apub, err := akp.PublicKey()
	require.NoError(t, err)
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	require.NoError(t, err)
	ukp, err := nkeys.CreateUser()
	require.NoError(t, err)
	upub, err := ukp.PublicKey()
	require.NoError(t, err)
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	require.NoError(t, err)
	useed, err := ukp.Seed()
	require.NoError(t, err)
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	require.NoError(t, err)

	resolver := &server.MemAccResolver{}
	require.NoError(t, resolver.Store(apub, ajwt))
	o := server.Options{TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: resolver}
	o.NoLog, o.NoSigs, o.Host, o.Port = true, true, "127.0.0.1", -1
	ns, err := server.NewServer(&o)
	require.NoError(t, err)
	ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })

	require.NoError(t, open(t, ns.ClientURL(), jetstream.Client{Creds: writeFile(t, "webhookd.creds", string(creds))}))
	require.ErrorIs(t, open(t, ns.ClientURL(), jetstream.Client{}), jetstream.ErrUnavailable, "no credentials: refused")
}
