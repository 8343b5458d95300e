package history_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/internal/boltfile"
	"github.com/robotlab/webhookd/jetstream/jstest"

	"github.com/robotlab/webhookd/internal/daemontest"
)

// A store whose file is found damaged (here: truncated under it) answers
// ErrRebuilding, never a partial history, until the indexer has indexed
// AUDIT again from its start; a running indexer starts over by itself.
func TestStoreRebuildsFromAuditAfterItsFileIsReplaced(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	path := filepath.Join(t.TempDir(), "webhooks.db")
	file, err := boltfile.Open(path, boltfile.Options{Bolt: bolt.Options{Timeout: time.Second}}, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = file.Close() })
	store, err := history.OpenStore(file, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	require.NoError(t, file.OnReset(store.Reset))

	at := time.Now()
	ids := []string{"d1", "d2", "d3", "d4"}
	for i, id := range ids {
		publishRecord(t, ns, attemptRec(id, "s1", "e-"+id, 1, delivery.StatusSucceeded, at.Add(time.Duration(i)*time.Millisecond)))
	}
	ix := runIndexer(t, ns, store)
	waitApplied(t, ix, uint64(len(ids)))

	require.NoError(t, os.Truncate(path, int64(2*os.Getpagesize())))
	_, _, err = store.List(history.Query{})
	require.ErrorIs(t, err, boltfile.ErrDamaged, "the read that meets the damage says so")
	if store.Rebuilding() { // unless the indexer was quicker than this
		_, _, err = store.List(history.Query{})
		require.ErrorIs(t, err, history.ErrRebuilding)
		_, err = store.Get("d1")
		require.ErrorIs(t, err, history.ErrRebuilding)
	}
	require.Eventually(t, func() bool { return !store.Rebuilding() }, 10*time.Second, 10*time.Millisecond,
		"the running indexer starts over and catches up")
	got, _, err := store.List(history.Query{OldestFirst: true})
	require.NoError(t, err)
	require.Len(t, got, len(ids), "the whole history is back once the rebuild ends")
	for i, d := range got {
		require.Equal(t, ids[i], d.ID)
	}

	// And the index goes on: a new record is applied to the new file.
	publishRecord(t, ns, attemptRec("d5", "s1", "e-d5", 1, delivery.StatusSucceeded, at))
	waitApplied(t, ix, uint64(len(ids)+1))
	_, err = store.Get("d5")
	require.NoError(t, err)
}

// The indexer itself meets the damage, applying a new record (before
// boltfile: a panic in putIndexes that ended the process): it starts over
// on the new file, and the history comes back whole, the new record too.
func TestIndexerStartsOverWhenItsWriteMeetsTheDamage(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	path := filepath.Join(t.TempDir(), "webhooks.db")
	var logs daemontest.Buffer
	file, err := boltfile.Open(path, boltfile.Options{Bolt: bolt.Options{Timeout: time.Second}}, zerolog.New(&logs))
	require.NoError(t, err)
	t.Cleanup(func() { _ = file.Close() })
	store, err := history.OpenStore(file, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	require.NoError(t, file.OnReset(store.Reset))

	at := time.Now()
	for _, id := range []string{"d1", "d2", "d3"} {
		publishRecord(t, ns, attemptRec(id, "s1", "e-"+id, 1, delivery.StatusSucceeded, at))
	}
	ix := runIndexer(t, ns, store)
	waitApplied(t, ix, 3)
	require.NoError(t, os.Truncate(path, int64(2*os.Getpagesize())))
	publishRecord(t, ns, attemptRec("d4", "s1", "e-d4", 1, delivery.StatusSucceeded, at))

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "bbolt file damaged") }, 10*time.Second, 10*time.Millisecond,
		"the indexer's write meets the damage")
	require.Eventually(t, func() bool { return !store.Rebuilding() }, 10*time.Second, 10*time.Millisecond)
	waitApplied(t, ix, 4)
	for _, id := range []string{"d1", "d2", "d3", "d4"} {
		_, err := store.Get(id)
		require.NoError(t, err, id)
	}
	require.Equal(t, 1, strings.Count(logs.String(), "bbolt file damaged"))
}
