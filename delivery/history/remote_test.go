package history_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// A Remote answers as the indexing replica's Store does, errors included,
// and says in one line when no indexing replica answers.
func TestRemoteAsksTheHistoryService(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	remote := history.NewRemote(ns.NC)
	_, _, err := remote.List(history.Query{})
	require.ErrorIs(t, err, history.ErrNoIndexer, "before any replica serves its index")
	require.EqualError(t, err, "no replica with --history answers")

	db, err := bolt.Open(filepath.Join(t.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	store, err := history.OpenStore(db, zerolog.Nop())
	require.NoError(t, err)
	ix := runIndexer(t, ns, store)
	svc, err := history.Serve(ns.NC, store, ix, "r1")
	require.NoError(t, err)

	at := time.Now().UTC().Truncate(time.Millisecond)
	publishRecord(t, ns, attemptRec("d1", "s1", "e1", 1, delivery.StatusSucceeded, at))
	publishRecord(t, ns, attemptRec("d2", "s1", "e2", 1, delivery.StatusSucceeded, at.Add(time.Millisecond)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, remote.WaitApplied(ctx, 2), "the indexing replica waits for its index")

	want, next, err := store.List(history.Query{Limit: 1})
	require.NoError(t, err)
	got, gotNext, err := remote.List(history.Query{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, next, gotNext)
	d, err := remote.Get("d1")
	require.NoError(t, err)
	require.Equal(t, "d1", d.ID)
	_, err = remote.Get("nope")
	require.ErrorIs(t, err, history.ErrNotFound)
	_, err = remote.JobSeq("d1")
	require.ErrorIs(t, err, history.ErrNotFound, "no kept job")
	_, _, err = remote.List(history.Query{Cursor: "not-a-cursor"})
	require.ErrorIs(t, err, history.ErrBadCursor)
	h, err := remote.Health(time.Now(), "s1")
	require.NoError(t, err)
	require.Equal(t, 2, h["s1"].Attempts24h)

	require.NoError(t, svc.Stop())
	_, err = remote.Get("d1")
	require.ErrorIs(t, err, history.ErrNoIndexer, "once the service stopped")
}
