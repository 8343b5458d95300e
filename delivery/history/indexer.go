package history

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/internal/boltfile"
	"github.com/robotlab/webhookd/jetstream"
)

// IndexerConfig configures an Indexer.
type IndexerConfig struct {
	// Replica names this replica's durable AUDIT consumer ("audit-<replica>").
	Replica string
	// Retention is how long deliveries are kept in the store.
	Retention time.Duration
	// SweepEvery is how often the retention sweep runs (default 1h).
	SweepEvery time.Duration
}

// Indexer feeds every audit record, whichever replica wrote it, into this
// replica's Store, and sweeps deliveries older than the retention.
type Indexer struct {
	cfg   IndexerConfig
	js    natsjs.JetStream
	store *Store
	log   zerolog.Logger
	now   func() time.Time

	// pending is how many records the consumer had for a store being
	// rebuilt (Store.Rebuilding) when it was created; Run's goroutine only.
	pending uint64

	mu      sync.Mutex
	applied uint64        // highest AUDIT sequence applied
	changed chan struct{} // closed and replaced when applied grows
}

// NewIndexer returns an Indexer; Run starts it.
func NewIndexer(cfg IndexerConfig, js natsjs.JetStream, store *Store, log zerolog.Logger) *Indexer {
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = time.Hour
	}
	return &Indexer{cfg: cfg, js: js, store: store, log: log.With().Str("component", "indexer").Logger(), now: time.Now,
		changed: make(chan struct{})}
}

// WaitApplied blocks until the record at AUDIT sequence seq, and every
// record before it, has been applied to the store, or ctx ends.
func (ix *Indexer) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		ix.mu.Lock()
		applied, changed := ix.applied, ix.changed
		ix.mu.Unlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("delivery: waiting for the index to reach AUDIT sequence %d (at %d): %w", seq, applied, context.Cause(ctx))
		}
	}
}

// indexBatch and indexEvery bound a batch of records applied in one
// transaction: a commit (pages written, fdatasync) costs about as much for
// one record as for hundreds, and the index may lag the stream by this much.
const (
	indexBatch = 1024
	indexEvery = 50 * time.Millisecond
)

// Run indexes records until ctx is done, then returns nil.
//
// Nothing is acked: the store keeps the AUDIT sequence it has applied the
// stream through, written in the same transaction as the records, and each
// start creates this replica's durable consumer ("audit-<replica>", which
// also tells /v1/status the replica exists) afresh to begin just after it,
// acking nothing (AckNone). A gap in the consumer's own sequence (messages
// lost between the server and this replica) or a failed pull recreates it
// from the same point. So every record is applied once, none is skipped,
// and the server keeps no acks to track.
//
// When the store's file is replaced (Store.Reset), the indexer starts over
// from the stream's start, and tells the store when it has caught up.
func (ix *Indexer) Run(ctx context.Context) error {
	sweep := time.NewTicker(ix.cfg.SweepEvery)
	defer sweep.Stop()
	ix.sweep()
	for failures := 0; ; {
		reset := ix.store.resets()
		from, err := ix.position(ctx)
		var cons natsjs.Consumer
		if err == nil {
			ix.setApplied(from)
			cons, err = ix.consumer(ctx, from+1)
		}
		if err == nil {
			ix.noteRebuild(cons)
			err = ix.follow(ctx, cons, sweep.C, reset)
			if ix.appliedSeq() > from {
				failures = 0 // it got somewhere before losing its place
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errStoreReset) || errors.Is(err, boltfile.ErrDamaged) {
			continue // the file was replaced: start over from the new one
		}
		failures++
		if failures == 1 || failures%60 == 0 {
			ix.log.Warn().Err(err).Int("failures", failures).Msg("index consumer lost its place; recreating it")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 2*time.Second)):
		}
	}
}

// errStoreReset ends follow when the store's file was replaced.
var errStoreReset = errors.New("delivery: the index's file was replaced")

// noteRebuild notes how many records a store being rebuilt waits for,
// and ends the rebuild at once if there are none.
func (ix *Indexer) noteRebuild(cons natsjs.Consumer) {
	ix.pending = 0
	if !ix.store.Rebuilding() {
		return
	}
	if ix.pending = cons.CachedInfo().NumPending; ix.pending == 0 {
		ix.store.rebuilt()
	}
}

func (ix *Indexer) appliedSeq() uint64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.applied
}

// setApplied notes seq as applied and wakes WaitApplied.
func (ix *Indexer) setApplied(seq uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if seq != ix.applied {
		ix.applied = seq
		close(ix.changed)
		ix.changed = make(chan struct{})
	}
}

// position returns the AUDIT sequence the store was applied through. A
// stream replaced since (its creation time differs, or it is shorter) is
// indexed again from its start. A store indexed by the previous version,
// which acked each record, resumes at its consumer's ack floor. Either is
// noted in the store before the consumer is replaced.
func (ix *Indexer) position(ctx context.Context) (uint64, error) {
	str, err := ix.js.Stream(ctx, jetstream.StreamAudit)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", jetstream.StreamAudit, err)
	}
	info := str.CachedInfo()
	if info.Cluster != nil && info.Cluster.Leader == "" {
		// A member without a leader answers from its own state, which
		// may lag: it must not pass for a replaced stream.
		return 0, fmt.Errorf("stream %s has no leader", jetstream.StreamAudit)
	}
	pos, ok, err := ix.store.AuditApplied()
	switch {
	case err != nil:
		return 0, err
	case !ok:
		pos = AuditPosition{Stream: info.Created}
		if pos.Seq, err = ix.ackFloor(ctx); err != nil {
			return 0, err
		}
	case !pos.Stream.Equal(info.Created) || info.State.LastSeq < pos.Seq:
		ix.log.Warn().Uint64("applied", pos.Seq).Time("applied_stream_created", pos.Stream).
			Time("stream_created", info.Created).Uint64("stream_last", info.State.LastSeq).
			Msg("the AUDIT stream was replaced since this index applied it; indexing it again from its start")
		pos = AuditPosition{Stream: info.Created}
	default:
		return pos.Seq, nil
	}
	if err := ix.store.SetAuditApplied(pos); err != nil {
		return 0, err
	}
	return pos.Seq, nil
}

// ackFloor returns the ack floor of the consumer the previous version
// acked each record on, or 0 if there is none.
func (ix *Indexer) ackFloor(ctx context.Context) (uint64, error) {
	c, err := ix.js.Consumer(ctx, jetstream.StreamAudit, ix.name())
	if errors.Is(err, natsjs.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("consumer %s: %w", ix.name(), err)
	}
	if info := c.CachedInfo(); info.Config.AckPolicy == natsjs.AckExplicitPolicy {
		return info.AckFloor.Stream, nil
	}
	return 0, nil // ours, from a start that applied nothing: its floor is only what it sent
}

// indexerPrefix starts the name of each indexer's AUDIT consumer.
const indexerPrefix = "audit-"

func (ix *Indexer) name() string { return indexerPrefix + ix.cfg.Replica }

// consumer creates this replica's consumer afresh, starting at AUDIT
// sequence from (a start sequence cannot be changed in place).
func (ix *Indexer) consumer(ctx context.Context, from uint64) (natsjs.Consumer, error) {
	if err := ix.js.DeleteConsumer(ctx, jetstream.StreamAudit, ix.name()); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
		return nil, err
	}
	return ix.js.CreateConsumer(ctx, jetstream.StreamAudit, natsjs.ConsumerConfig{
		Durable:           ix.name(),
		Description:       "delivery history index of replica " + ix.cfg.Replica,
		FilterSubject:     jetstream.AuditRecords, // records only, not the kept jobs
		AckPolicy:         natsjs.AckNonePolicy,
		DeliverPolicy:     natsjs.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: 72 * time.Hour,
		// Its state is thrown away at each start: one copy will do.
		Replicas: 1,
		// Tells the recorders this indexer reads batches (format 2).
		Metadata: map[string]string{metaReads: strconv.Itoa(FormatBatch)},
	})
}

// follow applies cons's records in batches until ctx is done (nil), the
// store's file is replaced (reset closed, or a write met the damage:
// errStoreReset) or the consumer loses its place (an error): a pull failed,
// or its sequence skipped messages. It sweeps on each tick of sweep.
func (ix *Indexer) follow(ctx context.Context, cons natsjs.Consumer, sweep <-chan time.Time, reset <-chan struct{}) error {
	fctx, stop := context.WithCancel(ctx)
	msgs := make(chan natsjs.Msg, indexBatch)
	failed := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { failed <- ix.feed(fctx, cons, msgs) })
	defer func() { stop(); wg.Wait() }()

	var delivered uint64 // the consumer's sequence of the last message
	var suspect uint64   // what the server had delivered at the last idle check, if more
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	for {
		var batch []natsjs.Msg
		select {
		case <-ctx.Done():
			return nil
		case <-reset:
			return errStoreReset
		case err := <-failed:
			return err
		case <-sweep:
			ix.sweep()
			continue
		case <-idle.C:
			if len(msgs) > 0 {
				continue // a tick from a slow commit or sweep: not idle
			}
			// Nothing came for a second: were the last messages lost? Those
			// still on their way at one check have come by the next.
			if suspect > delivered {
				return fmt.Errorf("the index consumer delivered %d records, %d of them received", suspect, delivered)
			}
			var err error
			if suspect, err = ix.sent(ctx, cons); err != nil {
				return err
			}
			continue
		case m := <-msgs:
			batch = append(batch, m)
		}
		idle.Reset(time.Second)
		suspect = 0 // counted while these were on their way
		full := time.NewTimer(indexEvery)
	gather:
		for len(batch) < indexBatch {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			case <-full.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		full.Stop()
		// Apply what came in order; stop at a gap.
		var gap error
		var high uint64 // the last record's AUDIT sequence
		for i, m := range batch {
			md, err := m.Metadata()
			if err != nil {
				gap = fmt.Errorf("index consumer message without metadata: %w", err)
			} else if md.Sequence.Consumer != delivered+1 {
				gap = fmt.Errorf("message %d of the index consumer arrived after %d", md.Sequence.Consumer, delivered)
			}
			if gap != nil {
				batch = batch[:i]
				break
			}
			delivered, high = md.Sequence.Consumer, md.Sequence.Stream
		}
		if !ix.index(ctx, batch, high) {
			if ctx.Err() != nil {
				return nil // ctx done while the store could not write
			}
			return errStoreReset
		}
		if ix.pending > 0 && delivered >= ix.pending {
			ix.pending = 0
			ix.store.rebuilt()
		}
		if gap != nil {
			return gap
		}
	}
}

// sent returns how many messages the server has sent cons: more than the
// indexer got shows a gap at the end, which no later message shows.
func (ix *Indexer) sent(ctx context.Context, cons natsjs.Consumer) (uint64, error) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := cons.Info(ictx)
	if err != nil {
		return 0, fmt.Errorf("index consumer info: %w", err)
	}
	return info.Delivered.Consumer, nil
}

// feed pulls cons's messages into msgs until ctx is done or a pull fails.
// Each pull is a Fetch of its own, so a request the server lost costs at
// most its expiry.
func (ix *Indexer) feed(ctx context.Context, cons natsjs.Consumer, msgs chan<- natsjs.Msg) error {
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second) // cut short when ctx ends
		b, err := cons.Fetch(indexBatch, natsjs.FetchContext(pctx))
		if err != nil {
			cancel()
			return fmt.Errorf("delivery: index pull: %w", err)
		}
		for m := range b.Messages() {
			select {
			case msgs <- m:
			case <-ctx.Done():
			}
		}
		cancel()
		if err := b.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, natsjs.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("delivery: index pull: %w", err)
		}
	}
	return nil
}

// index applies a batch of records, in stream order, in one transaction
// that also notes high, the batch's last sequence, as applied. A record the store
// refuses (invalid, a key over bbolt's limit) or cannot decode is left out
// of the index (it stays in AUDIT). While the store cannot write at all
// (disk full), the batch is applied again every second and nothing after
// it: WaitApplied must not pass records that are not in the store. It
// returns false if ctx ended first, or the write found the store's file
// damaged (it was replaced: the indexer starts over).
func (ix *Indexer) index(ctx context.Context, batch []natsjs.Msg, high uint64) bool {
	if len(batch) == 0 {
		return true
	}
	recs := make([]Record, 0, len(batch))
	for _, m := range batch {
		var err error
		if recs, err = DecodeRecords(recs, m.Headers(), m.Data()); err != nil {
			ix.log.Error().Err(err).Str("subject", m.Subject()).Msg("dropping undecodable audit records; they stay in the AUDIT stream")
		}
	}
	for failures := 0; ; failures++ {
		err := ix.apply(recs, high)
		if err == nil {
			break
		}
		if errors.Is(err, boltfile.ErrDamaged) {
			return false
		}
		if failures%60 == 0 {
			ix.log.Error().Err(err).Int("records", len(recs)).Int("failures", failures+1).
				Msg("indexing audit records failed; retrying every second")
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
	if high > ix.appliedSeq() {
		ix.setApplied(high)
	}
	return true
}

// apply applies recs through AUDIT sequence high in one transaction,
// leaving out the records the store refuses, one more transaction for
// each. It fails if the store cannot write (disk full, I/O error).
func (ix *Indexer) apply(recs []Record, high uint64) error {
	for {
		err := ix.store.ApplyBatch(recs, high)
		var r *refusal
		if !errors.As(err, &r) {
			return err // nil: applied
		}
		ix.log.Error().Err(err).Str("delivery_id", truncate(recs[r.at].DeliveryID, 64)).
			Msg("dropping an audit record the index refuses; it stays in the AUDIT stream")
		recs = append(recs[:r.at:r.at], recs[r.at+1:]...)
	}
}

func (ix *Indexer) sweep() {
	n, err := ix.store.Sweep(ix.now().Add(-ix.cfg.Retention))
	if errors.Is(err, boltfile.ErrDamaged) {
		return // the file was replaced, and said so: the new one is swept next time
	}
	if err != nil {
		ix.log.Error().Err(err).Msg("retention sweep failed")
		return
	}
	if n > 0 {
		ix.log.Info().Int("deleted", n).Dur("retention", ix.cfg.Retention).Msg("retention sweep")
	}
}
