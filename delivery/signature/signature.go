// Package signature signs and verifies webhook deliveries. Receivers import it
// to check the two signatures every delivery carries:
//
//   - X-Webhook-Signature: lowercase hex HMAC-SHA256 of the raw body, keyed
//     with the secret string's bytes (the whole "whsec_..." string). During a
//     secret rotation one value per live secret is sent, comma-separated,
//     newest first;
//   - webhook-signature (Standard Webhooks): "v1,<base64 HMAC-SHA256 of
//     id.timestamp.body>" keyed with the base64-decoded part of the secret
//     after "whsec_". During a secret rotation one "v1," entry per live secret
//     is sent, space-separated.
//
// Verification compares in constant time.
package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every secret.
const Prefix = "whsec_"

// SecretBytes is the number of random bytes in a new secret.
const SecretBytes = 32

var (
	// ErrBadSecret is returned for a secret that is not "whsec_" + base64 of 24 to 64 bytes.
	ErrBadSecret = errors.New("signature: malformed secret")
	// ErrMismatch is returned when no signature matches.
	ErrMismatch = errors.New("signature: no matching signature")
	// ErrTimestamp is returned when the timestamp is missing, malformed or outside the tolerance.
	ErrTimestamp = errors.New("signature: bad or stale timestamp")
)

// NewSecret returns a fresh random secret.
func NewSecret() (string, error) {
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("signature: random: %w", err)
	}
	return Prefix + base64.StdEncoding.EncodeToString(b), nil
}

// DecodeSecret returns the key bytes of a "whsec_" secret.
func DecodeSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, Prefix)
	if !ok {
		return nil, fmt.Errorf("%w: want prefix %q", ErrBadSecret, Prefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSecret, err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("%w: %d key bytes, want 24 to 64", ErrBadSecret, len(key))
	}
	return key, nil
}

// Sign returns the X-Webhook-Signature value: lowercase hex HMAC-SHA256 of
// body keyed with secret's bytes.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// SignAll returns the X-Webhook-Signature value for a delivery signed with
// secrets (the live ones, newest first): one Sign value per secret,
// comma-separated. Outside a rotation's grace period there is one secret
// and so exactly one value.
func SignAll(secrets []string, body []byte) string {
	parts := make([]string, len(secrets))
	for i, s := range secrets {
		parts[i] = Sign(s, body)
	}
	return strings.Join(parts, ",")
}

// Verify reports whether any comma-separated value of header is
// Sign(secret, body), comparing in constant time. During a secret
// rotation the header carries one value per live secret, so a receiver
// holding either the old or the new secret verifies.
func Verify(secret string, body []byte, header string) bool {
	want := []byte(Sign(secret, body))
	ok := false
	for _, sig := range strings.Split(header, ",") {
		if hmac.Equal(want, []byte(strings.ToLower(strings.TrimSpace(sig)))) {
			ok = true
		}
	}
	return ok
}

// SignStandard returns the webhook-signature value for msgID, ts and body: one
// "v1,<base64>" entry per secret, space-separated, in the order given.
func SignStandard(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	parts := make([]string, 0, len(secrets))
	for _, s := range secrets {
		key, err := DecodeSecret(s)
		if err != nil {
			return "", err
		}
		parts = append(parts, "v1,"+base64.StdEncoding.EncodeToString(standardMAC(key, msgID, ts.Unix(), body)))
	}
	return strings.Join(parts, " "), nil
}

func standardMAC(key []byte, msgID string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(unix, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyStandard checks the Standard Webhooks headers of a delivery: msgID
// (webhook-id), timestamp (webhook-timestamp, unix seconds, within tolerance
// of now) and signatures (webhook-signature). It returns nil when any "v1,"
// entry matches secret.
func VerifyStandard(secret, msgID, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := DecodeSecret(secret)
	if err != nil {
		return err
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrTimestamp, timestamp)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s away from now", ErrTimestamp, d)
	}
	want := standardMAC(key, msgID, unix, body)
	for _, entry := range strings.Fields(signatures) {
		v, sig, ok := strings.Cut(entry, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrMismatch
}
