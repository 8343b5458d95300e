package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
)

// Audit record formats.
//
// Format 1 (every release before this one): one record per AUDIT message,
// JSON, on AuditSubject(subscription id).
//
// Format 2: a batch of records per message, on BatchSubject, with the header
// HeaderAudit: 2 and one JSON record per line. Every indexer of this release
// reads both; an indexer of the previous release reads only format 1, so a
// Recorder writes format 2 only while every indexer registered on AUDIT says
// it reads it (see readsFormat).
const (
	// HeaderAudit names the record format of a batch message.
	HeaderAudit = "Webhookd-Audit"
	// FormatBatch is the value of HeaderAudit on a batch of records.
	FormatBatch = 2
	// BatchSubject is the subject of record batches: one token after the
	// prefix like every record (AuditRecords), and no subscription id (a
	// UUID) can be "batch".
	BatchSubject = jetstream.AuditPrefix + "batch"
	// metaReads is the metadata key of an indexer's AUDIT consumer that
	// says the highest record format the indexer reads.
	metaReads = "webhookd.audit.reads"
)

// Batch limits. A batch holds at most batchRecords records and batchBytes
// of them (a record alone larger than that goes alone; AUDIT takes up to the
// server's max_payload, 1 MiB by default, and records are bounded to a few
// KiB by Bound).
const (
	batchRecords = 64
	batchBytes   = 256 << 10
	// publishTimeout bounds the wait for a batch's acknowledgement.
	publishTimeout = 10 * time.Second
	// flushTimeout bounds the flush of what is queued once Run's context
	// is done.
	flushTimeout = 5 * time.Second
	// formatEvery is how often the recorder reads which formats the
	// indexers on AUDIT read.
	formatEvery = 5 * time.Second
)

// ErrRecorderStopped is the error done gets for a record given to a
// Recorder whose Run has returned.
var ErrRecorderStopped = errors.New("delivery: recorder stopped")

// Recorder writes audit records to the AUDIT stream, the durable record of
// every attempt and verdict. Every replica's Indexer applies them to its
// Store; the bbolt store is an index that can be rebuilt from the stream, so
// the workers do not wait for it.
//
// Records are committed in groups: Run sends what has been queued as one
// batch and, while that batch waits for its acknowledgement, the next one
// forms. One batch is in flight at a time.
type Recorder struct {
	js      natsjs.JetStream
	store   *Store
	replica string
	// formatEvery is how often Run reads the indexers' formats.
	formatEvery time.Duration

	format atomic.Int32 // the format Run writes: 1 or FormatBatch

	mu      sync.Mutex
	queue   []pending
	wake    chan struct{} // has a value when queue grew while Run waited
	stopped bool          // Run has returned
}

// pending is a record waiting for its batch.
type pending struct {
	rec  Record
	keep *delivery.Job
	done func(error)
	// out, if not nil, gets the record as written (JobSeq set) before
	// done(nil).
	out *Record
}

// finish calls p's done with err.
func (p *pending) finish(err error) {
	if err == nil && p.out != nil {
		*p.out = p.rec
	}
	p.done(err)
}

// NewRecorder returns a Recorder that stamps records with replica; Run
// drives it. store, if not nil, is applied Publish's records at once, so an
// API answer that follows reads its own write.
func NewRecorder(js natsjs.JetStream, store *Store, replica string) *Recorder {
	r := &Recorder{js: js, store: store, replica: replica, formatEvery: formatEvery, wake: make(chan struct{}, 1)}
	r.format.Store(1)
	return r
}

// Record queues rec — with keep, the job kept beside it for a later
// requeue — for the next AUDIT batch and returns at once. done is called
// exactly once, from the recorder's own goroutine, with nil when AUDIT has
// confirmed the batch holding rec, or with the error (then none of that
// batch counts as recorded). done must not block.
//
// A kept job is written to AUDIT as a message of its own, before the batch
// holding rec, and rec refers to it (JobSeq): the requeue path reads it
// whatever the record's format. After Run has returned, done is called at
// once with ErrRecorderStopped.
func (r *Recorder) Record(rec Record, keep *delivery.Job, done func(error)) {
	r.enqueue(pending{rec: r.stamp(rec), keep: keep, done: done})
}

func (r *Recorder) enqueue(p pending) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		p.done(ErrRecorderStopped)
		return
	}
	r.queue = append(r.queue, p)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Publish records rec like Record and waits for the confirmation, then
// applies rec to this replica's store (when the Recorder has one), so an API
// answer that follows reads its own write. For callers off the hot path:
// the admin API, the queue, the router's rejections. On error the record
// may or may not be in AUDIT; the caller must not settle as if it were.
func (r *Recorder) Publish(ctx context.Context, rec Record, keep *delivery.Job) error {
	res := make(chan error, 1)
	var written Record
	r.enqueue(pending{rec: r.stamp(rec), keep: keep, done: func(err error) { res <- err }, out: &written})
	select {
	case err := <-res:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return fmt.Errorf("delivery: record %s: %w", rec.DeliveryID, context.Cause(ctx))
	}
	if r.store == nil {
		return nil
	}
	if err := r.store.Apply(written); err != nil {
		return fmt.Errorf("delivery: record %s is in AUDIT, but applying it to this replica's index failed: %w", rec.DeliveryID, err)
	}
	return nil
}

// stamp marks rec as this replica's and bounds its free-text fields.
func (r *Recorder) stamp(rec Record) Record {
	rec.Replica = r.replica
	if rec.Attempt != nil {
		a := *rec.Attempt
		a.Replica = r.replica
		rec.Attempt = &a
	}
	rec.Bound()
	return rec
}

// Format returns the record format the recorder writes now: 1 until every
// indexer on AUDIT reads FormatBatch.
func (r *Recorder) Format() int { return int(r.format.Load()) }

// Run sends the queued records in batches until ctx is done, then flushes
// what is queued (waiting at most flushTimeout) and returns nil; the
// records given to Record after that fail at once. Call it once.
func (r *Recorder) Run(ctx context.Context) error {
	fctx, stopFormat := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.followFormat(fctx) })
	defer func() { stopFormat(); wg.Wait() }()
	for {
		if ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-r.wake:
			}
		}
		if ctx.Err() != nil {
			r.flush(context.WithoutCancel(ctx))
			return nil
		}
		for {
			batch := r.take()
			if len(batch) == 0 {
				break
			}
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
			r.send(pctx, batch)
			cancel()
		}
	}
}

// flush sends what is queued, with a bounded wait, and stops the recorder.
func (r *Recorder) flush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	for {
		batch := r.take()
		if len(batch) == 0 {
			break
		}
		r.send(ctx, batch)
	}
	r.mu.Lock()
	r.stopped = true
	left := r.queue // queued between the last take and now
	r.queue = nil
	r.mu.Unlock()
	for i := range left {
		left[i].finish(ErrRecorderStopped)
	}
}

// take removes the next batch from the queue: up to batchRecords records
// and batchBytes of them, at least one.
func (r *Recorder) take() []pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, size := 0, 0
	for n < len(r.queue) && n < batchRecords {
		s := r.queue[n].rec.approxSize()
		if n > 0 && size+s > batchBytes {
			break
		}
		size += s
		n++
	}
	batch := make([]pending, n)
	copy(batch, r.queue)
	clear(r.queue[:n]) // let the records go
	r.queue = r.queue[n:]
	if len(r.queue) == 0 {
		r.queue = nil
	}
	return batch
}

// approxSize is an upper estimate of the record's encoded size, for the
// batch's byte cap, without encoding it.
func (rec *Record) approxSize() int {
	n := 400 + len(rec.DeliveryID) + len(rec.EventID) + len(rec.Event) + len(rec.SubscriptionID) + len(rec.URL) +
		len(rec.Reason) + len(rec.Replica)
	if a := rec.Attempt; a != nil {
		// Control characters are escaped as \u00XX: six bytes each.
		n += 300 + len(a.URL) + len(a.Reason) + 6*len(a.Error) + 6*len(a.Response) + len(a.Replica)
	}
	return n
}

// send writes batch to AUDIT, its kept jobs first, and calls each record's
// done.
func (r *Recorder) send(ctx context.Context, batch []pending) {
	batch = r.keepJobs(ctx, batch)
	if len(batch) == 0 {
		return
	}
	if r.format.Load() == FormatBatch {
		err := r.sendBatch(ctx, batch)
		for i := range batch {
			batch[i].finish(err)
		}
		return
	}
	r.sendEach(ctx, batch)
}

// keepJobs writes the jobs kept with batch's records to AUDIT, each a
// message of its own, and notes their sequences in the records. A record
// whose job could not be written fails and leaves the batch.
func (r *Recorder) keepJobs(ctx context.Context, batch []pending) []pending {
	type kept struct {
		i int
		f natsjs.PubAckFuture
	}
	var futures []kept
	out := batch[:0:0]
	failed := make(map[int]error)
	for i, p := range batch {
		if p.keep == nil {
			continue
		}
		f, err := r.js.PublishMsgAsync(p.keep.Msg(jetstream.AuditJobSubject(p.rec.SubscriptionID)))
		if err != nil {
			failed[i] = fmt.Errorf("delivery: keep job of %s: %w", p.rec.DeliveryID, err)
			continue
		}
		futures = append(futures, kept{i, f})
	}
	if len(futures) == 0 && len(failed) == 0 {
		return batch
	}
	for _, k := range futures {
		select {
		case ack := <-k.f.Ok():
			batch[k.i].rec.JobSeq = ack.Sequence
		case err := <-k.f.Err():
			failed[k.i] = fmt.Errorf("delivery: keep job of %s: %w", batch[k.i].rec.DeliveryID, err)
		case <-ctx.Done():
			failed[k.i] = fmt.Errorf("delivery: keep job of %s: %w", batch[k.i].rec.DeliveryID, context.Cause(ctx))
		}
	}
	for i := range batch {
		if err, ok := failed[i]; ok {
			batch[i].finish(err)
			continue
		}
		out = append(out, batch[i])
	}
	return out
}

// sendBatch writes batch as one format-2 message and waits for its
// acknowledgement.
func (r *Recorder) sendBatch(ctx context.Context, batch []pending) error {
	var body []byte
	for _, p := range batch {
		b, err := json.Marshal(p.rec)
		if err != nil {
			return fmt.Errorf("delivery: encode record %s: %w", p.rec.DeliveryID, err)
		}
		body = append(append(body, b...), '\n')
	}
	m := nats.NewMsg(BatchSubject)
	m.Header.Set(HeaderAudit, strconv.Itoa(FormatBatch))
	m.Data = body
	if _, err := r.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("delivery: publish a batch of %d records: %w", len(batch), err)
	}
	return nil
}

// sendEach writes each record of batch as a format-1 message of its own,
// all at once, and calls each done with its own acknowledgement.
func (r *Recorder) sendEach(ctx context.Context, batch []pending) {
	futures := make([]natsjs.PubAckFuture, len(batch))
	errs := make([]error, len(batch))
	for i, p := range batch {
		b, err := json.Marshal(p.rec)
		if err != nil {
			errs[i] = fmt.Errorf("delivery: encode record %s: %w", p.rec.DeliveryID, err)
			continue
		}
		m := nats.NewMsg(jetstream.AuditSubject(p.rec.SubscriptionID))
		m.Data = b
		if futures[i], err = r.js.PublishMsgAsync(m); err != nil {
			errs[i] = fmt.Errorf("delivery: publish record %s: %w", p.rec.DeliveryID, err)
		}
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs[i] = fmt.Errorf("delivery: publish record %s: %w", batch[i].rec.DeliveryID, err)
		case <-ctx.Done():
			errs[i] = fmt.Errorf("delivery: publish record %s: %w", batch[i].rec.DeliveryID, context.Cause(ctx))
		}
	}
	for i := range batch {
		batch[i].finish(errs[i])
	}
}

// followFormat reads, every formatEvery until ctx is done, which record
// formats the indexers registered on AUDIT read, and sets the format Run
// writes: FormatBatch once two reads in a row find that every indexer reads
// it, 1 as soon as one read finds an indexer that does not (a replica of
// the previous release, which would drop the batches). A read that fails
// changes nothing.
func (r *Recorder) followFormat(ctx context.Context) {
	t := time.NewTicker(r.formatEvery)
	defer t.Stop()
	passes := 0
	for {
		rctx, cancel := context.WithTimeout(ctx, r.formatEvery)
		all, err := r.allReadBatches(rctx)
		cancel()
		switch {
		case err != nil:
		case !all:
			passes = 0
			r.format.Store(1)
		default:
			if passes++; passes >= 2 {
				r.format.Store(FormatBatch)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// allReadBatches reports whether every indexer's consumer on AUDIT says it
// reads FormatBatch.
func (r *Recorder) allReadBatches(ctx context.Context) (bool, error) {
	str, err := r.js.Stream(ctx, jetstream.StreamAudit)
	if err != nil {
		return false, fmt.Errorf("stream %s: %w", jetstream.StreamAudit, err)
	}
	all := true
	list := str.ListConsumers(ctx)
	for info := range list.Info() {
		if !strings.HasPrefix(info.Name, indexerPrefix) {
			continue
		}
		if v, err := strconv.Atoi(info.Config.Metadata[metaReads]); err != nil || v < FormatBatch {
			all = false
		}
	}
	if err := list.Err(); err != nil {
		return false, fmt.Errorf("list the consumers of %s: %w", jetstream.StreamAudit, err)
	}
	return all, nil
}
