package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/robotlab/webhookd/delivery"
)

// Delivery is one event's delivery to one subscription, with every attempt.
type Delivery struct {
	ID             string          `json:"id"`
	EventID        string          `json:"event_id"`
	Event          string          `json:"event"`
	SubscriptionID string          `json:"subscription_id"`
	URL            string          `json:"url"`
	Status         delivery.Status `json:"status"`
	Reason         string          `json:"reason,omitempty"`
	Attempts       []AttemptInfo   `json:"attempts"` // oldest first
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

// ErrNotFound is returned for an unknown delivery id.
var ErrNotFound = errors.New("delivery: not found")

// ErrRebuilding is returned by the reads (Get, List, JobSeq) while the
// index is rebuilt from AUDIT after its file was replaced (Reset): until the
// indexer has caught up, an answer could leave deliveries out.
var ErrRebuilding = errors.New("delivery: the delivery index is being rebuilt from AUDIT after its file was found damaged; try again shortly")

// DB is the bbolt file the store is kept in: a *bolt.DB, or a
// *boltfile.File, which replaces a damaged file with an empty one and then
// calls Reset.
type DB interface {
	View(fn func(*bolt.Tx) error) error
	Update(fn func(*bolt.Tx) error) error
	Batch(fn func(*bolt.Tx) error) error
}

// refusal is a record the store can never apply (invalid, a key or value
// over bbolt's limits, its stored delivery undecodable): an error while
// merging it, inside the transaction, as opposed to a store that cannot
// write (the commit fails).
type refusal struct {
	at  int // the record's position in the batch
	err error
}

func (r *refusal) Error() string { return "record refused: " + r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

var (
	bucketDeliveries = []byte("deliveries")
	bucketJobs       = []byte("delivery_jobs") // delivery id → AUDIT sequence of the kept job (uint64 BE)
	bucketMeta       = []byte("delivery_meta") // "index_version" → uint64 BE
	keyIndexVersion  = []byte("index_version")
	keyAuditApplied  = []byte("audit_applied") // AUDIT sequence the indexer applied through, uint64 BE
	keyAuditStream   = []byte("audit_stream")  // creation time of that AUDIT stream, unix ns BE
	// The buckets of earlier index formats that the current one no longer
	// has (the first format's, then the second's), dropped by the upgrade.
	oldIndexBuckets = [][]byte{[]byte("idx_sub_time"), []byte("idx_event"), []byte("idx_status_time"), []byte("idx_time"),
		[]byte("dx_created"), []byte("dx_sub_created"), []byte("dx_type_created")}
)

// indexVersion is the format of the index buckets; a store written with
// another is re-indexed from its deliveries when opened.
const indexVersion = 3

// Store is this replica's index of delivery history in bbolt: deliveries by
// id, and composite time-ordered indexes over them (see index), with a
// retention sweep and per-subscription attempt counters (Health). It is safe
// for concurrent use; concurrent Apply calls are coalesced into one
// transaction.
type Store struct {
	db  DB
	now func() time.Time
	log zerolog.Logger

	rebuilding atomic.Bool // from Reset until the indexer has caught up
	mu         sync.Mutex
	reset      chan struct{} // closed and replaced by Reset
	// decoded counts the deliveries List decoded, so tests can check that
	// a query seeks an index rather than walking the history.
	decoded atomic.Int64
	// visited counts the index keys List stepped over.
	visited atomic.Int64
}

// OpenStore creates the store's buckets in db. A store written by an older
// version (another index format) is re-indexed from its deliveries first,
// with a log line; no delivery is lost.
func OpenStore(db DB, log zerolog.Logger) (*Store, error) {
	return openStore(db, log, reindexChunk)
}

func openStore(db DB, log zerolog.Logger, chunk int) (*Store, error) {
	var version uint64
	err := db.Update(func(tx *bolt.Tx) (err error) {
		version, err = createBuckets(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delivery: open store: %w", err)
	}
	s := &Store{db: db, now: time.Now, log: log, reset: make(chan struct{})}
	if version != indexVersion {
		start := time.Now()
		log.Warn().Uint64("from_format", version).Uint64("to_format", indexVersion).
			Msg("delivery store: rebuilding the delivery indexes from the stored deliveries (an upgrade; the admin API waits for it)")
		n, err := s.reindex(chunk)
		if err != nil {
			return nil, fmt.Errorf("delivery: open store: rebuild indexes: %w", err)
		}
		log.Warn().Int("deliveries", n).Dur("took", time.Since(start)).Msg("delivery store: indexes rebuilt")
	}
	return s, nil
}

// createBuckets creates the store's buckets in tx and returns the format
// of its index; an empty store takes the current one.
func createBuckets(tx *bolt.Tx) (version uint64, err error) {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return 0, err
	}
	if v := meta.Get(keyIndexVersion); len(v) == 8 {
		version = binary.BigEndian.Uint64(v)
	}
	for _, b := range [][]byte{bucketDeliveries, bucketJobs, bucketStats} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return 0, err
		}
	}
	for _, ix := range indexes {
		if _, err := tx.CreateBucketIfNotExists(ix.bucket); err != nil {
			return 0, err
		}
	}
	if k, _ := tx.Bucket(bucketDeliveries).Cursor().First(); k == nil && version != indexVersion {
		// Nothing to rebuild: drop the old format's (empty) buckets.
		for _, b := range oldIndexBuckets {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return 0, err
			}
		}
		return indexVersion, meta.Put(keyIndexVersion, binary.BigEndian.AppendUint64(nil, indexVersion))
	}
	return version, nil
}

// Reset is a boltfile.ResetFunc: the store's file was found damaged and
// replaced by an empty one, in which tx runs. It creates the store's
// buckets and has the Indexer rebuild the index from AUDIT; until it has
// caught up, Get, List and JobSeq return ErrRebuilding.
func (s *Store) Reset(tx *bolt.Tx) error {
	if _, err := createBuckets(tx); err != nil {
		return fmt.Errorf("delivery: reset store: %w", err)
	}
	s.rebuilding.Store(true)
	s.mu.Lock()
	close(s.reset)
	s.reset = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// Rebuilding reports whether the index is being rebuilt after a Reset.
func (s *Store) Rebuilding() bool { return s.rebuilding.Load() }

// resets returns a channel closed at the next Reset.
func (s *Store) resets() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reset
}

// rebuilt ends the rebuild Reset started: the indexer has caught up.
func (s *Store) rebuilt() {
	if s.rebuilding.CompareAndSwap(true, false) {
		s.log.Info().Msg("delivery index rebuilt from AUDIT; serving delivery history again")
	}
}

// readable returns ErrRebuilding while the index is rebuilt.
func (s *Store) readable() error {
	if s.rebuilding.Load() {
		return ErrRebuilding
	}
	return nil
}

// reindexChunk is how many deliveries one transaction of reindex covers.
const reindexChunk = 20_000

// reindex drops every index bucket, the old ones included, and the
// counters, and rebuilds them from the deliveries, a chunk per transaction.
// The format version is written last: a crash part way starts it afresh.
func (s *Store) reindex(chunk int) (int, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		drop := append(slices.Clone(oldIndexBuckets), bucketStats)
		for _, ix := range indexes {
			drop = append(drop, ix.bucket)
		}
		for _, b := range drop {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
			if !slices.ContainsFunc(oldIndexBuckets, func(o []byte) bool { return bytes.Equal(o, b) }) {
				if _, err := tx.CreateBucket(b); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	var after []byte
	for {
		done := false
		err := s.db.Update(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketDeliveries).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for range chunk {
				if k == nil {
					done = true
					return tx.Bucket(bucketMeta).Put(keyIndexVersion, binary.BigEndian.AppendUint64(nil, indexVersion))
				}
				var d Delivery
				if err := json.Unmarshal(v, &d); err != nil {
					return fmt.Errorf("decode delivery %q: %w", k, err)
				}
				if err := putIndexes(tx, &d, nil, false); err != nil {
					return err
				}
				for _, a := range d.Attempts {
					if err := countAttempt(tx, d.SubscriptionID, a); err != nil {
						return err
					}
				}
				after = bytes.Clone(k)
				n++
				k, v = c.Next()
			}
			return nil
		})
		if err != nil || done {
			return n, err
		}
	}
}

// Apply merges audit records into the store. Applying a record twice, or
// records out of order, gives the same result: attempts are keyed by number,
// and the status follows the newest record. Concurrent calls share a
// transaction (each waits up to bbolt's MaxBatchDelay for the others).
func (s *Store) Apply(recs ...Record) error {
	// Batch may run fn more than once; applyTx is idempotent.
	return applyIn(s.db.Batch, recs, 0)
}

// ApplyBatch merges recs like Apply, in one transaction at once, and notes
// in it that AUDIT is applied through sequence through (of the stream
// SetAuditApplied named): for the indexer, which gathers its batches
// itself, in stream order, and resumes from AuditApplied.
func (s *Store) ApplyBatch(recs []Record, through uint64) error {
	return applyIn(s.db.Update, recs, through)
}

// AuditPosition is how far the indexer has applied AUDIT: through
// sequence Seq of the stream created at Stream (a stream replaced since
// numbers its records from 1 again).
type AuditPosition struct {
	Stream time.Time
	Seq    uint64
}

// AuditApplied returns how far the indexer has applied AUDIT, and false if
// it never noted it (a new store, or one indexed by an older version).
func (s *Store) AuditApplied() (AuditPosition, bool, error) {
	var pos AuditPosition
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		stream, seq := meta.Get(keyAuditStream), meta.Get(keyAuditApplied)
		if ok = len(stream) == 8 && len(seq) == 8; ok {
			pos = AuditPosition{Stream: time.Unix(0, int64(binary.BigEndian.Uint64(stream))).UTC(), Seq: binary.BigEndian.Uint64(seq)}
		}
		return nil
	})
	if err != nil {
		return pos, false, fmt.Errorf("delivery: read applied position: %w", err)
	}
	return pos, ok, nil
}

// SetAuditApplied notes pos as how far AUDIT is applied: for the indexer,
// when it starts over on a replaced stream or takes over from an older
// version.
func (s *Store) SetAuditApplied(pos AuditPosition) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyAuditStream, binary.BigEndian.AppendUint64(nil, uint64(pos.Stream.UnixNano()))); err != nil {
			return err
		}
		return meta.Put(keyAuditApplied, binary.BigEndian.AppendUint64(nil, pos.Seq))
	})
	if err != nil {
		return fmt.Errorf("delivery: note applied position: %w", err)
	}
	return nil
}

// applyIn applies recs in a transaction that run starts, and notes through
// as the AUDIT sequence applied (0 notes nothing).
func applyIn(run func(func(*bolt.Tx) error) error, recs []Record, through uint64) error {
	if len(recs) == 0 && through == 0 {
		return nil
	}
	err := run(func(tx *bolt.Tx) error {
		for i, r := range recs {
			if err := applyTx(tx, r); err != nil {
				return &refusal{at: i, err: err}
			}
		}
		if through == 0 {
			return nil
		}
		return tx.Bucket(bucketMeta).Put(keyAuditApplied, binary.BigEndian.AppendUint64(nil, through))
	})
	if err != nil {
		return fmt.Errorf("delivery: apply records: %w", err)
	}
	return nil
}

func applyTx(tx *bolt.Tx, r Record) error {
	if r.DeliveryID == "" {
		return errors.New("record without delivery id")
	}
	b := tx.Bucket(bucketDeliveries)
	b.FillPercent = appendFill // ids are time-ordered: new deliveries append
	var d Delivery
	var old *Delivery
	if v := b.Get([]byte(r.DeliveryID)); v != nil {
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode delivery %s: %w", r.DeliveryID, err)
		}
		prev := d
		old = &prev
	} else {
		created := r.CreatedAt
		if created.IsZero() {
			created = r.At
		}
		d = Delivery{ID: r.DeliveryID, EventID: r.EventID, Event: r.Event, SubscriptionID: r.SubscriptionID,
			URL: r.URL, Attempts: []AttemptInfo{}, CreatedAt: created.UTC()}
	}
	if r.Attempt != nil {
		i := slices.IndexFunc(d.Attempts, func(a AttemptInfo) bool { return a.Attempt == r.Attempt.Attempt })
		if i >= 0 {
			d.Attempts[i] = *r.Attempt
		} else {
			// A new attempt: count it once, whichever replica made it.
			if err := countAttempt(tx, d.SubscriptionID, *r.Attempt); err != nil {
				return err
			}
			d.Attempts = append(d.Attempts, *r.Attempt)
			slices.SortFunc(d.Attempts, func(a, b AttemptInfo) int { return a.Attempt - b.Attempt })
		}
	}
	if old == nil || !r.At.Before(d.UpdatedAt) {
		d.Status, d.Reason, d.UpdatedAt = r.Status, r.Reason, r.At.UTC()
		if r.URL != "" {
			d.URL = r.URL
		}
	}
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := b.Put([]byte(d.ID), v); err != nil {
		return err
	}
	if r.JobSeq != 0 {
		jobs := tx.Bucket(bucketJobs)
		// The newest kept job wins; an older record applied late must not
		// bring back a job that was requeued since.
		if old := jobs.Get([]byte(d.ID)); len(old) != 8 || binary.BigEndian.Uint64(old) < r.JobSeq {
			if err := jobs.Put([]byte(d.ID), binary.BigEndian.AppendUint64(nil, r.JobSeq)); err != nil {
				return err
			}
		}
	}
	return putIndexes(tx, &d, old, true)
}

// Get returns the delivery with id, ErrNotFound, or ErrRebuilding.
func (s *Store) Get(id string) (Delivery, error) {
	if err := s.readable(); err != nil {
		return Delivery{}, err
	}
	var d Delivery
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDeliveries).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &d)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Delivery{}, err
		}
		return Delivery{}, fmt.Errorf("delivery: get %s: %w", id, err)
	}
	return d, nil
}

// JobSeq returns the AUDIT stream sequence of the job kept for a delivery
// that left the queue unsent (failed or paused), or ErrNotFound.
func (s *Store) JobSeq(id string) (uint64, error) {
	if err := s.readable(); err != nil {
		return 0, err
	}
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get([]byte(id))
		if len(v) != 8 {
			return ErrNotFound
		}
		seq = binary.BigEndian.Uint64(v)
		return nil
	})
	return seq, err
}

// Sweep deletes deliveries created before cutoff, with their jobs and index
// entries, and the attempt counters older than any Health window, and
// returns how many deliveries it deleted.
func (s *Store) Sweep(cutoff time.Time) (int, error) {
	total := 0
	for {
		n, err := s.sweepBatch(cutoff, 1000)
		total += n
		if err != nil {
			return total, err
		}
		if n < 1000 {
			break
		}
	}
	if err := s.sweepStats(s.now()); err != nil {
		return total, fmt.Errorf("delivery: sweep counters: %w", err)
	}
	return total, nil
}

func (s *Store) sweepBatch(cutoff time.Time, limit int) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		// Every delivery has an entry in the status index: walk each
		// status's range from its oldest.
		byStatus := tx.Bucket(idxStatus.bucket)
		end := timeKey(cutoff)
		var keys [][]byte
		var ids [][]byte
		for _, p := range ranges(byStatus, plan{merge: true}) {
			c := byStatus.Cursor()
			for k, _ := c.Seek(p); bytes.HasPrefix(k, p) && len(k) >= len(p)+8 && bytes.Compare(k[len(p):len(p)+8], end) < 0 && len(keys) < limit; k, _ = c.Next() {
				keys, ids = append(keys, bytes.Clone(k)), append(ids, bytes.Clone(k[len(p)+8:]))
			}
		}
		for i, k := range keys {
			id := ids[i]
			if v := tx.Bucket(bucketDeliveries).Get(id); v != nil {
				var d Delivery
				if err := json.Unmarshal(v, &d); err == nil {
					if err := deleteIndexes(tx, &d); err != nil {
						return err
					}
				}
			}
			for _, b := range [][]byte{bucketDeliveries, bucketJobs} {
				if err := tx.Bucket(b).Delete(id); err != nil {
					return err
				}
			}
			if err := byStatus.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("delivery: sweep: %w", err)
	}
	return n, nil
}
