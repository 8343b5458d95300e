package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// sessions issues and checks the console's session values. A value is
// "<payload>.<mac>", both base64url: payload = expiry (unix seconds, 8 bytes
// big-endian) + 16 random bytes + the subject of a team session (empty for
// the operator's, see Config.TeamLogin), mac = HMAC-SHA256 of the payload under a key
// derived from the admin token. The cookie never holds the token; a session
// dies at its expiry, when the token changes (the key changes with it), or
// at logout, which records its id (sessionID) as revoked for every replica.
type sessions struct {
	key     []byte
	ttl     time.Duration
	now     func() time.Time
	checkTk [32]byte // SHA-256 of the token, for the login comparison
}

const sessionPayloadLen = 8 + 16

// maxSubject bounds a team session's subject.
const maxSubject = 128

func newSessions(token string, ttl time.Duration, now func() time.Time) sessions {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("webhookd console session key v1"))
	return sessions{key: m.Sum(nil), ttl: ttl, now: now, checkTk: sha256.Sum256([]byte(token))}
}

// tokenOK compares a pasted token with the admin token in constant time
// (both hashed first, so their lengths do not show either).
func (s sessions) tokenOK(given string) bool {
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], s.checkTk[:]) == 1
}

func (s sessions) mac(purpose string, payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

// issue returns a new session value, of a team's session when subject is
// not empty.
func (s sessions) issue(subject string) (string, error) {
	payload := make([]byte, sessionPayloadLen, sessionPayloadLen+len(subject))
	binary.BigEndian.PutUint64(payload, uint64(s.now().Add(s.ttl).Unix()))
	if _, err := rand.Read(payload[8:]); err != nil {
		return "", fmt.Errorf("console: session: %w", err)
	}
	payload = append(payload, subject...)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(s.mac("session", payload)), nil
}

// verify returns the payload of a session value that this key signed and
// that has not expired.
func (s sessions) verify(value string) ([]byte, bool) {
	p, m, ok := strings.Cut(value, ".")
	if !ok {
		return nil, false
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	mac, err2 := enc.DecodeString(m)
	if err1 != nil || err2 != nil || len(payload) < sessionPayloadLen || len(payload) > sessionPayloadLen+maxSubject {
		return nil, false
	}
	if !hmac.Equal(mac, s.mac("session", payload)) {
		return nil, false
	}
	expiry := time.Unix(int64(binary.BigEndian.Uint64(payload)), 0)
	if !s.now().Before(expiry) {
		return nil, false
	}
	return payload, true
}

// sessionID returns the id under which a session is revoked: its random
// part, hex-encoded. It cannot be turned back into a session value.
func sessionID(payload []byte) string { return hex.EncodeToString(payload[8:sessionPayloadLen]) }

// payloadSubject returns the subject of a team session, "" for the
// operator's.
func payloadSubject(payload []byte) string { return string(payload[sessionPayloadLen:]) }

// csrf returns the form token of a session: bound to it, so a token from
// another session (or none) is refused.
func (s sessions) csrf(payload []byte) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", payload))
}

// csrfOK checks a form's token against the session, in constant time.
func (s sessions) csrfOK(payload []byte, given string) bool {
	return subtle.ConstantTimeCompare([]byte(given), []byte(s.csrf(payload))) == 1
}
