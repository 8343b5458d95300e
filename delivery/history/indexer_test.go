package history_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
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
	require.ErrorIs(t, err, history.ErrNotFound)

	// The store notes the stream applied through the last one, the refused
	// one too: after a restart none comes back.
	applied, ok, err := store.AuditApplied()
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 3, applied.Seq)
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
	store, err := history.OpenStore(db, zerolog.Nop())
	require.NoError(t, err)

	publishRecord(t, ns, attemptRec("d1", "s1", "e1", 1, delivery.StatusSucceeded, time.Now()))
	ix := runIndexer(t, ns, store)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, ix.WaitApplied(wctx, 1))
	require.NoError(t, db.Close())

	publishRecord(t, ns, attemptRec("d2", "s1", "e2", 1, delivery.StatusSucceeded, time.Now()))
	wctx, wcancel = context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer wcancel()
	require.Error(t, ix.WaitApplied(wctx, 2), "not passed while the store cannot write")
}

// A restarted indexer resumes just after the last record its store
// applied, which the store keeps with the records: nothing is acked, and
// nothing is applied twice or skipped.
func TestIndexerResumesAfterWhatItsStoreApplied(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	ctx := context.Background()
	at := time.Now() // within the retention
	publishRecord(t, ns, attemptRec("d1", "s1", "e1", 1, delivery.StatusSucceeded, at))
	publishRecord(t, ns, attemptRec("d2", "s1", "e2", 1, delivery.StatusSucceeded, at))

	indexThrough(t, ns, store, 2)

	publishRecord(t, ns, attemptRec("d3", "s1", "e3", 1, delivery.StatusSucceeded, at))
	waitApplied(t, runIndexer(t, ns, store), 3)
	for _, id := range []string{"d1", "d2", "d3"} {
		_, err := store.Get(id)
		require.NoError(t, err, id)
	}
	c, err := ns.JS.Consumer(ctx, jetstream.StreamAudit, "audit-r1")
	require.NoError(t, err)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, info.Config.OptStartSeq, "the second run starts after the two records the first applied")
	require.EqualValues(t, 1, info.Delivered.Consumer, "and is sent only the new one")
	require.Zero(t, info.NumAckPending, "nothing to ack")
}

// A caller already waiting when the indexer starts is answered from the
// position the store noted, without waiting for a new record.
func TestIndexerAnswersWaitersFromWhereItResumes(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	at := time.Now()
	for _, id := range []string{"d1", "d2"} {
		rec := attemptRec(id, "s1", "e-"+id, 1, delivery.StatusSucceeded, at)
		publishRecord(t, ns, rec)
		require.NoError(t, store.Apply(rec))
	}
	str, err := ns.JS.Stream(context.Background(), jetstream.StreamAudit)
	require.NoError(t, err)
	require.NoError(t, store.SetAuditApplied(history.AuditPosition{Stream: str.CachedInfo().Created, Seq: 2}))

	ix := history.NewIndexer(history.IndexerConfig{Replica: "r1", Retention: time.Hour}, ns.JS, store, zerolog.New(zerolog.NewTestWriter(t)))
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	waited := make(chan error, 1)
	go func() { waited <- ix.WaitApplied(wctx, 2) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	require.NoError(t, <-waited)
}

// A replica started again with an empty data dir indexes the whole stream
// again, though its consumer of the last run is still there.
func TestIndexerRebuildsAnEmptiedStore(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	at := time.Now()
	for _, id := range []string{"d1", "d2", "d3"} {
		publishRecord(t, ns, attemptRec(id, "s1", "e-"+id, 1, delivery.StatusSucceeded, at))
	}
	indexThrough(t, ns, openStore(t), 3)

	emptied := openStore(t)
	waitApplied(t, runIndexer(t, ns, emptied), 3)
	for _, id := range []string{"d1", "d2", "d3"} {
		_, err := emptied.Get(id)
		require.NoError(t, err, id)
	}
}

// A replaced AUDIT stream (deleted and created again: its sequences start
// at 1 again) is indexed from its start, whether it was replaced while the
// indexer ran or while the replica was down.
func TestIndexerStartsOverOnAReplacedStream(t *testing.T) {
	for _, tc := range []struct {
		name    string
		running bool
	}{{"while-running", true}, {"while-down", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := jstest.RunProvisioned(t)
			store := openStore(t)
			ctx := context.Background()
			at := time.Now()
			for _, id := range []string{"o1", "o2", "o3"} {
				publishRecord(t, ns, attemptRec(id, "s1", "e-"+id, 1, delivery.StatusSucceeded, at))
			}
			wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
			defer wcancel()
			var ix *history.Indexer
			if tc.running {
				ix = runIndexer(t, ns, store)
				require.NoError(t, ix.WaitApplied(wctx, 3))
			} else {
				indexThrough(t, ns, store, 3)
			}

			str, err := ns.JS.Stream(ctx, jetstream.StreamAudit)
			require.NoError(t, err)
			cfg := str.CachedInfo().Config
			require.NoError(t, ns.JS.DeleteStream(ctx, jetstream.StreamAudit))
			_, err = ns.JS.CreateStream(ctx, cfg)
			require.NoError(t, err)
			// Four records: the new stream passes the old one's length too.
			for _, id := range []string{"n1", "n2", "n3", "n4"} {
				publishRecord(t, ns, attemptRec(id, "s1", "e-"+id, 1, delivery.StatusSucceeded, at))
			}
			if !tc.running {
				ix = runIndexer(t, ns, store)
			}
			require.NoError(t, ix.WaitApplied(wctx, 4))
			for _, id := range []string{"n1", "n2", "n3", "n4"} {
				_, err := store.Get(id)
				require.NoError(t, err, id)
			}
		})
	}
}

// A store indexed by the previous version, which acked each record and
// kept no applied sequence, resumes at its consumer's ack floor instead of
// indexing the whole stream again.
func TestIndexerTakesOverFromTheAckingConsumer(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	ctx := context.Background()
	at := time.Now()
	old, err := ns.JS.CreateConsumer(ctx, jetstream.StreamAudit, natsjs.ConsumerConfig{
		Durable: "audit-r1", FilterSubject: jetstream.AuditRecords, AckPolicy: natsjs.AckExplicitPolicy,
	})
	require.NoError(t, err)
	for _, id := range []string{"d1", "d2"} {
		rec := attemptRec(id, "s1", "e-"+id, 1, delivery.StatusSucceeded, at)
		publishRecord(t, ns, rec)
		require.NoError(t, store.Apply(rec)) // as the previous version's indexer did
		m, err := old.Next()
		require.NoError(t, err)
		require.NoError(t, m.DoubleAck(ctx))
	}
	publishRecord(t, ns, attemptRec("d3", "s1", "e3", 1, delivery.StatusSucceeded, at))

	ix := runIndexer(t, ns, store)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	require.NoError(t, ix.WaitApplied(wctx, 3))
	_, err = store.Get("d3")
	require.NoError(t, err)
	c, err := ns.JS.Consumer(ctx, jetstream.StreamAudit, "audit-r1")
	require.NoError(t, err)
	info := c.CachedInfo()
	require.Equal(t, natsjs.AckNonePolicy, info.Config.AckPolicy)
	require.EqualValues(t, 3, info.Config.OptStartSeq, "resumed after the ack floor")
}

// While AUDIT is gone (deleted; in production, a NATS that lost it), the
// indexer asks for it again at growing intervals, not every 100 ms.
func TestIndexerBacksOffWhileTheStreamIsGone(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	publishRecord(t, ns, attemptRec("d1", "s1", "e1", 1, delivery.StatusSucceeded, time.Now()))
	waitApplied(t, runIndexer(t, ns, store), 1)

	asks, err := ns.NC.SubscribeSync("$JS.API.STREAM.INFO." + jetstream.StreamAudit)
	require.NoError(t, err)
	require.NoError(t, ns.JS.DeleteStream(context.Background(), jetstream.StreamAudit))
	var at []time.Time
	for len(at) < 7 {
		_, err := asks.NextMsg(10 * time.Second)
		require.NoError(t, err, "the indexer keeps asking for the stream")
		at = append(at, time.Now())
	}
	// Its n-th retry waits n × 100 ms: the sixth gap is 600 ms, where a
	// backoff reset at each failure would leave 100 ms.
	require.Greater(t, at[6].Sub(at[5]), 400*time.Millisecond, "asks at %v", at)
}

// Records the server delivered to the index consumer that never reached
// the indexer (here taken by another client; in production lost with a
// connection) are noticed and fetched again, whether a later record shows
// the gap or none comes after them.
func TestIndexerRecoversRecordsItNeverReceived(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after bool // a record follows the lost ones
	}{{"lost-last", false}, {"lost-before-another", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := jstest.RunProvisioned(t)
			store := openStore(t)
			ctx := context.Background()
			at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
			publishRecord(t, ns, attemptRec("d1", "s1", "e1", 1, delivery.StatusSucceeded, at))
			pulls, err := ns.NC.SubscribeSync("$JS.API.CONSUMER.MSG.NEXT." + jetstream.StreamAudit + ".audit-r1")
			require.NoError(t, err)
			ix := runIndexer(t, ns, store)
			wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
			defer wcancel()
			require.NoError(t, ix.WaitApplied(wctx, 1))

			// Queue a pull of our own ahead of the indexer's: ask for 1
			// (the indexer asks for more), then wait for an indexer pull
			// sent after ours (once its pull open now has expired). The
			// server then hands the next record to ours.
			c, err := ns.JS.Consumer(ctx, jetstream.StreamAudit, "audit-r1")
			require.NoError(t, err)
			stolen, err := c.Fetch(1, natsjs.FetchMaxWait(10*time.Second))
			require.NoError(t, err)
			for ours := false; ; {
				pm, err := pulls.NextMsg(10 * time.Second)
				require.NoError(t, err)
				var req struct{ Batch int }
				require.NoError(t, json.Unmarshal(pm.Data, &req))
				if req.Batch == 1 {
					ours = true
				} else if ours {
					break
				}
			}

			publishRecord(t, ns, attemptRec("d2", "s1", "e2", 1, delivery.StatusSucceeded, at))
			var took []string
			for m := range stolen.Messages() {
				var rec history.Record
				require.NoError(t, json.Unmarshal(m.Data(), &rec))
				took = append(took, rec.DeliveryID)
			}
			require.Equal(t, []string{"d2"}, took, "the other pull took it")
			last := uint64(2)
			if tc.after {
				publishRecord(t, ns, attemptRec("d3", "s1", "e3", 1, delivery.StatusSucceeded, at))
				last = 3
			}
			require.NoError(t, ix.WaitApplied(wctx, last))
			for i := 1; i <= int(last); i++ {
				_, err := store.Get("d" + strconv.Itoa(i))
				require.NoError(t, err, "d%d", i)
			}
		})
	}
}

// publishRecord writes rec to AUDIT as a replica's recorder would.
func publishRecord(t *testing.T, ns *jstest.Server, rec history.Record) {
	t.Helper()
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	_, err = ns.JS.Publish(context.Background(), jetstream.AuditSubject(rec.SubscriptionID), b)
	require.NoError(t, err)
}

// indexThrough runs replica r1's indexer into store until it has applied
// AUDIT through seq, then stops it.
func indexThrough(t *testing.T, ns *jstest.Server, store *history.Store, seq uint64) {
	t.Helper()
	ix := history.NewIndexer(history.IndexerConfig{Replica: "r1", Retention: time.Hour}, ns.JS, store, zerolog.New(zerolog.NewTestWriter(t)))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	waitApplied(t, ix, seq)
	stop()
	require.NoError(t, <-done)
}

// waitApplied waits up to 10 s for ix to have applied AUDIT through seq.
func waitApplied(t *testing.T, ix *history.Indexer, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ix.WaitApplied(ctx, seq))
}

// runIndexer runs replica r1's indexer into store until the test ends.
func runIndexer(t *testing.T, ns *jstest.Server, store *history.Store) *history.Indexer {
	t.Helper()
	ix := history.NewIndexer(history.IndexerConfig{Replica: "r1", Retention: time.Hour}, ns.JS, store, zerolog.New(zerolog.NewTestWriter(t)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return ix
}
