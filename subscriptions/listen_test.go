package subscriptions_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

func TestListenSubscriptionsAreValidatedApart(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	r := startReplica(t, bucket(t, ns.JS), filepath.Join(t.TempDir(), "a.db"))
	ctx := context.Background()
	later := time.Now().Add(time.Minute)
	for name, sub := range map[string]subscriptions.Subscription{
		"listen with a url":       {Listen: true, URL: "https://a.example/hook", Events: []string{"task.*"}, ExpiresAt: later},
		"listen without expiry":   {Listen: true, Events: []string{"task.*"}},
		"listen with headers":     {Listen: true, Events: []string{"task.*"}, ExpiresAt: later, Headers: []subscriptions.Header{{Name: "X-Key", Value: "v"}}},
		"listen with a policy":    {Listen: true, Events: []string{"task.*"}, ExpiresAt: later, RetryPolicy: "5s"},
		"listen with a transform": {Listen: true, Events: []string{"task.*"}, ExpiresAt: later, Transform: "data"},
		"ordinary with an expiry": {URL: "https://a.example/hook", Events: []string{"task.*"}, ExpiresAt: later},
	} {
		_, err := r.store.Create(ctx, sub)
		require.ErrorIs(t, err, subscriptions.ErrInvalid, name)
	}
	l, err := r.store.Create(ctx, subscriptions.Subscription{Listen: true, Events: []string{"task.*"}, ExpiresAt: later})
	require.NoError(t, err)
	require.True(t, l.Listen)
	require.Regexp(t, `^whsec_`, l.Secret)
	m := r.store.Match("task.completed")
	require.Len(t, m, 1, "the router's matching covers it")
	require.Equal(t, l.ID, m[0].ID)
	require.True(t, m[0].Listen)
}

func TestRefreshMovesOnlyAListenersExpiryForward(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	r := startReplica(t, bucket(t, ns.JS), filepath.Join(t.TempDir(), "a.db"))
	ctx := context.Background()
	now := time.Now().UTC()
	l, err := r.store.Create(ctx, subscriptions.Subscription{Listen: true, Events: []string{"task.*"}, ExpiresAt: now.Add(time.Minute)})
	require.NoError(t, err)
	require.NoError(t, r.store.Refresh(ctx, l.ID, now.Add(2*time.Minute)))
	got, _ := r.store.Get(l.ID)
	require.True(t, got.ExpiresAt.Equal(now.Add(2*time.Minute)))
	require.NoError(t, r.store.Refresh(ctx, l.ID, now), "an earlier expiry is no change")
	got, _ = r.store.Get(l.ID)
	require.True(t, got.ExpiresAt.Equal(now.Add(2*time.Minute)))

	ord, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://a.example/hook", Events: []string{"task.*"}})
	require.NoError(t, err)
	require.ErrorIs(t, r.store.Refresh(ctx, ord.ID, now), subscriptions.ErrInvalid)
	require.ErrorIs(t, r.store.Refresh(ctx, "0b9a3e1c-5b7e-4f7e-9a57-3f0a3c2d1e00", now), subscriptions.ErrNotFound)
}

// Sweepers on two replicas at once delete each expired listener once, and
// nothing else: not a fresh listener, not an ordinary subscription, and
// not a listener refreshed after the sweeping replica's mirror last saw it.
func TestSweepListenersDeletesExpiredOnesOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	dir := t.TempDir()
	a := startReplica(t, kv, filepath.Join(dir, "a.db"))
	b := startReplica(t, kv, filepath.Join(dir, "b.db"))
	ctx := context.Background()
	now := time.Now()
	create := func(sub subscriptions.Subscription) string {
		s, err := a.store.Create(ctx, sub)
		require.NoError(t, err)
		return s.ID
	}
	expired := []string{
		create(subscriptions.Subscription{Listen: true, Events: []string{"task.*"}, ExpiresAt: now.Add(-time.Second)}),
		create(subscriptions.Subscription{Listen: true, Events: []string{"robot.>"}, ExpiresAt: now.Add(-time.Minute)}),
	}
	fresh := create(subscriptions.Subscription{Listen: true, Events: []string{"task.*"}, ExpiresAt: now.Add(time.Hour)})
	ordinary := create(subscriptions.Subscription{URL: "https://a.example/hook", Events: []string{"task.*"}})
	revived := create(subscriptions.Subscription{Listen: true, Events: []string{"task.*"}, ExpiresAt: now.Add(-time.Second)})
	require.Eventually(t, func() bool { return len(b.store.List()) == 5 }, 5*time.Second, 10*time.Millisecond)

	// b's mirror stops here: it still sees revived as expired when a
	// refreshes it.
	b.stop()
	require.NoError(t, a.store.Refresh(ctx, revived, now.Add(time.Hour)))

	var mu sync.Mutex
	var gone []string
	var wg sync.WaitGroup
	for _, r := range []*replica{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids, err := r.store.SweepListeners(ctx)
			require.NoError(t, err)
			mu.Lock()
			gone = append(gone, ids...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(gone)
	slices.Sort(expired)
	require.Equal(t, expired, gone, "each expired listener deleted once")
	for _, id := range expired {
		_, err := a.store.Fetch(ctx, id)
		require.ErrorIs(t, err, subscriptions.ErrNotFound)
	}
	for _, id := range []string{fresh, ordinary, revived} {
		_, err := a.store.Fetch(ctx, id)
		require.NoError(t, err, "kept")
	}
}
