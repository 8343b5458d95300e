package history

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
)

// An index is a bucket of keys
//
//	field₁ | field₂ | … | created (8 bytes, big-endian unix ns) | delivery id
//
// with empty values, each field written as its length (2 bytes, big-endian)
// then its bytes, so no field value can run into the next one. Keys sharing
// their fields sort by creation time: a query on those fields is one range
// seek over [since, until), walked newest (or oldest) first, and the page
// reads only the deliveries it returns.
type index struct {
	id     byte // in cursors
	name   string
	bucket []byte
	// fields returns the delivery's field values, or false when the
	// delivery is not in this index (no subscription).
	fields func(d *Delivery) ([]string, bool)
	// byStatus marks an index that holds the status, so its entry moves
	// when the status changes.
	byStatus bool
	// scattered marks an index whose new keys land anywhere (its field is
	// a robot's id): the others mostly append at the end of their field's
	// range, so their pages are filled instead of split in half.
	scattered bool
}

// appendFill is how full the pages of an appending index are left when
// they split (bbolt's default, for keys that land anywhere, is half).
// Records arrive a little out of creation order (attempts end out of
// order), so a new key often lands in a page just split: measured on the
// index file per delivery, 0.95 saved 22 % at 1,000 events/s but cost 25 %
// more flat out (pages left a third full); 0.7 saves 14 % and costs
// nothing flat out.
const appendFill = 0.7

var (
	idxTime = &index{id: 1, name: "created", bucket: []byte("dx_created"),
		fields: func(*Delivery) ([]string, bool) { return nil, true }}
	idxSub = &index{id: 2, name: "subscription", bucket: []byte("dx_sub_created"),
		fields: func(d *Delivery) ([]string, bool) { return []string{d.SubscriptionID}, d.SubscriptionID != "" }}
	idxSubStatus = &index{id: 3, name: "subscription+status", bucket: []byte("dx_sub_status_created"), byStatus: true,
		fields: func(d *Delivery) ([]string, bool) {
			return []string{d.SubscriptionID, string(d.Status)}, d.SubscriptionID != ""
		}}
	idxStatus = &index{id: 4, name: "status", bucket: []byte("dx_status_created"), byStatus: true,
		fields: func(d *Delivery) ([]string, bool) { return []string{string(d.Status)}, true }}
	idxType = &index{id: 5, name: "event type", bucket: []byte("dx_type_created"),
		fields: func(d *Delivery) ([]string, bool) { return []string{d.Event}, true }}
	idxEvent = &index{id: 6, name: "event id", bucket: []byte("dx_event_created"), scattered: true,
		fields: func(d *Delivery) ([]string, bool) { return []string{d.EventID}, true }}

	// indexes lists every index; each delivery has at most one entry in each.
	indexes = []*index{idxTime, idxSub, idxSubStatus, idxStatus, idxType, idxEvent}
)

// maxField bounds a key field: bbolt refuses keys over 32 KiB.
const maxField = 1<<16 - 1

// prefix encodes field values as the start of an index key.
func prefix(fields ...string) ([]byte, error) {
	n := 0
	for _, f := range fields {
		n += 2 + len(f)
	}
	p := make([]byte, 0, n+8+40)
	for _, f := range fields {
		if len(f) > maxField {
			return nil, fmt.Errorf("index field of %d bytes: at most %d", len(f), maxField)
		}
		p = binary.BigEndian.AppendUint16(p, uint16(len(f)))
		p = append(p, f...)
	}
	return p, nil
}

// timeKey encodes t as 8 bytes that sort as the time does (times before
// 1970 count as 1970).
func timeKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(max(t.UnixNano(), 0)))
}

// entry returns d's key in ix, or nil when d is not in ix.
func (ix *index) entry(d *Delivery) ([]byte, error) {
	fields, ok := ix.fields(d)
	if !ok {
		return nil, nil
	}
	k, err := prefix(fields...)
	if err != nil {
		return nil, err
	}
	k = append(k, timeKey(d.CreatedAt)...)
	return append(k, d.ID...), nil
}

// putIndexes writes d's index entries; old is d as it was stored before
// (nil for a new delivery): only the entries that changed are written.
// Deliveries written in the order they come (appending) fill the pages of
// the appending indexes; the rebuild, which goes in id order, leaves
// bbolt's default.
func putIndexes(tx *bolt.Tx, d, old *Delivery, appending bool) error {
	for _, ix := range indexes {
		if old != nil && !(ix.byStatus && old.Status != d.Status) {
			continue // the creation time, ids and type never change
		}
		b := tx.Bucket(ix.bucket)
		if appending && !ix.scattered {
			b.FillPercent = appendFill
		}
		if old != nil {
			k, err := ix.entry(old)
			if err != nil {
				return err
			}
			if k != nil {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		k, err := ix.entry(d)
		if err != nil {
			return err
		}
		if k != nil {
			if err := b.Put(k, nil); err != nil {
				return fmt.Errorf("index %s: %w", ix.name, err)
			}
		}
	}
	return nil
}

// deleteIndexes removes d's index entries (the time index's included).
func deleteIndexes(tx *bolt.Tx, d *Delivery) error {
	for _, ix := range indexes {
		k, err := ix.entry(d)
		if err != nil || k == nil {
			continue // it could not have been written either
		}
		if err := tx.Bucket(ix.bucket).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Query selects deliveries. Empty fields do not filter. Results are newest
// first; Cursor continues a previous page.
type Query struct {
	SubscriptionID string
	EventID        string
	// EventType selects deliveries of one event type ("task.completed").
	EventType    string
	Status       delivery.Status
	Since, Until time.Time // creation time range [Since, Until); zero means open
	Limit        int       // default 50, at most 1000
	Cursor       string
	// OldestFirst walks the index forwards instead of newest first.
	OldestFirst bool
}

// ErrBadCursor is wrapped by List's error for a cursor it did not issue,
// or issued for other filters; the error says which.
var ErrBadCursor = errors.New("delivery: bad cursor")

// plan picks the index whose fields are the query's most selective
// equality filters, and returns it with its key prefix and whether some
// filter is left for List to check on the decoded deliveries.
func (q Query) plan() (ix *index, p []byte, residual bool, err error) {
	var fields []string
	switch {
	case q.EventID != "":
		ix, fields = idxEvent, []string{q.EventID}
		residual = q.SubscriptionID != "" || q.Status != "" || q.EventType != ""
	case q.SubscriptionID != "" && q.Status != "":
		ix, fields = idxSubStatus, []string{q.SubscriptionID, string(q.Status)}
		residual = q.EventType != ""
	case q.SubscriptionID != "":
		ix, fields = idxSub, []string{q.SubscriptionID}
		residual = q.EventType != ""
	case q.Status != "":
		ix, fields = idxStatus, []string{string(q.Status)}
		residual = q.EventType != ""
	case q.EventType != "":
		ix, fields = idxType, []string{q.EventType}
	default:
		ix = idxTime
	}
	p, err = prefix(fields...)
	return ix, p, residual, err
}

// Cursor layout: version, index id, direction, then the index key of the
// last delivery returned.
const cursorVersion = 1

func encodeCursor(ix *index, oldestFirst bool, k []byte) string {
	dir := byte(0)
	if oldestFirst {
		dir = 1
	}
	return base64.RawURLEncoding.EncodeToString(append([]byte{cursorVersion, ix.id, dir}, k...))
}

func decodeCursor(s string, ix *index, oldestFirst bool, p []byte) ([]byte, error) {
	c, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(c) < 3 || c[0] != cursorVersion {
		return nil, fmt.Errorf("%w: not a cursor this server issued", ErrBadCursor)
	}
	dir := byte(0)
	if oldestFirst {
		dir = 1
	}
	k := c[3:]
	if c[1] != ix.id || c[2] != dir || !bytes.HasPrefix(k, p) || len(k) < len(p)+8 {
		return nil, fmt.Errorf("%w: it was issued for other filters (subscription, event, type, status): repeat them unchanged", ErrBadCursor)
	}
	return k, nil
}

// List returns the deliveries q selects and the cursor of the next page ("" on
// the last page). It seeks one composite index (see Query.plan) over the
// creation-time range, so a page reads only the deliveries it returns when
// the index covers every filter; a filter it does not cover (the other
// fields with an event id, the type with a subscription or status) is
// checked on the deliveries the index yields.
func (s *Store) List(q Query) ([]Delivery, string, error) {
	if err := s.readable(); err != nil {
		return nil, "", err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	ix, p, residual, err := q.plan()
	if err != nil {
		return nil, "", fmt.Errorf("delivery: list: %w", err)
	}
	var after []byte
	if q.Cursor != "" {
		if after, err = decodeCursor(q.Cursor, ix, q.OldestFirst, p); err != nil {
			return nil, "", err
		}
	}
	var since, until []byte
	if !q.Since.IsZero() {
		since = timeKey(q.Since)
	}
	if !q.Until.IsZero() {
		until = timeKey(q.Until)
	}
	var out []Delivery
	var next string
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(ix.bucket).Cursor()
		dels := tx.Bucket(bucketDeliveries)
		var k []byte
		step := c.Prev
		switch {
		case q.OldestFirst:
			step = c.Next
			switch {
			case after != nil:
				if k, _ = c.Seek(after); bytes.Equal(k, after) {
					k, _ = c.Next()
				}
			case since != nil:
				k, _ = c.Seek(append(bytes.Clone(p), since...))
			default:
				k, _ = c.Seek(p)
			}
		case after != nil:
			k = seekBefore(c, after)
		case until != nil:
			k = seekBefore(c, append(bytes.Clone(p), until...))
		default:
			k = seekBefore(c, prefixEnd(p))
		}
		var last []byte
		visited, decoded := 0, 0
		defer func() { s.visited.Add(int64(visited)); s.decoded.Add(int64(decoded)) }()
		for ; k != nil && bytes.HasPrefix(k, p) && len(k) >= len(p)+8; k, _ = step() {
			visited++
			created := k[len(p) : len(p)+8]
			if since != nil && bytes.Compare(created, since) < 0 {
				if q.OldestFirst {
					continue
				}
				break // newest first: everything further is older still
			}
			if until != nil && bytes.Compare(created, until) >= 0 {
				if q.OldestFirst {
					break // oldest first: everything further is newer still
				}
				continue
			}
			if len(out) == limit && !residual {
				next = encodeCursor(ix, q.OldestFirst, last) // one more in range: another page
				return nil
			}
			id := k[len(p)+8:]
			v := dels.Get(id)
			if v == nil {
				continue
			}
			var d Delivery
			decoded++
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode delivery %s: %w", id, err)
			}
			if residual && !q.matches(d) {
				continue
			}
			if len(out) == limit {
				next = encodeCursor(ix, q.OldestFirst, last)
				return nil
			}
			out = append(out, d)
			last = bytes.Clone(k)
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
		(q.EventType == "" || d.Event == q.EventType) &&
		(q.Status == "" || d.Status == q.Status)
}

// seekBefore positions c on the last key below bound.
func seekBefore(c *bolt.Cursor, bound []byte) []byte {
	if bound == nil {
		k, _ := c.Last()
		return k
	}
	k, _ := c.Seek(bound)
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	return k
}

// prefixEnd returns the least key above every key starting with p, or nil
// (the end of the bucket) when there is none.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
