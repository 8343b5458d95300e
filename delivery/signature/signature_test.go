package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery/signature"
)

// The Standard Webhooks specification's own test vector.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignStandardMatchesSpecVector(t *testing.T) {
	t.Parallel()
	// The spec secret has 24 key bytes, the minimum we accept.
	got, err := signature.SignStandard([]string{specSecret}, specID, time.Unix(specTS, 0), []byte(specBody))
	require.NoError(t, err)
	require.Equal(t, specSig, got)
	require.NoError(t, signature.VerifyStandard(specSecret, specID, strconv.Itoa(specTS), specSig, []byte(specBody), time.Unix(specTS, 0), time.Minute))
}

func TestSignStandardRotationVerifiesWithEitherSecret(t *testing.T) {
	t.Parallel()
	oldS, err := signature.NewSecret()
	require.NoError(t, err)
	newS, err := signature.NewSecret()
	require.NoError(t, err)
	other, err := signature.NewSecret()
	require.NoError(t, err)
	body := []byte(`{"id":"e"}`)
	now := time.Now()
	sig, err := signature.SignStandard([]string{newS, oldS}, "d1", now, body)
	require.NoError(t, err)
	require.Len(t, strings.Fields(sig), 2)
	h := http.Header{}
	h.Set("webhook-id", "d1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	for _, s := range []string{newS, oldS} {
		wh, err := standardwebhooks.NewWebhook(s)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(body, h), "reference library with one of the live secrets")
		require.NoError(t, signature.VerifyStandard(s, "d1", h.Get("webhook-timestamp"), sig, body, now, time.Minute))
	}
	wh, err := standardwebhooks.NewWebhook(other)
	require.NoError(t, err)
	require.Error(t, wh.Verify(body, h))
	require.ErrorIs(t, signature.VerifyStandard(other, "d1", h.Get("webhook-timestamp"), sig, body, now, time.Minute), signature.ErrMismatch)
	require.ErrorIs(t, signature.VerifyStandard(newS, "d1", h.Get("webhook-timestamp"), sig, body, now.Add(time.Hour), time.Minute), signature.ErrTimestamp)
}

func TestSignIsPlainHMAC(t *testing.T) {
	t.Parallel()
	secret := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	body := []byte(`{"id":"x"}`)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	require.Equal(t, hex.EncodeToString(m.Sum(nil)), signature.Sign(secret, body))
	require.True(t, signature.Verify(secret, body, strings.ToUpper(signature.Sign(secret, body))))
	require.False(t, signature.Verify(secret, body, "00"))
}

func TestNewSecretAndDecode(t *testing.T) {
	t.Parallel()
	s, err := signature.NewSecret()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s, signature.Prefix))
	key, err := signature.DecodeSecret(s)
	require.NoError(t, err)
	require.Len(t, key, signature.SecretBytes)
	s2, err := signature.NewSecret()
	require.NoError(t, err)
	require.NotEqual(t, s, s2)
	for _, bad := range []string{"", "whsec_", "nope_" + s[6:], "whsec_!!!", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 8)), "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65))} {
		_, err := signature.DecodeSecret(bad)
		require.ErrorIs(t, err, signature.ErrBadSecret, bad)
	}
}

func FuzzDecodeSecret(f *testing.F) {
	f.Add(specSecret)
	f.Add("whsec_")
	f.Add("whsec_====")
	f.Fuzz(func(t *testing.T, s string) {
		key, err := signature.DecodeSecret(s)
		if err == nil && (len(key) < 24 || len(key) > 64) {
			t.Fatalf("accepted %d key bytes", len(key))
		}
	})
}

func BenchmarkSignBoth(b *testing.B) {
	secret, err := signature.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"id":"e1","event":"task.completed","timestamp":"2024-01-15T10:30:00Z","data":{"task_id":"T123","robot_id":"R001"}}`)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = signature.Sign(secret, body)
		if _, err := signature.SignStandard([]string{secret}, "d1", now, body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVerifyAcceptsAnyListedSignature(t *testing.T) {
	t.Parallel()
	oldSecret, err := signature.NewSecret()
	require.NoError(t, err)
	newSecret, err := signature.NewSecret()
	require.NoError(t, err)
	other, err := signature.NewSecret()
	require.NoError(t, err)
	body := []byte(`{"id":"e1"}`)
	header := signature.SignAll([]string{newSecret, oldSecret}, body)
	require.Equal(t, signature.Sign(newSecret, body)+","+signature.Sign(oldSecret, body), header, "newest first")
	require.True(t, signature.Verify(newSecret, body, header))
	require.True(t, signature.Verify(oldSecret, body, header))
	require.False(t, signature.Verify(other, body, header))
	require.Equal(t, signature.Sign(newSecret, body), signature.SignAll([]string{newSecret}, body), "one secret: one value")
	require.False(t, signature.Verify(newSecret, []byte(`{"id":"e2"}`), header), "another body")
}
