package subscriptions_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

// revision returns the bucket revision of id's record.
func revision(t *testing.T, kv natsjs.KeyValue, id string) uint64 {
	t.Helper()
	e, err := kv.Get(context.Background(), id)
	require.NoError(t, err)
	return e.Revision()
}

func TestDisable(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	r := startReplica(t, kv, filepath.Join(t.TempDir(), "a.db"))
	ctx := context.Background()
	create := func() subscriptions.Subscription {
		sub, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://a.example", Events: []string{"task.completed"}})
		require.NoError(t, err)
		return sub
	}

	t.Run("disables once", func(t *testing.T) {
		t.Parallel()
		sub := create()
		at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
		got, changed, err := r.store.Disable(ctx, sub.ID, "endpoint_gone", at)
		require.NoError(t, err)
		require.True(t, changed)
		require.False(t, got.Active)
		require.True(t, got.Disabled())
		require.Equal(t, "endpoint_gone", got.DisabledReason)
		require.True(t, at.Equal(got.DisabledAt))
		// In the bucket, and in this replica's mirror when Disable returns.
		fetched, err := r.store.Fetch(ctx, sub.ID)
		require.NoError(t, err)
		require.Equal(t, "endpoint_gone", fetched.DisabledReason)
		require.True(t, at.Equal(fetched.DisabledAt))
		mirrored, _ := r.store.Get(sub.ID)
		require.False(t, mirrored.Active)
		require.Equal(t, "endpoint_gone", mirrored.DisabledReason)

		// Again, with another reason: nothing is written.
		rev := revision(t, kv, sub.ID)
		again, changed, err := r.store.Disable(ctx, sub.ID, "failing", time.Time{})
		require.NoError(t, err)
		require.False(t, changed)
		require.Equal(t, "endpoint_gone", again.DisabledReason, "the first reason stays")
		require.Equal(t, rev, revision(t, kv, sub.ID), "no write")

		// Resume clears it all.
		resumed, err := r.store.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.Resume(); return nil })
		require.NoError(t, err)
		require.True(t, resumed.Active)
		require.False(t, resumed.Disabled())
		require.True(t, resumed.DisabledAt.IsZero())
	})

	t.Run("a paused subscription is left alone", func(t *testing.T) {
		t.Parallel()
		sub := create()
		_, err := r.store.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.Active = false; return nil })
		require.NoError(t, err)
		got, changed, err := r.store.Disable(ctx, sub.ID, "failing", time.Now())
		require.NoError(t, err)
		require.False(t, changed)
		require.False(t, got.Disabled(), "still paused, not disabled")
	})

	t.Run("zero time means now", func(t *testing.T) {
		t.Parallel()
		sub := create()
		before := time.Now()
		got, changed, err := r.store.Disable(ctx, sub.ID, "failing", time.Time{})
		require.NoError(t, err)
		require.True(t, changed)
		require.WithinRange(t, got.DisabledAt, before.Add(-time.Second), time.Now().Add(time.Second))
	})

	t.Run("concurrent calls change it once", func(t *testing.T) {
		t.Parallel()
		sub := create()
		var changes atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, changed, err := r.store.Disable(ctx, sub.ID, "failing", time.Now())
				require.NoError(t, err)
				if changed {
					changes.Add(1)
				}
			})
		}
		wg.Wait()
		require.EqualValues(t, 1, changes.Load())
	})

	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		sub := create()
		for _, id := range []string{"missing", "", "*", "a.b", "00000000-0000-4000-8000-000000000000"} {
			_, _, err := r.store.Disable(ctx, id, "failing", time.Now())
			require.ErrorIs(t, err, subscriptions.ErrNotFound, id)
		}
		for _, reason := range []string{"", string(make([]byte, 200)), "line\nbreak"} {
			_, _, err := r.store.Disable(ctx, sub.ID, reason, time.Now())
			require.ErrorIs(t, err, subscriptions.ErrInvalid, "%q", reason)
		}
		got, _ := r.store.Get(sub.ID)
		require.True(t, got.Active)
	})
}

func TestSetFailingSince(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	r := startReplica(t, kv, filepath.Join(t.TempDir(), "a.db"))
	ctx := context.Background()
	sub, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://a.example", Events: []string{"task.completed"}})
	require.NoError(t, err)
	require.True(t, sub.FailingSince.IsZero())

	since := time.Now().Add(-time.Minute)
	require.NoError(t, r.store.SetFailingSince(ctx, sub.ID, since))
	got, _ := r.store.Get(sub.ID)
	require.True(t, since.Equal(got.FailingSince), "visible in the mirror on return")
	require.True(t, got.Active, "failing is not disabled")

	rev := revision(t, kv, sub.ID)
	require.NoError(t, r.store.SetFailingSince(ctx, sub.ID, since.In(time.FixedZone("y", -7200))))
	require.Equal(t, rev, revision(t, kv, sub.ID), "the same instant writes nothing")

	require.NoError(t, r.store.SetFailingSince(ctx, sub.ID, time.Time{}))
	got, _ = r.store.Get(sub.ID)
	require.True(t, got.FailingSince.IsZero(), "cleared")
	rev = revision(t, kv, sub.ID)
	require.NoError(t, r.store.SetFailingSince(ctx, sub.ID, time.Time{}))
	require.Equal(t, rev, revision(t, kv, sub.ID), "clearing twice writes nothing")

	require.ErrorIs(t, r.store.SetFailingSince(ctx, "nope", since), subscriptions.ErrNotFound)
	require.ErrorIs(t, r.store.SetFailingSince(ctx, "00000000-0000-4000-8000-000000000000", since), subscriptions.ErrNotFound)

	// Resume forgets the failure run.
	require.NoError(t, r.store.SetFailingSince(ctx, sub.ID, since))
	resumed, err := r.store.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.Resume(); return nil })
	require.NoError(t, err)
	require.True(t, resumed.FailingSince.IsZero())
}

func TestMaxInFlightIsStored(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	r := startReplica(t, kv, filepath.Join(t.TempDir(), "a.db"))
	ctx := context.Background()
	sub, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://a.example", Events: []string{"task.completed"}, MaxInFlight: 5})
	require.NoError(t, err)
	require.Equal(t, 5, sub.MaxInFlight)
	other := startReplica(t, kv, filepath.Join(t.TempDir(), "b.db"))
	got, ok := other.store.Get(sub.ID)
	require.True(t, ok)
	require.Equal(t, 5, got.MaxInFlight)

	got, err = r.store.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.MaxInFlight = 0; return nil })
	require.NoError(t, err)
	require.Zero(t, got.MaxInFlight)
	_, err = r.store.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.MaxInFlight = 1001; return nil })
	require.ErrorIs(t, err, subscriptions.ErrInvalid)
	_, err = r.store.Create(ctx, subscriptions.Subscription{URL: "https://a.example", Events: []string{"task.completed"}, MaxInFlight: -1})
	require.ErrorIs(t, err, subscriptions.ErrInvalid)
}
