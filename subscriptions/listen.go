package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// A listen subscription is the ephemeral subscription behind `webhookctl
// listen`. It is stored and mirrored like any other, so the router's
// matching covers it, but it has no URL: the router makes no delivery for
// it (no job, no attempt, no record) and publishes each signed request on
// the listener's NATS subject instead, for the admin API's event stream.
// Whoever streams it refreshes ExpiresAt (Refresh); once nobody has for a
// while, a sweeper on any replica deletes it (SweepListeners).

// validateKind checks the fields that tell a listen subscription from an
// ordinary one.
func (s Subscription) validateKind() error {
	if !s.Listen {
		if !s.ExpiresAt.IsZero() {
			return fmt.Errorf("%w: expires_at: only listen subscriptions expire", ErrInvalid)
		}
		return nil
	}
	switch {
	case s.URL != "":
		return fmt.Errorf("%w: url: a listen subscription has none (the listener forwards what it receives)", ErrInvalid)
	case s.ExpiresAt.IsZero():
		return fmt.Errorf("%w: expires_at: a listen subscription needs one", ErrInvalid)
	case len(s.Headers) > 0 || s.RetryPolicy != "" || s.MaxInFlight != 0 || s.Timeout != 0 || s.Transform != "" || s.OrderingKey != "":
		return fmt.Errorf("%w: a listen subscription makes no deliveries: no headers, retry policy, max in flight, timeout, transform or ordering key", ErrInvalid)
	}
	return nil
}

// Refresh moves the expiry of the listen subscription id to until, unless
// it is already later. It retries on concurrent changes and returns
// ErrNotFound for an unknown (or already swept) id and an error wrapping
// ErrInvalid when id is not a listen subscription. Safe for concurrent use.
func (s *Store) Refresh(ctx context.Context, id string, until time.Time) error {
	until = until.UTC()
	_, err := s.updateRetrying(ctx, id, func(sub *Subscription) error {
		if !sub.Listen {
			return fmt.Errorf("%w: %s is not a listen subscription", ErrInvalid, id)
		}
		if !until.After(sub.ExpiresAt) {
			return errUnchanged
		}
		sub.ExpiresAt = until
		return nil
	})
	if err != nil {
		return fmt.Errorf("refresh listener %s: %w", id, err)
	}
	return nil
}

// SweepListeners deletes the listen subscriptions whose expiry has passed
// and returns their ids. Each is read again from the bucket and deleted
// only if the record read is still the latest (compare-and-set), so a
// listener refreshed meanwhile is kept, and sweepers running on several
// replicas at once delete each subscription once: the others find it gone
// or changed and skip it. An error stops the sweep; what was deleted
// before it is returned with it.
func (s *Store) SweepListeners(ctx context.Context) ([]string, error) {
	now := s.now()
	var gone []string
	for _, sub := range s.List() {
		if !sub.Listen || now.Before(sub.ExpiresAt) {
			continue
		}
		deleted, err := s.deleteExpired(ctx, sub.ID, now)
		if err != nil {
			return gone, err
		}
		if deleted {
			gone = append(gone, sub.ID)
		}
	}
	return gone, nil
}

// deleteExpired deletes the listen subscription id if the bucket's record
// has expired at now; false when it is gone, fresh, or changed under us.
func (s *Store) deleteExpired(ctx context.Context, id string, now time.Time) (bool, error) {
	sub, rev, err := s.fetch(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !sub.Listen || now.Before(sub.ExpiresAt) {
		return false, nil // refreshed since the mirror saw it
	}
	err = s.kv.Delete(ctx, id, natsjs.LastRevision(rev))
	if conflict(err) {
		return false, nil // changed since we read it: the next sweep decides
	}
	if err != nil {
		return false, fmt.Errorf("subscriptions: delete expired listener %s: %w", id, err)
	}
	return true, nil
}

// conflict reports whether err is a compare-and-set failure of the bucket.
func conflict(err error) bool {
	var apiErr *natsjs.APIError
	return errors.Is(err, natsjs.ErrKeyExists) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence
}

// RunListenerSweeper calls SweepListeners every interval until ctx is done,
// and returns nil then. Every replica may run one: sweeps are idempotent.
// A failed sweep is logged and tried again at the next tick.
func (s *Store) RunListenerSweeper(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("subscriptions: listener sweep interval %s: want a positive duration", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		gone, err := s.SweepListeners(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for _, id := range gone {
			s.log.Info().Str("subscription_id", id).Msg("expired listen subscription deleted")
		}
		if err != nil {
			s.log.Warn().Err(err).Msg("sweeping expired listen subscriptions failed; trying again at the next tick")
		}
	}
}
