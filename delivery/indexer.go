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
// Each record is acked once its batch is applied, one by one: an ack that
// covered the records before it (AckAll) would also cover a record that
// never reached this replica (dropped at shutdown, lost in a reconnect),
// and it would never be indexed.
func (ix *Indexer) Run(ctx context.Context) error {
	cons, err := ix.js.CreateOrUpdateConsumer(ctx, jetstream.StreamAudit, natsjs.ConsumerConfig{
		Durable:           "audit-" + ix.cfg.Replica,
		Description:       "delivery history index of replica " + ix.cfg.Replica,
		FilterSubject:     jetstream.AuditRecords, // records only, not the kept jobs
		AckPolicy:         natsjs.AckExplicitPolicy,
		AckWait:           30 * time.Second,
		MaxAckPending:     4 * indexBatch,
		DeliverPolicy:     natsjs.DeliverAllPolicy,
		InactiveThreshold: 72 * time.Hour,
	})
	if ctx.Err() != nil {
		return nil // stopped while starting
	}
	if err != nil {
		return fmt.Errorf("delivery: indexer consumer: %w", err)
	}
	ix.mu.Lock()
	ix.applied = max(ix.applied, cons.CachedInfo().AckFloor.Stream) // applied before a restart
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

// index applies a batch of records in one transaction and acks each. A
// record the store refuses (invalid, a key over bbolt's limit) is dropped
// from the index (it stays in AUDIT). While the store cannot write at all
// (disk full), the batch is applied again every second, kept in progress,
// and nothing after it is applied: WaitApplied must not pass records that
// are not in the store. On ctx done it returns unacked (redelivered after a
// restart).
func (ix *Indexer) index(ctx context.Context, batch []natsjs.Msg) {
	recs := make([]Record, 0, len(batch))
	msgs := make([]natsjs.Msg, 0, len(batch))
	var high uint64
	for _, m := range batch {
		if md, err := m.Metadata(); err == nil {
			high = max(high, md.Sequence.Stream)
		}
		var rec Record
		if err := json.Unmarshal(m.Data(), &rec); err != nil || rec.DeliveryID == "" {
			ix.log.Error().Err(err).Str("subject", m.Subject()).Msg("dropping undecodable audit record")
			_ = m.Term()
			continue
		}
		recs, msgs = append(recs, rec), append(msgs, m)
	}
	var refused []bool
	for failures := 0; ; failures++ {
		var err error
		if refused, err = ix.apply(recs); err == nil {
			break
		}
		if failures%60 == 0 {
			ix.log.Error().Err(err).Int("records", len(recs)).Int("failures", failures+1).
				Msg("indexing audit records failed; retrying every second")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
	for i, m := range msgs {
		ack := m.Ack
		if refused[i] {
			ack = m.Term
		}
		if err := ack(); err != nil && !errors.Is(err, natsjs.ErrMsgAlreadyAckd) {
			ix.log.Warn().Err(err).Msg("ack audit record")
		}
	}
	ix.mu.Lock()
	if high > ix.applied {
		ix.applied = high
		close(ix.changed)
		ix.changed = make(chan struct{})
	}
	ix.mu.Unlock()
}

// apply applies recs in one transaction, leaving out the records the store
// refuses (refused[i]), one more transaction for each. It fails if the
// store cannot write (disk full, I/O error).
func (ix *Indexer) apply(recs []Record) (refused []bool, err error) {
	refused = make([]bool, len(recs))
	live := make([]int, len(recs)) // positions in recs of the records tried
	for i := range live {
		live[i] = i
	}
	for {
		batch := make([]Record, len(live))
		for i, at := range live {
			batch[i] = recs[at]
		}
		err := ix.store.ApplyBatch(batch)
		var r *refusal
		if !errors.As(err, &r) {
			return refused, err // nil: applied
		}
		at := live[r.at]
		refused[at] = true
		live = append(live[:r.at], live[r.at+1:]...)
		ix.log.Error().Err(err).Str("delivery_id", truncate(recs[at].DeliveryID, 64)).
			Msg("dropping an audit record the index refuses; it stays in the AUDIT stream")
	}
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
