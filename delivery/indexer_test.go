package delivery_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// A record the index refuses (a key over bbolt's limit) is dropped from the
// index alone: the records around it are indexed, not held back for good.
func TestIndexerDropsOnlyTheRecordItCannotStore(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	publishRecord(t, ns, attemptRec("before", "s1", "e1", 1, delivery.StatusSucceeded, at))
	bad := attemptRec("huge", "s1", strings.Repeat("e", 40_000), 1, delivery.StatusSucceeded, at) // event-id key over 32 KiB
	publishRecord(t, ns, bad)
	publishRecord(t, ns, attemptRec("after", "s1", "e3", 1, delivery.StatusSucceeded, at))

	ix := runIndexer(t, ns, store)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	require.NoError(t, ix.WaitApplied(wctx, 3), "the index moves past the refused record")
	for _, id := range []string{"before", "after"} {
		_, err := store.Get(id)
		require.NoError(t, err, id)
	}
	_, err := store.Get("huge")
	require.ErrorIs(t, err, delivery.ErrNotFound)

	// Every record is settled, the refused one too: none comes back.
	c, err := ns.JS.Consumer(ctx, jetstream.StreamAudit, "audit-r1")
	require.NoError(t, err)
	require.Eventually(t, func() bool { // acked after applying: no event to await
		info, err := c.Info(ctx)
		require.NoError(t, err)
		return info.AckFloor.Stream == 3 && info.NumAckPending == 0
	}, 10*time.Second, 10*time.Millisecond, "every record acked")
}

// A record the store refuses, alone in its batch, is dropped: it does not
// hold up the index as a store that cannot write at all would.
func TestIndexerDropsARefusedRecordAloneInItsBatch(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	publishRecord(t, ns, attemptRec("huge", "s1", strings.Repeat("e", 40_000), 1, delivery.StatusSucceeded, at)) // key over 32 KiB
	ix := runIndexer(t, ns, store)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, ix.WaitApplied(wctx, 1), "the refused record is passed")
	publishRecord(t, ns, attemptRec("next", "s1", "e2", 1, delivery.StatusSucceeded, at))
	require.NoError(t, ix.WaitApplied(wctx, 2), "and the next one indexed")
	_, err := store.Get("next")
	require.NoError(t, err)
}

// A store that cannot write (here: its file closed under it; in
// production a full disk) holds the index back: the batch is neither
// passed nor acked, and comes again, instead of being dropped.
func TestIndexerHoldsBackWhileTheStoreCannotWrite(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	db, err := bolt.Open(filepath.Join(t.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	store, err := delivery.OpenStore(db, zerolog.Nop())
	require.NoError(t, err)
	require.NoError(t, db.Close())

	publishRecord(t, ns, attemptRec("d1", "s1", "e1", 1, delivery.StatusSucceeded, time.Now()))
	ix := runIndexer(t, ns, store)
	wctx, wcancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer wcancel()
	require.Error(t, ix.WaitApplied(wctx, 1), "not passed while the store cannot write")
	c, err := ns.JS.Consumer(context.Background(), jetstream.StreamAudit, "audit-r1")
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	require.Zero(t, info.AckFloor.Stream, "not acked")
}

// publishRecord writes rec to AUDIT as a replica's recorder would.
func publishRecord(t *testing.T, ns *jstest.Server, rec delivery.Record) {
	t.Helper()
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	_, err = ns.JS.Publish(context.Background(), jetstream.AuditSubject(rec.SubscriptionID), b)
	require.NoError(t, err)
}

// runIndexer runs replica r1's indexer into store until the test ends.
func runIndexer(t *testing.T, ns *jstest.Server, store *delivery.Store) *delivery.Indexer {
	t.Helper()
	ix := delivery.NewIndexer(delivery.IndexerConfig{Replica: "r1", Retention: time.Hour}, ns.JS, store, zerolog.New(zerolog.NewTestWriter(t)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return ix
}
