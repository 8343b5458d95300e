package subscriptions_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/internal/boltfile"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

// A mirror whose file is found damaged (here: truncated under it) is not
// ready until Run has rebuilt it from the bucket, and then holds every
// subscription again, one written while it was away included.
func TestMirrorRebuildsAfterItsFileIsReplaced(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	path := filepath.Join(t.TempDir(), "mirror.db")
	file, err := boltfile.Open(path, boltfile.Options{Bolt: bolt.Options{Timeout: time.Second}}, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = file.Close() })
	s, err := subscriptions.Open(kv, file, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	require.NoError(t, file.OnReset(s.Reset))

	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		return func() { cancel(); require.NoError(t, <-done) }
	}
	stop := run()
	<-s.Ready()
	ctx := context.Background()
	var want []string
	for _, u := range []string{"https://a.example", "https://b.example", "https://c.example"} {
		sub, err := s.Create(ctx, subscriptions.Subscription{URL: u, Events: []string{"task.completed"}})
		require.NoError(t, err)
		want = append(want, sub.ID)
	}
	stop()

	// Another replica writes meanwhile; then this one's file is damaged.
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = s.Create(wctx, subscriptions.Subscription{URL: "https://d.example", Events: []string{"task.failed"}})
	require.ErrorIs(t, err, context.DeadlineExceeded, "written to the bucket; no mirror runs to confirm it")
	require.NoError(t, os.Truncate(path, int64(2*os.Getpagesize())))
	err = file.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("subs")).ForEach(func(_, _ []byte) error { return nil })
	})
	require.ErrorIs(t, err, boltfile.ErrDamaged)

	select {
	case <-s.Ready():
		t.Fatal("ready before the mirror is rebuilt")
	default:
	}
	require.Zero(t, s.Revision(), "the rebuild starts from the bucket's first revision")
	require.Len(t, s.List(), 3, "memory serves the last known subscriptions meanwhile")

	stop = run()
	defer stop()
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("mirror not rebuilt")
	}
	require.Len(t, s.List(), 4, "the subscription written meanwhile is mirrored")
	var mirrored int
	require.NoError(t, file.View(func(tx *bolt.Tx) error {
		mirrored = tx.Bucket([]byte("subs")).Stats().KeyN
		return nil
	}))
	require.Equal(t, 4, mirrored, "the new file holds the mirror")
	for _, id := range want {
		_, ok := s.Get(id)
		require.True(t, ok)
	}
}
