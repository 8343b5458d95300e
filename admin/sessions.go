package admin

import (
	"context"
	"errors"
	"fmt"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/admin/console"
)

// kvRevocations keeps the console's revoked sessions in a KV bucket that
// every replica reads (jetstream.BucketRevokedSessions), so a logout on
// one replica holds on all. The bucket's TTL, the session lifetime, forgets
// an id once its session would have expired anyway.
type kvRevocations struct {
	kv natsjs.KeyValue
}

var _ console.Revocations = kvRevocations{}

// Revoke records id as revoked.
func (r kvRevocations) Revoke(ctx context.Context, id string) error {
	if _, err := r.kv.Put(ctx, id, []byte("logout")); err != nil {
		return fmt.Errorf("admin: revoke console session: %w", err)
	}
	return nil
}

// Revoked reports whether id was revoked, on any replica.
func (r kvRevocations) Revoked(ctx context.Context, id string) (bool, error) {
	_, err := r.kv.Get(ctx, id)
	switch {
	case errors.Is(err, natsjs.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("admin: read revoked console sessions: %w", err)
	}
	return true, nil
}
