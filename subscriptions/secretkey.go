package subscriptions

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a secret key: AES-256.
const KeySize = 32

// sealedPrefix starts every encrypted value: "enc:v1:<key id>:<base64>". The
// version names the algorithm and layout (v1: AES-256-GCM, 12-byte nonce
// followed by the ciphertext and tag, the subscription id as additional
// data), so the format can change without guessing.
const sealedPrefix = "enc:"

// Key encrypts subscription secrets at rest with AES-256-GCM. It is safe for
// concurrent use. Its String never shows the key.
type Key struct {
	aead cipher.AEAD
	id   string
}

// ParseKey decodes a base64 (standard alphabet, padding optional) 32-byte
// key, as given by --secret-key-file or WEBHOOKD_SECRET_KEY. Surrounding
// white space is ignored. Its errors never repeat the input.
func ParseKey(b64 string) (*Key, error) {
	b64 = strings.TrimSpace(b64)
	if b64 == "" {
		return nil, errors.New("subscriptions: secret key: empty")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return nil, errors.New("subscriptions: secret key: not base64 (generate one with: openssl rand -base64 32)")
	}
	return NewKey(raw)
}

// NewKey returns the Key for 32 raw bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("subscriptions: secret key: %d bytes: want %d (generate one with: openssl rand -base64 32)", len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: secret key: %w", err)
	}
	// The id is a fingerprint, not the key: it tells replicas' keys apart.
	sum := sha256.Sum256(append([]byte("webhookd subscription secret key id\x00"), raw...))
	return &Key{aead: aead, id: hex.EncodeToString(sum[:4])}, nil
}

// ID returns the key's fingerprint (8 hex digits), stored with every value it
// encrypts. It is safe to log.
func (k *Key) ID() string { return k.id }

// String shows the key id only.
func (k *Key) String() string { return "key " + k.id }

// seal encrypts secret for the subscription id.
func (k *Key) seal(id, secret string) (string, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("subscriptions: random nonce: %w", err)
	}
	out := k.aead.Seal(nonce, nonce, []byte(secret), []byte(id))
	return sealedPrefix + "v1:" + k.id + ":" + base64.RawStdEncoding.EncodeToString(out), nil
}

// isSealed reports whether a stored secret is encrypted.
func isSealed(v string) bool { return strings.HasPrefix(v, sealedPrefix) }

// open decrypts a sealed value of the subscription id with k, which may be
// nil (no key configured). Its errors wrap ErrSecretKey and never include
// the value.
func (k *Key) open(id, v string) (string, error) {
	parts := strings.SplitN(strings.TrimPrefix(v, sealedPrefix), ":", 3)
	if len(parts) != 3 || parts[0] != "v1" {
		return "", fmt.Errorf("%w: subscription %s: encrypted secret in an unknown format (written by a newer webhookd?)", ErrSecretKey, id)
	}
	kid, data := parts[1], parts[2]
	if k == nil {
		return "", fmt.Errorf("%w: subscription %s: its secret is encrypted with key %s and no key is configured (--secret-key-file or WEBHOOKD_SECRET_KEY)", ErrSecretKey, id, kid)
	}
	if kid != k.id {
		return "", fmt.Errorf("%w: subscription %s: its secret is encrypted with key %s, but the configured key is %s", ErrSecretKey, id, kid, k.id)
	}
	raw, err := base64.RawStdEncoding.DecodeString(data)
	ns := k.aead.NonceSize()
	if err != nil || len(raw) < ns+k.aead.Overhead() {
		return "", fmt.Errorf("%w: subscription %s: encrypted secret is malformed", ErrSecretKey, id)
	}
	plain, err := k.aead.Open(nil, raw[:ns], raw[ns:], []byte(id))
	if err != nil {
		return "", fmt.Errorf("%w: subscription %s: encrypted secret does not authenticate with key %s (altered or moved record)", ErrSecretKey, id, k.id)
	}
	return string(plain), nil
}
