package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

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

// Run indexes records until ctx is done, then returns nil. Its consumer is
// durable, so after a restart it resumes where it stopped; a consumer unused
// for three days is removed by the server, and the replica then re-indexes
// the whole stream (records are idempotent).
//
// The consumer acks all: one ack, of a batch's last record, once the batch
// is applied, instead of one per record. So a batch the store refuses as a
// whole (disk full) is retried until it is applied, and the index waits:
// acking a later batch would ack this one too.
func (ix *Indexer) Run(ctx context.Context) error {
	cons, floor, err := ix.consumer(ctx)
	if ctx.Err() != nil {
		return nil // stopped while starting
	}
	if err != nil {
		return fmt.Errorf("delivery: indexer consumer: %w", err)
	}
	ix.mu.Lock()
	ix.applied = max(ix.applied, floor) // applied before a restart
	ix.mu.Unlock()
	msgs := make(chan natsjs.Msg, indexBatch)
	cc, err := cons.Consume(func(m natsjs.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done(): // unacked: redelivered after a restart
		}
	}, natsjs.PullMaxMessages(indexBatch))
	if err != nil {
		return fmt.Errorf("delivery: indexer consume: %w", err)
	}
	defer cc.Stop()

	sweep := time.NewTicker(ix.cfg.SweepEvery)
	defer sweep.Stop()
	ix.sweep()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			ix.sweep()
		case m := <-msgs:
			batch := []natsjs.Msg{m}
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
			ix.index(ctx, batch)
		}
	}
}

// consumer creates or binds this replica's index consumer and returns it
// with the AUDIT sequence it had acked. One made before the consumer acked
// all (it acked each record) is replaced by one that starts after that.
func (ix *Indexer) consumer(ctx context.Context) (natsjs.Consumer, uint64, error) {
	cfg := natsjs.ConsumerConfig{
		Durable:           "audit-" + ix.cfg.Replica,
		Description:       "delivery history index of replica " + ix.cfg.Replica,
		FilterSubject:     jetstream.AuditRecords, // records only, not the kept jobs
		AckPolicy:         natsjs.AckAllPolicy,
		AckWait:           30 * time.Second,
		MaxAckPending:     4 * indexBatch,
		DeliverPolicy:     natsjs.DeliverAllPolicy,
		InactiveThreshold: 72 * time.Hour,
	}
	if old, err := ix.js.Consumer(ctx, jetstream.StreamAudit, cfg.Durable); err == nil {
		if info := old.CachedInfo(); info.Config.AckPolicy != natsjs.AckAllPolicy {
			floor := info.AckFloor.Stream
			if err := ix.js.DeleteConsumer(ctx, jetstream.StreamAudit, cfg.Durable); err != nil {
				return nil, 0, fmt.Errorf("replace %s: %w", cfg.Durable, err)
			}
			if floor > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = natsjs.DeliverByStartSequencePolicy, floor+1
			}
			ix.log.Info().Str("consumer", cfg.Durable).Uint64("from_sequence", floor+1).
				Msg("index consumer replaced by one that acks all")
			cons, err := ix.js.CreateOrUpdateConsumer(ctx, jetstream.StreamAudit, cfg)
			return cons, floor, err
		}
	} else if !errors.Is(err, natsjs.ErrConsumerNotFound) {
		return nil, 0, err
	}
	cons, err := ix.js.CreateOrUpdateConsumer(ctx, jetstream.StreamAudit, cfg)
	if err != nil {
		return nil, 0, err
	}
	return cons, cons.CachedInfo().AckFloor.Stream, nil
}

// index applies a batch of records in one transaction and acks them with
// one ack of the last. A batch the store refuses as a whole is retried
// every second until it is applied or ctx ends (unacked, it comes back
// after a restart).
func (ix *Indexer) index(ctx context.Context, batch []natsjs.Msg) {
	recs := make([]Record, 0, len(batch))
	var high uint64
	for _, m := range batch {
		if md, err := m.Metadata(); err == nil {
			high = max(high, md.Sequence.Stream)
		}
		var rec Record
		if err := json.Unmarshal(m.Data(), &rec); err != nil || rec.DeliveryID == "" {
			ix.log.Error().Err(err).Str("subject", m.Subject()).Msg("dropping undecodable audit record")
			continue
		}
		recs = append(recs, rec)
	}
	for failures := 0; ; failures++ {
		err := ix.apply(recs)
		if err == nil {
			break
		}
		if failures%60 == 0 {
			ix.log.Error().Err(err).Int("records", len(recs)).Msg("indexing audit records failed; retrying every second")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	if err := batch[len(batch)-1].Ack(); err != nil && !errors.Is(err, natsjs.ErrMsgAlreadyAckd) {
		ix.log.Warn().Err(err).Msg("ack audit records")
	}
	ix.mu.Lock()
	if high > ix.applied {
		ix.applied = high
		close(ix.changed)
		ix.changed = make(chan struct{})
	}
	ix.mu.Unlock()
}

// apply applies recs in one transaction. One record the store refuses
// (invalid, a key over bbolt's limit) must not hold back the others for
// good: if the transaction fails, they are applied one by one and the ones
// refused are dropped. It fails if the store cannot write (disk full, I/O
// error): then the batch is to be applied again.
func (ix *Indexer) apply(recs []Record) error {
	if err := ix.store.Apply(recs...); err == nil {
		return nil
	}
	for _, rec := range recs {
		err := ix.store.Apply(rec)
		if err == nil {
			continue
		}
		if !refused(err) {
			return err
		}
		ix.log.Error().Err(err).Str("delivery_id", truncate(rec.DeliveryID, 64)).
			Msg("dropping an audit record the index refuses; it stays in the AUDIT stream")
	}
	return nil
}

func (ix *Indexer) sweep() {
	n, err := ix.store.Sweep(ix.now().Add(-ix.cfg.Retention))
	if err != nil {
		ix.log.Error().Err(err).Msg("retention sweep failed")
		return
	}
	if n > 0 {
		ix.log.Info().Int("deleted", n).Dur("retention", ix.cfg.Retention).Msg("retention sweep")
	}
}
