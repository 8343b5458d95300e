package jetstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Client is how webhookd authenticates to an external NATS and secures the
// connection. At most one of Creds, NKeySeed, User (with a password) and
// Token is used; the config package checks that. Secrets are never logged
// and never appear in errors.
type Client struct {
	// Creds is a credentials file: a user JWT and its NKey seed.
	Creds string
	// NKeySeed is a file holding a user NKey seed (SU…).
	NKeySeed string
	// User and Password, or PasswordFile, authenticate with a password.
	User, Password, PasswordFile string
	// Token, or TokenFile, authenticates with a token.
	Token, TokenFile string
	// TLSCA is a PEM file of the CAs that sign the servers' certificates;
	// TLSCert and TLSKey an optional client certificate. Any of them turns
	// TLS on.
	TLSCA, TLSCert, TLSKey string
	// ReconnectMax caps the delay between reconnect rounds (default 5s).
	ReconnectMax time.Duration
}

// reconnectBase is the delay after the first failed round through the
// servers; it doubles each round up to Client.ReconnectMax.
const reconnectBase = 250 * time.Millisecond

// options returns the nats.go options for c, reading its files now so a
// missing or bad one is a clear one-line error before any connection.
func (c Client) options() ([]nats.Option, error) {
	var opts []nats.Option
	if c.Creds != "" {
		if err := checkCreds(c.Creds); err != nil {
			return nil, fmt.Errorf("jetstream: --nats-creds %s: %w", c.Creds, err)
		}
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.NKeySeed != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("jetstream: --nats-nkey-seed %s: %s", c.NKeySeed, strings.TrimPrefix(err.Error(), "nats: "))
		}
		opts = append(opts, o)
	}
	if c.User != "" {
		pw, err := secret(c.Password, c.PasswordFile, "--nats-password-file")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfo(c.User, pw))
	}
	if c.Token != "" || c.TokenFile != "" {
		tok, err := secret(c.Token, c.TokenFile, "--nats-token-file")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Token(tok))
	}
	if c.TLSCA != "" || c.TLSCert != "" {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	maxDelay := c.ReconnectMax
	if maxDelay <= 0 {
		maxDelay = 5 * time.Second
	}
	opts = append(opts, nats.MaxReconnects(-1), nats.CustomReconnectDelay(func(round int) time.Duration {
		return reconnectDelay(round, maxDelay)
	}))
	return opts, nil
}

// reconnectDelay is the wait after the given failed round through every
// server: reconnectBase doubled per round, capped at maxDelay, less up to a
// fifth at random so replicas that lost the same server do not return in
// step.
func reconnectDelay(round int, maxDelay time.Duration) time.Duration {
	d := maxDelay
	if round < 16 {
		d = min(reconnectBase<<max(round-1, 0), maxDelay)
	}
	return d - rand.N(d/5+1)
}

// secret returns value, or the content of file without its trailing line
// break; an empty one is an error.
func secret(value, file, flag string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("jetstream: %s: %w", flag, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("jetstream: %s %s is empty", flag, file)
	}
	return s, nil
}

// checkCreds reads a credentials file as nats.go will at every connect and
// says what is wrong with it, without its content.
func checkCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "open "+path+": "))
	}
	// Without a decorated JWT block ParseDecoratedJWT returns the whole
	// file: a JWT has a JSON header, "eyJ" in base64.
	if jwt, err := nkeys.ParseDecoratedJWT(b); err != nil || !strings.HasPrefix(jwt, "eyJ") || strings.Count(jwt, ".") != 2 {
		return errors.New("no user JWT in it (want a .creds file from nsc or your NATS operator)")
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("no NKey seed: %w", err)
	}
	kp.Wipe()
	return nil
}

func (c Client) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("jetstream: --nats-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("jetstream: --nats-tls-ca %s: no PEM certificate in it", c.TLSCA)
		}
		tc.RootCAs = pool
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("jetstream: --nats-tls-cert %s / --nats-tls-key %s: %w", c.TLSCert, c.TLSKey, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
