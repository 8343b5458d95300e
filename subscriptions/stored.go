package subscriptions

import (
	"encoding/json"
	"fmt"
	"time"
)

// stored is the record kept in the KV bucket and the bbolt mirror: the
// Subscription with its secrets, which are encrypted when the store has a
// key. Records written before encryption hold plaintext secrets and the same
// field names, so they still decode.
type stored struct {
	public
	Secret          string           `json:"secret"`
	PreviousSecrets []storedPrevious `json:"previous_secrets,omitempty"`
}

type storedPrevious struct {
	Secret    string    `json:"secret"`
	ExpiresAt time.Time `json:"expires_at"`
}

// codec turns subscriptions into stored records and back. With a nil key
// secrets are stored in plaintext.
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
	return sub, plain, nil
}
