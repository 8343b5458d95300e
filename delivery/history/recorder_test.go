package history_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// registerOldIndexer creates the AUDIT consumer an indexer of the previous
// release creates for replica: no metadata, so it reads format 1 only.
func registerOldIndexer(tb testing.TB, ns *jstest.Server, replica string) {
	tb.Helper()
	_, err := ns.JS.CreateConsumer(context.Background(), jetstream.StreamAudit, natsjs.ConsumerConfig{
		Durable: "audit-" + replica, FilterSubject: jetstream.AuditRecords, AckPolicy: natsjs.AckExplicitPolicy,
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// waitFormat waits up to 10 s for rec to write format.
func waitFormat(tb testing.TB, rec *history.Recorder, format int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for rec.Format() != format {
		if time.Now().After(deadline) {
			tb.Fatalf("the recorder writes format %d, not %d", rec.Format(), format)
		}
		time.Sleep(5 * time.Millisecond) // the recorder's own ticker sets it
	}
}

// runRecorder runs rec until the test ends.
func runRecorder(t *testing.T, rec *history.Recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
}

// recordAll gives recs to rec at once and waits up to 10 s for each done;
// it returns each record's error, by position.
func recordAll(t *testing.T, rec *history.Recorder, recs []history.Record) []error {
	t.Helper()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(recs))
	for i, r := range recs {
		rec.Record(r, nil, func(err error) { results <- result{i, err} })
	}
	errs := make([]error, len(recs))
	seen := make([]bool, len(recs))
	timeout := time.After(10 * time.Second)
	for range recs {
		select {
		case r := <-results:
			require.False(t, seen[r.i], "done of record %d called twice", r.i)
			seen[r.i], errs[r.i] = true, r.err
		case <-timeout:
			t.Fatal("not every record's done was called within 10 s")
		}
	}
	return errs
}

// auditMessages returns every message in AUDIT, oldest first.
func auditMessages(t *testing.T, ns *jstest.Server) []*natsjs.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	str, err := ns.JS.Stream(ctx, jetstream.StreamAudit)
	require.NoError(t, err)
	info, err := str.Info(ctx)
	require.NoError(t, err)
	var out []*natsjs.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := str.GetMsg(ctx, seq)
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}

func manyRecords(prefix string, n int) []history.Record {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	recs := make([]history.Record, n)
	for i := range recs {
		recs[i] = attemptRec(fmt.Sprintf("%s-%03d", prefix, i), "s1", fmt.Sprintf("e-%s-%03d", prefix, i), 1, delivery.StatusSucceeded, at)
	}
	return recs
}

// Once every indexer on AUDIT reads format 2, records given at once share
// messages (at most 64 each), and the indexer applies every one of them.
func TestRecorderBatchesRecordsOnceEveryIndexerReadsThem(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	ix := runIndexer(t, ns, store)
	rec := history.NewRecorder(ns.JS, nil, "r1")
	rec.SetFormatEvery(10 * time.Millisecond)
	runRecorder(t, rec)
	waitFormat(t, rec, history.FormatBatch)

	recs := manyRecords("b", 300)
	for i, err := range recordAll(t, rec, recs) {
		require.NoError(t, err, "record %d", i)
	}
	msgs := auditMessages(t, ns)
	require.LessOrEqual(t, len(msgs), 300/64+3, "300 records in %d messages: not batched", len(msgs))
	for _, m := range msgs {
		require.Equal(t, history.BatchSubject, m.Subject)
		require.Equal(t, "2", m.Header.Get(history.HeaderAudit))
		require.Empty(t, m.Header.Get("Nats-Msg-Id"), "the index deduplicates, not the stream")
	}
	waitApplied(t, ix, msgs[len(msgs)-1].Sequence)
	for _, r := range recs {
		d, err := store.Get(r.DeliveryID)
		require.NoError(t, err, r.DeliveryID)
		require.Equal(t, "r1", d.Attempts[0].Replica)
	}
}

// While an indexer of the previous release (its consumer without the
// format metadata) is registered, every record is a message of its own, as
// that indexer reads them; once it is gone, the recorder batches.
func TestRecorderWritesOneRecordPerMessageBesideAnOldIndexer(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	runIndexer(t, ns, store)
	registerOldIndexer(t, ns, "old")
	rec := history.NewRecorder(ns.JS, nil, "r1")
	rec.SetFormatEvery(5 * time.Millisecond)
	runRecorder(t, rec)
	// One at a time, each a round trip: over many reads of the indexers' formats.
	for _, r := range manyRecords("one", 40) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, rec.Publish(ctx, r, nil))
		cancel()
	}
	msgs := auditMessages(t, ns)
	require.Len(t, msgs, 40)
	for _, m := range msgs {
		require.Equal(t, jetstream.AuditSubject("s1"), m.Subject)
		require.Empty(t, m.Header.Get(history.HeaderAudit))
		var r history.Record
		require.NoError(t, json.Unmarshal(m.Data, &r), "format 1: the record is the message")
	}
	require.Equal(t, 1, rec.Format())

	require.NoError(t, ns.JS.DeleteConsumer(context.Background(), jetstream.StreamAudit, "audit-old"))
	waitFormat(t, rec, history.FormatBatch)
}

// A batch AUDIT refuses fails every record in it, and none of them is in
// the stream; the records reported written are. Here AUDIT takes messages
// of at most 2,000 bytes: a record alone fits, a batch of many does not.
func TestRecorderFailsEveryRecordOfAFailedBatch(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	ctx := context.Background()
	runIndexer(t, ns, openStore(t))
	rec := history.NewRecorder(ns.JS, nil, "r1")
	rec.SetFormatEvery(10 * time.Millisecond)
	runRecorder(t, rec)
	waitFormat(t, rec, history.FormatBatch)
	str, err := ns.JS.Stream(ctx, jetstream.StreamAudit)
	require.NoError(t, err)
	cfg := str.CachedInfo().Config
	cfg.MaxMsgSize = 2000
	_, err = ns.JS.UpdateStream(ctx, cfg)
	require.NoError(t, err)

	recs := manyRecords("f", 100)
	errs := recordAll(t, rec, recs)
	written := map[string]bool{}
	for _, m := range auditMessages(t, ns) {
		got, err := history.DecodeRecords(nil, nats.Header(m.Header), m.Data)
		require.NoError(t, err)
		for _, r := range got {
			written[r.DeliveryID] = true
		}
	}
	failed := 0
	for i, r := range recs {
		if errs[i] != nil {
			failed++
			require.False(t, written[r.DeliveryID], "%s reported failed but written", r.DeliveryID)
		} else {
			require.True(t, written[r.DeliveryID], "%s reported written but not in AUDIT", r.DeliveryID)
		}
	}
	require.GreaterOrEqual(t, failed, 50, "the batches of many records failed")
}

// A kept job is written beside its record, and the record refers to it: the
// requeue path finds it by the sequence the index keeps.
func TestRecorderKeepsTheJob(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	ctx := context.Background()
	store := openStore(t)
	runIndexer(t, ns, store)
	rec := history.NewRecorder(ns.JS, store, "r1")
	rec.SetFormatEvery(10 * time.Millisecond)
	runRecorder(t, rec)
	waitFormat(t, rec, history.FormatBatch)

	r := manyRecords("k", 1)[0]
	r.Status = delivery.StatusFailed
	job := delivery.Job{ID: r.DeliveryID, EventID: r.EventID, Event: r.Event, SubscriptionID: r.SubscriptionID,
		EventTime: r.At, CreatedAt: r.CreatedAt, Attempt: 4, Data: []byte(`{"robot_id":"R001"}`)}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, rec.Publish(pctx, r, &job))
	seq, err := store.JobSeq(r.DeliveryID) // applied at once by Publish
	require.NoError(t, err)
	str, err := ns.JS.Stream(ctx, jetstream.StreamAudit)
	require.NoError(t, err)
	m, err := str.GetMsg(ctx, seq)
	require.NoError(t, err)
	require.Equal(t, jetstream.AuditJobSubject("s1"), m.Subject)
	got, err := delivery.DecodeJob(m.Header, m.Data)
	require.NoError(t, err)
	require.Equal(t, job.ID, got.ID)
	require.Equal(t, 4, got.Attempt)
	require.Equal(t, job.Data, got.Data)
}

// Records queued when Run's context ends are still written; once Run has
// returned, a record fails at once.
func TestRecorderFlushesThenRefuses(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	rec := history.NewRecorder(ns.JS, nil, "r1")
	ctx, cancel := context.WithCancel(context.Background())
	recs := manyRecords("s", 20)
	results := make(chan error, len(recs))
	for _, r := range recs {
		rec.Record(r, nil, func(err error) { results <- err })
	}
	cancel() // before Run starts: all it does is flush
	require.NoError(t, rec.Run(ctx))
	for range recs {
		select {
		case err := <-results:
			require.NoError(t, err)
		default:
			t.Fatal("Run returned before every queued record's done was called")
		}
	}
	require.Len(t, auditMessages(t, ns), 20)

	var got error
	called := false
	rec.Record(recs[0], nil, func(err error) { got, called = err, true })
	require.True(t, called, "done is called at once")
	require.ErrorIs(t, got, history.ErrRecorderStopped)
}

// A record written twice (a worker that died after recording, a batch
// sent again) is applied once: one attempt, counted once.
func TestIndexerMergesARecordWrittenTwice(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	ix := runIndexer(t, ns, store)
	rec := history.NewRecorder(ns.JS, nil, "r1")
	rec.SetFormatEvery(10 * time.Millisecond)
	runRecorder(t, rec)
	waitFormat(t, rec, history.FormatBatch)
	r := manyRecords("twice", 1)[0]
	r.At = time.Now().UTC()
	r.Attempt.At = r.At
	for range 2 {
		for _, err := range recordAll(t, rec, []history.Record{r}) {
			require.NoError(t, err)
		}
	}
	msgs := auditMessages(t, ns)
	require.Len(t, msgs, 2, "written twice")
	waitApplied(t, ix, msgs[1].Sequence)
	d, err := store.Get(r.DeliveryID)
	require.NoError(t, err)
	require.Len(t, d.Attempts, 1)
	h, err := store.Health(time.Now(), "s1")
	require.NoError(t, err)
	require.Equal(t, 1, h["s1"].Attempts1h)
}

// DecodeRecords reads both formats, keeps the good lines of a batch with a
// bad one, and reads nothing of a format it does not know.
func TestDecodeRecords(t *testing.T) {
	t.Parallel()
	one, err := json.Marshal(manyRecords("x", 1)[0])
	require.NoError(t, err)
	recs, err := history.DecodeRecords(nil, nats.Header{}, one)
	require.NoError(t, err)
	require.Len(t, recs, 1)

	batch := nats.Header{history.HeaderAudit: []string{"2"}}
	recs, err = history.DecodeRecords(recs, batch, []byte(string(one)+"\n{not json\n"+string(one)+"\n"))
	require.ErrorContains(t, err, "decode a batch's record")
	require.Len(t, recs, 3)

	recs, err = history.DecodeRecords(nil, nats.Header{history.HeaderAudit: []string{"3"}}, one)
	require.ErrorContains(t, err, `record format "3"`)
	require.Empty(t, recs)
	_, err = history.DecodeRecords(nil, nats.Header{}, []byte(`{"event":"x"}`))
	require.ErrorContains(t, err, "no delivery id")
}
