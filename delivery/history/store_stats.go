package history

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
)

// bucketStats holds per-subscription attempt counters, updated by Apply as
// records arrive from every replica:
//
//	sub(len-prefixed) | 'm' | minute (uint32 BE) → attempts, succeeded (uint32 BE each)
//	sub(len-prefixed) | 'h' | hour (uint32 BE)   → attempts, succeeded
//	sub(len-prefixed) | 'l'                      → the last attempt (lastAttempt)
//
// A new attempt is counted once: Apply counts it only when the delivery
// did not hold that attempt number yet.
var bucketStats = []byte("delivery_stats")

const (
	statMinute = 'm'
	statHour   = 'h'
	statLast   = 'l'
)

// Health is a subscription's delivery health from the history of every
// replica's attempts.
type Health struct {
	// Attempts and Succeeded over the last hour (the current minute and
	// the 59 before it) and the last 24 hours (the current hour and the 23
	// before it).
	Attempts1h, Succeeded1h   int
	Attempts24h, Succeeded24h int
	// ConsecutiveFailures counts the failed attempts since the last
	// success, in attempt time order (records that arrive later than a
	// newer attempt's are counted in the windows but not here).
	ConsecutiveFailures int
	// LastStatusCode, LastReason and LastAttemptAt describe the newest attempt.
	LastStatusCode int
	LastReason     string
	LastAttemptAt  time.Time
}

// SuccessRate returns succeeded/attempts, and false when there were no attempts.
func SuccessRate(succeeded, attempts int) (float64, bool) {
	if attempts == 0 {
		return 0, false
	}
	return float64(succeeded) / float64(attempts), true
}

func statKey(p []byte, kind byte, slot uint32) []byte {
	k := make([]byte, 0, len(p)+5)
	k = append(append(k, p...), kind)
	return binary.BigEndian.AppendUint32(k, slot)
}

func minuteOf(t time.Time) uint32 { return uint32(max(t.Unix(), 0) / 60) }
func hourOf(t time.Time) uint32   { return uint32(max(t.Unix(), 0) / 3600) }

// countAttempt adds one new attempt to its subscription's counters.
func countAttempt(tx *bolt.Tx, subID string, a AttemptInfo) error {
	if subID == "" {
		return nil
	}
	p, err := prefix(subID)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketStats)
	ok := a.Outcome == delivery.OutcomeSucceeded
	for _, k := range [][]byte{statKey(p, statMinute, minuteOf(a.At)), statKey(p, statHour, hourOf(a.At))} {
		var v [8]byte
		copy(v[:], b.Get(k))
		binary.BigEndian.PutUint32(v[0:], binary.BigEndian.Uint32(v[0:])+1)
		if ok {
			binary.BigEndian.PutUint32(v[4:], binary.BigEndian.Uint32(v[4:])+1)
		}
		if err := b.Put(k, v[:]); err != nil {
			return err
		}
	}
	lk := append(p, statLast) // p has room: see prefix
	last := decodeLast(b.Get(lk))
	if a.At.Before(last.at) {
		return nil // an older attempt, applied late
	}
	last.at, last.status, last.reason = a.At, a.StatusCode, truncate(a.Reason, 64)
	if ok {
		last.failures = 0
	} else {
		last.failures++
	}
	return b.Put(lk, last.encode())
}

// lastAttempt is the newest attempt of a subscription: its time (unix ns),
// status code, failures in a row up to it, and reason.
type lastAttempt struct {
	at       time.Time
	status   int
	failures int
	reason   string
}

func (l lastAttempt) encode() []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16+len(l.reason)), uint64(max(l.at.UnixNano(), 0)))
	v = binary.BigEndian.AppendUint16(v, uint16(min(max(l.status, 0), 65535)))
	v = binary.BigEndian.AppendUint32(v, uint32(l.failures))
	return append(v, l.reason...)
}

func decodeLast(v []byte) lastAttempt {
	if len(v) < 14 {
		return lastAttempt{}
	}
	return lastAttempt{
		at:       time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(),
		status:   int(binary.BigEndian.Uint16(v[8:])),
		failures: int(binary.BigEndian.Uint32(v[10:])),
		reason:   string(v[14:]),
	}
}

// Health returns the delivery health of each subscription in ids, as of
// now, in one read. A subscription without attempts has a zero Health.
func (s *Store) Health(now time.Time, ids ...string) (map[string]Health, error) {
	out := make(map[string]Health, len(ids))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStats)
		c := b.Cursor()
		for _, id := range ids {
			p, err := prefix(id)
			if err != nil {
				return err
			}
			var h Health
			m, hr := minuteOf(now), hourOf(now)
			h.Attempts1h, h.Succeeded1h = sumSlots(c, p, statMinute, m-min(m, 59), m)
			h.Attempts24h, h.Succeeded24h = sumSlots(c, p, statHour, hr-min(hr, 23), hr)
			if last := decodeLast(b.Get(append(p, statLast))); !last.at.IsZero() && last.at.UnixNano() > 0 {
				h.ConsecutiveFailures, h.LastStatusCode, h.LastReason, h.LastAttemptAt = last.failures, last.status, last.reason, last.at
			}
			out[id] = h
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delivery: health: %w", err)
	}
	return out, nil
}

// sumSlots adds the counters of slots [from, to] of one kind.
func sumSlots(c *bolt.Cursor, p []byte, kind byte, from, to uint32) (attempts, succeeded int) {
	end := statKey(p, kind, to)
	for k, v := c.Seek(statKey(p, kind, from)); k != nil && bytes.Compare(k, end) <= 0; k, v = c.Next() {
		if len(v) == 8 {
			attempts += int(binary.BigEndian.Uint32(v))
			succeeded += int(binary.BigEndian.Uint32(v[4:]))
		}
	}
	return attempts, succeeded
}

// sweepStats deletes the counters that no Health window reaches any more.
func (s *Store) sweepStats(now time.Time) error {
	m, hr := minuteOf(now), hourOf(now)
	oldMinute, oldHour := m-min(m, 60), hr-min(hr, 24)
	return s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketStats).Cursor()
		var stale [][]byte
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) < 7 {
				continue
			}
			kind, slot := k[len(k)-5], binary.BigEndian.Uint32(k[len(k)-4:])
			// A key is a slot key when its field length matches.
			if int(binary.BigEndian.Uint16(k))+2 != len(k)-5 {
				continue
			}
			if kind == statMinute && slot < oldMinute || kind == statHour && slot < oldHour {
				stale = append(stale, bytes.Clone(k))
			}
		}
		for _, k := range stale {
			if err := tx.Bucket(bucketStats).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
