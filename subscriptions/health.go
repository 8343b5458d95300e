package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// errUnchanged tells Update that fn left the subscription as it was, so
// nothing is written.
var errUnchanged = errors.New("subscriptions: unchanged")

// casAttempts bounds how often the dispatcher's updates re-read and retry
// after a concurrent change.
const casAttempts = 5

// ValidID reports whether id has the shape of a subscription id: a UUID in
// its canonical 36-character form. Anything else (wildcards, dots, spaces,
// slashes, empty or long strings) names no subscription and is no valid
// bucket key.
func ValidID(id string) bool {
	return len(id) == 36 && uuid.Validate(id) == nil
}

// Disable deactivates the subscription and records why and when (a zero at
// means now), for the dispatcher: an endpoint answering 410 Gone
// ("endpoint_gone"), or failing for too long ("failing"). Deliveries are
// then held as in a pause; Resume clears the reason.
//
// It is idempotent: a subscription already paused or disabled is left as is,
// and changed is false. It retries on concurrent changes, deciding afresh on
// each read. It returns ErrNotFound for an unknown id and an error wrapping
// ErrInvalid for an empty or overlong reason. Safe for concurrent use.
func (s *Store) Disable(ctx context.Context, id, reason string, at time.Time) (sub Subscription, changed bool, err error) {
	if err := validReason(reason); err != nil {
		return Subscription{}, false, err
	}
	if at.IsZero() {
		at = s.now()
	}
	at = at.UTC()
	sub, err = s.updateRetrying(ctx, id, func(sub *Subscription) error {
		if !sub.Active {
			changed = false
			return errUnchanged
		}
		sub.Active, sub.DisabledReason, sub.DisabledAt = false, reason, at
		changed = true
		return nil
	})
	if err != nil {
		return Subscription{}, false, fmt.Errorf("disable %s: %w", id, err)
	}
	return sub, changed, nil
}

// SetFailingSince records when the current run of failures of the
// subscription began; a zero t clears it (the endpoint is healthy again).
// It writes nothing when the stored value is already t, but still reads the
// bucket: callers should compare with the mirrored subscription first. It
// retries on concurrent changes and returns ErrNotFound for an unknown id.
// Safe for concurrent use.
func (s *Store) SetFailingSince(ctx context.Context, id string, t time.Time) error {
	if !t.IsZero() {
		t = t.UTC()
	}
	_, err := s.updateRetrying(ctx, id, func(sub *Subscription) error {
		if sub.FailingSince.Equal(t) {
			return errUnchanged
		}
		sub.FailingSince = t
		return nil
	})
	if err != nil {
		return fmt.Errorf("set failing since of %s: %w", id, err)
	}
	return nil
}

// updateRetrying runs Update, again on ErrConflict, up to casAttempts times.
func (s *Store) updateRetrying(ctx context.Context, id string, fn func(*Subscription) error) (Subscription, error) {
	var err error
	for range casAttempts {
		var sub Subscription
		sub, err = s.Update(ctx, id, fn)
		if !errors.Is(err, ErrConflict) {
			return sub, err
		}
	}
	return Subscription{}, err
}
