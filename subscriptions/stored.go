package subscriptions

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// stored is the record kept in the KV bucket and the bbolt mirror: the
// Subscription with its secrets and custom header values, which are encrypted when the store has a
// key. Records written before encryption hold plaintext secrets and the same
// field names, so they still decode.
type stored struct {
	public
	Secret          string           `json:"secret"`
	PreviousSecrets []storedPrevious `json:"previous_secrets,omitempty"`
	Headers         []storedHeader   `json:"headers,omitempty"`
}

// storedHeader is a custom header; its value is sealed like a secret, or
// without a key stored as plainPrefix + value, so a value that happens to
// start like a sealed one ("enc:") is never taken for one.
type storedHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type storedPrevious struct {
	Secret    string    `json:"secret"`
	ExpiresAt time.Time `json:"expires_at"`
}

// codec turns subscriptions into stored records and back. With a nil key
// secrets are stored in plaintext.
// plainPrefix starts a custom header value stored without encryption.
const plainPrefix = "plain:"

type codec struct {
	key *Key
}

// encode returns the stored record of sub, its secrets sealed with the key
// (bound to sub.ID) when there is one.
func (c codec) encode(sub Subscription) ([]byte, error) {
	secret := func(v string) (string, error) {
		if c.key == nil || v == "" {
			return v, nil
		}
		return c.key.seal(sub.ID, v)
	}
	r := stored{public: publicOf(sub)}
	var err error
	if r.Secret, err = secret(sub.Secret); err != nil {
		return nil, err
	}
	for _, p := range sub.PreviousSecrets {
		s, err := secret(p.Secret)
		if err != nil {
			return nil, err
		}
		r.PreviousSecrets = append(r.PreviousSecrets, storedPrevious{s, p.ExpiresAt})
	}
	for _, h := range sub.Headers {
		v := plainPrefix + h.Value
		if c.key != nil {
			if v, err = c.key.seal(sub.ID, h.Value); err != nil {
				return nil, err
			}
		}
		r.Headers = append(r.Headers, storedHeader{h.Name, v})
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: encode %s: %w", sub.ID, err)
	}
	return b, nil
}

// decode parses a stored record, decrypting sealed secrets. plain reports
// whether a secret was stored in plaintext while the codec has a key: the
// record is re-encrypted on its next write. A sealed secret that cannot be
// opened gives an error wrapping ErrSecretKey.
func (c codec) decode(b []byte) (sub Subscription, plain bool, err error) {
	var r stored
	if err := json.Unmarshal(b, &r); err != nil {
		return Subscription{}, false, fmt.Errorf("subscriptions: decode record: %w", err)
	}
	if sub, err = r.subscription(); err != nil {
		return Subscription{}, false, err
	}
	secret := func(v string) (string, error) {
		if !isSealed(v) {
			plain = plain || (c.key != nil && v != "")
			return v, nil
		}
		return c.key.open(r.ID, v)
	}
	if sub.Secret, err = secret(r.Secret); err != nil {
		return Subscription{}, false, err
	}
	for _, p := range r.PreviousSecrets {
		s, err := secret(p.Secret)
		if err != nil {
			return Subscription{}, false, err
		}
		sub.PreviousSecrets = append(sub.PreviousSecrets, PreviousSecret{Secret: s, ExpiresAt: p.ExpiresAt})
	}
	for _, h := range r.Headers {
		v, isPlain := strings.CutPrefix(h.Value, plainPrefix)
		if isPlain {
			plain = plain || c.key != nil
		} else if v, err = c.key.open(r.ID, h.Value); err != nil {
			return Subscription{}, false, err
		}
		sub.Headers = append(sub.Headers, Header{Name: h.Name, Value: v})
	}
	return sub, plain, nil
}
