package subscriptions_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

// replica is one Store over its own bbolt file, running until the test ends
// or stop is called.
type replica struct {
	store *subscriptions.Store
	db    *bolt.DB
	stop  func()
}

func startReplica(t *testing.T, kv natsjs.KeyValue, path string, opts ...subscriptions.Option) *replica {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	s, err := subscriptions.Open(kv, db, zerolog.New(zerolog.NewTestWriter(t)), opts...)
	if err != nil {
		require.NoError(t, db.Close())
	}
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, db.Close())
	}
	t.Cleanup(stop)
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("mirror stopped before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("mirror not ready")
	}
	return &replica{store: s, db: db, stop: stop}
}

func bucket(t *testing.T, js natsjs.JetStream) natsjs.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), jetstream.BucketSubscriptions)
	require.NoError(t, err)
	return kv
}

func TestStoreReadYourWritesAndMatch(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	r := startReplica(t, bucket(t, ns.JS), filepath.Join(t.TempDir(), "a.db"))
	ctx := context.Background()

	exact, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://a.example/hook", Events: []string{"task.completed"}})
	require.NoError(t, err)
	require.NotEmpty(t, exact.ID)
	require.True(t, exact.Active)
	require.Regexp(t, `^whsec_`, exact.Secret)
	// Visible through this replica as soon as Create returns.
	got, ok := r.store.Get(exact.ID)
	require.True(t, ok)
	require.Equal(t, exact.Secret, got.Secret)

	wild, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://b.example/hook", Events: []string{"task.*", "robot.>"}})
	require.NoError(t, err)
	ids := func(subs []subscriptions.Subscription) []string {
		var out []string
		for _, s := range subs {
			out = append(out, s.ID)
		}
		return out
	}
	require.ElementsMatch(t, []string{exact.ID, wild.ID}, ids(r.store.Match("task.completed")))
	require.ElementsMatch(t, []string{wild.ID}, ids(r.store.Match("robot.connected")))
	require.Empty(t, r.store.Match("alert.triggered"))

	// An update is reflected in the cached match results at once.
	_, err = r.store.Update(ctx, wild.ID, func(s *subscriptions.Subscription) error {
		s.Events = []string{"alert.triggered"}
		return nil
	})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{exact.ID}, ids(r.store.Match("task.completed")))
	require.ElementsMatch(t, []string{wild.ID}, ids(r.store.Match("alert.triggered")))

	require.NoError(t, r.store.Delete(ctx, exact.ID))
	_, ok = r.store.Get(exact.ID)
	require.False(t, ok)
	require.Empty(t, r.store.Match("task.completed"))
	require.ErrorIs(t, r.store.Delete(ctx, exact.ID), subscriptions.ErrNotFound)
	_, err = r.store.Update(ctx, "missing", func(*subscriptions.Subscription) error { return nil })
	require.ErrorIs(t, err, subscriptions.ErrNotFound)
}

func TestStoreValidates(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	r := startReplica(t, bucket(t, ns.JS), filepath.Join(t.TempDir(), "a.db"))
	for _, bad := range []subscriptions.Subscription{
		{URL: "ftp://x/y", Events: []string{"task.completed"}},
		{URL: "/relative", Events: []string{"task.completed"}},
		{URL: "https://", Events: []string{"task.completed"}},
		{URL: "https://x.example", Events: nil},
		{URL: "https://x.example", Events: []string{"task..x"}},
		{URL: "https://x.example", Events: []string{"task.completed"}, Timeout: -time.Second},
		{URL: "https://x.example", Events: []string{"task.completed"}, Timeout: time.Hour},
	} {
		_, err := r.store.Create(context.Background(), bad)
		require.ErrorIs(t, err, subscriptions.ErrInvalid, "%+v", bad)
	}
	require.Empty(t, r.store.List())
}

func TestStoreMirrorsAcrossReplicasAndResumes(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	dir := t.TempDir()
	a := startReplica(t, kv, filepath.Join(dir, "a.db"))
	b := startReplica(t, kv, filepath.Join(dir, "b.db"))
	ctx := context.Background()

	s1, err := a.store.Create(ctx, subscriptions.Subscription{URL: "https://one.example", Events: []string{"task.completed"}})
	require.NoError(t, err)
	s2, err := a.store.Create(ctx, subscriptions.Subscription{URL: "https://two.example", Events: []string{"task.failed"}})
	require.NoError(t, err)
	waitFor(t, func() bool { return len(b.store.List()) == 2 }, "replica b sees a's writes")

	// b goes down; meanwhile a creates, deletes and updates.
	b.stop()
	revBefore := b.store.Revision()
	s3, err := a.store.Create(ctx, subscriptions.Subscription{URL: "https://three.example", Events: []string{"robot.>"}})
	require.NoError(t, err)
	require.NoError(t, a.store.Delete(ctx, s1.ID))
	_, err = a.store.Update(ctx, s2.ID, func(s *subscriptions.Subscription) error { s.Description = "changed"; return nil })
	require.NoError(t, err)

	// b restarts on the same file: it loads its mirror, then resumes.
	b2 := startReplica(t, kv, filepath.Join(dir, "b.db"))
	require.Equal(t, a.store.Revision(), b2.store.Revision())
	require.Greater(t, b2.store.Revision(), revBefore)
	_, ok := b2.store.Get(s1.ID)
	require.False(t, ok, "deleted while down")
	got, ok := b2.store.Get(s2.ID)
	require.True(t, ok)
	require.Equal(t, "changed", got.Description)
	_, ok = b2.store.Get(s3.ID)
	require.True(t, ok)
}

func TestStoreRebuildsForANewBucket(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "a.db")
	old := jstest.RunProvisioned(t)
	r := startReplica(t, bucket(t, old.JS), dbPath)
	for range 3 {
		_, err := r.store.Create(context.Background(), subscriptions.Subscription{URL: "https://old.example", Events: []string{"task.completed"}})
		require.NoError(t, err)
	}
	r.stop()

	// The same data dir pointed at another NATS: its bucket is empty and
	// younger than the mirror, so the mirror is rebuilt, not resumed.
	fresh := jstest.RunProvisioned(t)
	r2 := startReplica(t, bucket(t, fresh.JS), dbPath)
	require.Empty(t, r2.store.List())
	s, err := r2.store.Create(context.Background(), subscriptions.Subscription{URL: "https://new.example", Events: []string{"task.completed"}})
	require.NoError(t, err)
	require.Len(t, r2.store.Match("task.completed"), 1)
	require.Equal(t, s.ID, r2.store.Match("task.completed")[0].ID)
}

func TestStoreConflict(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	r := startReplica(t, bucket(t, ns.JS), filepath.Join(t.TempDir(), "a.db"))
	ctx := context.Background()
	s, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://a.example", Events: []string{"task.completed"}})
	require.NoError(t, err)
	_, err = r.store.Update(ctx, s.ID, func(inner *subscriptions.Subscription) error {
		// Another writer changes the record between our read and write.
		_, err := r.store.Update(ctx, s.ID, func(x *subscriptions.Subscription) error { x.Description = "first"; return nil })
		require.NoError(t, err)
		inner.Description = "second"
		return nil
	})
	require.ErrorIs(t, err, subscriptions.ErrConflict)
	got, _ := r.store.Get(s.ID)
	require.Equal(t, "first", got.Description)
}

// waitFor polls cond until it holds; the mirror offers no event to await
// across replicas.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFetchReadsTheBucketWhenTheMirrorLags(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	a := startReplica(t, kv, filepath.Join(t.TempDir(), "a.db"))

	// b has opened its mirror but not caught up (its Run has not started).
	db, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	b, err := subscriptions.Open(kv, db, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)

	sub, err := a.store.Create(context.Background(), subscriptions.Subscription{URL: "https://a.example", Events: []string{"task.completed"}})
	require.NoError(t, err)
	_, ok := b.Get(sub.ID)
	require.False(t, ok, "b's mirror lags")
	got, err := b.Fetch(context.Background(), sub.ID)
	require.NoError(t, err)
	require.Equal(t, sub.URL, got.URL)
	_, err = b.Fetch(context.Background(), "missing")
	require.ErrorIs(t, err, subscriptions.ErrNotFound)
}
