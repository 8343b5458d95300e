package subscriptions

import "errors"

var (
	// ErrNotFound is returned for an unknown subscription id.
	ErrNotFound = errors.New("subscriptions: not found")
	// ErrConflict is returned when a subscription changed between read and write.
	ErrConflict = errors.New("subscriptions: conflicting update")
	// ErrInvalid is wrapped by validation errors.
	ErrInvalid = errors.New("subscriptions: invalid subscription")
	// ErrSecretKey is wrapped by the errors of a stored secret that cannot be
	// decrypted: encrypted while no key is configured, with another key, or
	// altered.
	ErrSecretKey = errors.New("subscriptions: cannot decrypt secret")
)
