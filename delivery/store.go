package delivery

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Delivery is one event's delivery to one subscription, with every attempt.
type Delivery struct {
	ID             string        `json:"id"`
	EventID        string        `json:"event_id"`
	Event          string        `json:"event"`
	SubscriptionID string        `json:"subscription_id"`
	URL            string        `json:"url"`
	Status         Status        `json:"status"`
	Reason         string        `json:"reason,omitempty"`
	Attempts       []AttemptInfo `json:"attempts"` // oldest first
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
}

// ErrNotFound is returned for an unknown delivery id.
var ErrNotFound = errors.New("delivery: not found")

var (
	bucketDeliveries = []byte("deliveries")
	bucketJobs       = []byte("delivery_jobs")   // delivery id → AUDIT sequence of the kept job (uint64 BE)
	bucketBySub      = []byte("idx_sub_time")    // sub | 0 | created | id
	bucketByEvent    = []byte("idx_event")       // event | 0 | id
	bucketByStatus   = []byte("idx_status_time") // status | 0 | created | id
	bucketByTime     = []byte("idx_time")        // created | id
)

// Store is this replica's index of delivery history in bbolt: deliveries by
// id, subscription, event id, status and creation time, with a retention
// sweep. It is safe for concurrent use; concurrent Apply calls are coalesced
// into one transaction.
type Store struct {
	db *bolt.DB
}

// OpenStore creates the store's buckets in db.
func OpenStore(db *bolt.DB) (*Store, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDeliveries, bucketJobs, bucketBySub, bucketByEvent, bucketByStatus, bucketByTime} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delivery: open store: %w", err)
	}
	return &Store{db: db}, nil
}

// Apply merges audit records into the store. Applying a record twice, or
// records out of order, gives the same result: attempts are keyed by number,
// and the status follows the newest record.
func (s *Store) Apply(recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	// Batch may run fn more than once; applyTx is idempotent.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		for _, r := range recs {
			if err := applyTx(tx, r); err != nil {
				return err
			}
		}
		return nil
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
	var d Delivery
	existed := false
	if v := b.Get([]byte(r.DeliveryID)); v != nil {
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode delivery %s: %w", r.DeliveryID, err)
		}
		existed = true
	} else {
		created := r.CreatedAt
		if created.IsZero() {
			created = r.At
		}
		d = Delivery{ID: r.DeliveryID, EventID: r.EventID, Event: r.Event, SubscriptionID: r.SubscriptionID,
			URL: r.URL, Attempts: []AttemptInfo{}, CreatedAt: created.UTC()}
	}
	oldStatus := d.Status
	if r.Attempt != nil {
		i := slices.IndexFunc(d.Attempts, func(a AttemptInfo) bool { return a.Attempt == r.Attempt.Attempt })
		if i >= 0 {
			d.Attempts[i] = *r.Attempt
		} else {
			d.Attempts = append(d.Attempts, *r.Attempt)
			slices.SortFunc(d.Attempts, func(a, b AttemptInfo) int { return a.Attempt - b.Attempt })
		}
	}
	if !existed || !r.At.Before(d.UpdatedAt) {
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
	ts := timeKey(d.CreatedAt)
	if !existed {
		if d.SubscriptionID != "" {
			if err := tx.Bucket(bucketBySub).Put(key(d.SubscriptionID, ts, d.ID), nil); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketByEvent).Put(key(d.EventID, nil, d.ID), nil); err != nil {
			return err
		}
		if err := tx.Bucket(bucketByTime).Put(append(ts, d.ID...), nil); err != nil {
			return err
		}
	}
	if oldStatus != d.Status {
		st := tx.Bucket(bucketByStatus)
		if existed {
			if err := st.Delete(key(string(oldStatus), ts, d.ID)); err != nil {
				return err
			}
		}
		if err := st.Put(key(string(d.Status), ts, d.ID), nil); err != nil {
			return err
		}
	}
	return nil
}

func timeKey(t time.Time) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano()))
	return b
}

// key builds prefix | 0 | mid | id.
func key(prefix string, mid []byte, id string) []byte {
	k := make([]byte, 0, len(prefix)+1+len(mid)+len(id))
	k = append(k, prefix...)
	k = append(k, 0)
	k = append(k, mid...)
	return append(k, id...)
}

// Get returns the delivery with id, or ErrNotFound.
func (s *Store) Get(id string) (Delivery, error) {
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

// Query selects deliveries. Empty fields do not filter. Results are newest
// first; Cursor continues a previous page.
type Query struct {
	SubscriptionID string
	EventID        string
	Status         Status
	Since, Until   time.Time // creation time range; zero means open
	Limit          int       // default 50, at most 1000
	Cursor         string
	// OldestFirst walks the index forwards instead of newest first.
	OldestFirst bool
}

// ErrBadCursor is returned by List for a cursor it did not issue.
var ErrBadCursor = errors.New("delivery: bad cursor")

// List returns the deliveries q selects and the cursor of the next page ("" on
// the last page). It walks the most selective index (event, subscription,
// status, then time), so it never scans unrelated deliveries.
func (s *Store) List(q Query) ([]Delivery, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	var bucket, prefix []byte
	switch {
	case q.EventID != "":
		bucket, prefix = bucketByEvent, key(q.EventID, nil, "")
	case q.SubscriptionID != "":
		bucket, prefix = bucketBySub, key(q.SubscriptionID, nil, "")
	case q.Status != "":
		bucket, prefix = bucketByStatus, key(string(q.Status), nil, "")
	default:
		bucket, prefix = bucketByTime, nil
	}
	var after []byte
	if q.Cursor != "" {
		c, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || !bytes.HasPrefix(c, prefix) {
			return nil, "", ErrBadCursor
		}
		after = c
	}
	var out []Delivery
	var next string
	timeOrdered := !bytes.Equal(bucket, bucketByEvent) // keys run prefix | created | id
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		dels := tx.Bucket(bucketDeliveries)
		var k []byte
		step := c.Prev
		if q.OldestFirst {
			// Walk forwards from the cursor or the start of the prefix.
			step = c.Next
			k, _ = c.Seek(prefix)
			if after != nil {
				if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, _ = c.Next()
				}
			}
		} else if after != nil {
			// Walk backwards (newest first) from the cursor or the end of the prefix.
			k, _ = c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, _ = c.Prev()
			} else if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		} else {
			k = seekLastWithPrefix(c, prefix)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = step() {
			id := idFromIndexKey(bucket, k, prefix)
			v := dels.Get([]byte(id))
			if v == nil {
				continue
			}
			var d Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode delivery %s: %w", id, err)
			}
			if timeOrdered && !q.OldestFirst && !q.Since.IsZero() && d.CreatedAt.Before(q.Since) {
				break // newest first: everything further is older still
			}
			if timeOrdered && q.OldestFirst && !q.Until.IsZero() && !d.CreatedAt.Before(q.Until) {
				break // oldest first: everything further is newer still
			}
			if !q.matches(d) {
				continue
			}
			if len(out) == limit {
				next = base64.RawURLEncoding.EncodeToString(prevKey(out, bucket, prefix))
				return nil
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("delivery: list: %w", err)
	}
	return out, next, nil
}

func (q Query) matches(d Delivery) bool {
	return (q.SubscriptionID == "" || d.SubscriptionID == q.SubscriptionID) &&
		(q.EventID == "" || d.EventID == q.EventID) &&
		(q.Status == "" || d.Status == q.Status) &&
		(q.Since.IsZero() || !d.CreatedAt.Before(q.Since)) &&
		(q.Until.IsZero() || d.CreatedAt.Before(q.Until))
}

// seekLastWithPrefix positions c on the last key with prefix (or the last key
// overall for an empty prefix).
func seekLastWithPrefix(c *bolt.Cursor, prefix []byte) []byte {
	if len(prefix) == 0 {
		k, _ := c.Last()
		return k
	}
	// prefix ends in the 0 separator; the next possible prefix ends in 1.
	end := append(bytes.Clone(prefix[:len(prefix)-1]), 1)
	k, _ := c.Seek(end)
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	return k
}

// idFromIndexKey extracts the delivery id from an index key.
func idFromIndexKey(bucket, k, prefix []byte) string {
	rest := k[len(prefix):]
	if !bytes.Equal(bucket, bucketByEvent) {
		rest = rest[8:] // skip the creation time
	}
	return string(rest)
}

// prevKey is the index key of the last delivery returned, the cursor to
// continue after.
func prevKey(out []Delivery, bucket, prefix []byte) []byte {
	d := out[len(out)-1]
	if bytes.Equal(bucket, bucketByEvent) {
		return append(bytes.Clone(prefix), d.ID...)
	}
	return append(append(bytes.Clone(prefix), timeKey(d.CreatedAt)...), d.ID...)
}

// Sweep deletes deliveries created before cutoff, with their jobs and index
// entries, and returns how many it deleted.
func (s *Store) Sweep(cutoff time.Time) (int, error) {
	total := 0
	for {
		n, err := s.sweepBatch(cutoff, 1000)
		total += n
		if err != nil || n < 1000 {
			return total, err
		}
	}
}

func (s *Store) sweepBatch(cutoff time.Time, max int) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		byTime := tx.Bucket(bucketByTime)
		end := timeKey(cutoff)
		var keys [][]byte
		c := byTime.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) < 0 && len(keys) < max; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			id := k[8:]
			if v := tx.Bucket(bucketDeliveries).Get(id); v != nil {
				var d Delivery
				if err := json.Unmarshal(v, &d); err == nil {
					ts := k[:8]
					_ = tx.Bucket(bucketBySub).Delete(key(d.SubscriptionID, ts, d.ID))
					_ = tx.Bucket(bucketByEvent).Delete(key(d.EventID, nil, d.ID))
					_ = tx.Bucket(bucketByStatus).Delete(key(string(d.Status), ts, d.ID))
				}
			}
			for _, b := range [][]byte{bucketDeliveries, bucketJobs} {
				if err := tx.Bucket(b).Delete(id); err != nil {
					return err
				}
			}
			if err := byTime.Delete(k); err != nil {
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
