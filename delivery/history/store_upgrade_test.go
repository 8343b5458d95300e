package history_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
)

// writeOldStore writes n deliveries the way the first store format did:
// the deliveries bucket and the idx_* buckets, with no format version.
// Their ids sort as they were created, unless ids gives them.
func writeOldStore(t *testing.T, db *bolt.DB, n int, t0 time.Time, ids func(i int) string) {
	t.Helper()
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		dels, err := tx.CreateBucket([]byte("deliveries"))
		if err != nil {
			return err
		}
		idx := map[string]*bolt.Bucket{}
		for _, name := range []string{"idx_sub_time", "idx_event", "idx_status_time", "idx_time"} {
			if idx[name], err = tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket([]byte("delivery_jobs")); err != nil {
			return err
		}
		for i := range n {
			created := t0.Add(time.Duration(i) * time.Second)
			st := delivery.StatusSucceeded
			outcome := delivery.OutcomeSucceeded
			if i%10 == 0 {
				st, outcome = delivery.StatusFailed, delivery.OutcomeFailed
			}
			id := fmt.Sprintf("d%06d", i)
			if ids != nil {
				id = ids(i)
			}
			d := history.Delivery{
				ID: id, EventID: fmt.Sprintf("e%06d", i), Event: "task.completed",
				SubscriptionID: fmt.Sprintf("s%d", i%2), URL: "https://example.com", Status: st,
				Attempts:  []history.AttemptInfo{{Attempt: 1, At: created, Outcome: outcome, StatusCode: 200}},
				CreatedAt: created, UpdatedAt: created,
			}
			v, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if err := dels.Put([]byte(d.ID), v); err != nil {
				return err
			}
			ts := binary.BigEndian.AppendUint64(nil, uint64(created.UnixNano()))
			for name, k := range map[string][]byte{
				"idx_sub_time":    append(append([]byte(d.SubscriptionID+"\x00"), ts...), d.ID...),
				"idx_event":       []byte(d.EventID + "\x00" + d.ID),
				"idx_status_time": append(append([]byte(string(d.Status)+"\x00"), ts...), d.ID...),
				"idx_time":        append(bytes.Clone(ts), d.ID...),
			} {
				if err := idx[name].Put(k, nil); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}

// A store written by the first format is re-indexed when opened: every
// delivery is found through the new indexes, the old buckets are gone, the
// health counters are rebuilt from the attempts, a log line says so, and
// the next open does not do it again.
func TestOpenStoreUpgradesAnOldStore(t *testing.T) {
	t.Parallel()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	now := time.Now().UTC().Truncate(time.Minute)
	const n = 4_000 // more than one rebuild transaction of 1,000 (see OpenStoreChunked)
	t0 := now.Add(-n * time.Second)
	writeOldStore(t, db, n, t0, nil)

	var logs bytes.Buffer
	s, err := history.OpenStoreChunked(db, zerolog.New(&logs), 1000)
	require.NoError(t, err)
	require.Contains(t, logs.String(), `"level":"warn"`)
	require.Contains(t, logs.String(), "rebuilding the delivery indexes")
	require.Contains(t, logs.String(), fmt.Sprintf(`"deliveries":%d`, n))

	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		for _, name := range []string{"idx_sub_time", "idx_event", "idx_status_time", "idx_time"} {
			require.Nil(t, tx.Bucket([]byte(name)), name)
		}
		return nil
	}))
	count := func(q history.Query) int {
		q.Limit = 1000
		total := 0
		for {
			page, next, err := s.List(q)
			require.NoError(t, err)
			total += len(page)
			if next == "" {
				return total
			}
			q.Cursor = next
		}
	}
	require.Equal(t, n, count(history.Query{}))
	require.Equal(t, n/2, count(history.Query{SubscriptionID: "s1"}))
	require.Equal(t, n/10, count(history.Query{Status: delivery.StatusFailed}))
	require.Equal(t, n/10, count(history.Query{SubscriptionID: "s0", Status: delivery.StatusFailed}))
	require.Zero(t, count(history.Query{SubscriptionID: "s1", Status: delivery.StatusFailed}))
	require.Equal(t, n, count(history.Query{EventType: "task.completed"}))
	page, _, err := s.List(history.Query{EventID: fmt.Sprintf("e%06d", n-1)})
	require.NoError(t, err)
	require.Len(t, page, 1)

	h, err := s.Health(now, "s0", "s1")
	require.NoError(t, err)
	// The last hour is the current minute and the 59 before it: 3,540 s
	// of the history, an attempt of s0 every other second.
	require.Equal(t, 1770, h["s0"].Attempts1h)
	require.Equal(t, 1770-354, h["s0"].Succeeded1h) // one in five of s0's fails
	require.Equal(t, n/2, h["s0"].Attempts24h)
	require.Equal(t, n/2-n/10, h["s0"].Succeeded24h)
	require.Equal(t, n/2, h["s1"].Succeeded24h)

	// The next open finds the current format: no rebuild.
	logs.Reset()
	_, err = history.OpenStore(db, zerolog.New(&logs))
	require.NoError(t, err)
	require.Empty(t, logs.String())
}

// An old store without deliveries needs no rebuild: its empty buckets go.
func TestOpenStoreUpgradesAnEmptyOldStore(t *testing.T) {
	t.Parallel()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	writeOldStore(t, db, 0, time.Now(), nil)
	var logs bytes.Buffer
	_, err = history.OpenStore(db, zerolog.New(&logs))
	require.NoError(t, err)
	require.Empty(t, logs.String())
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.Nil(t, tx.Bucket([]byte("idx_time")))
		return nil
	}))
}

// The rebuild goes through the deliveries in id order, which is not the
// order they were created in: it leaves the index pages as bbolt splits
// them by default, not filled for appends (measured: a quarter full, and a
// file 45 % larger, when it did).
func TestOpenStoreRebuildsIndexesWithoutAppendFill(t *testing.T) {
	t.Parallel()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	writeOldStore(t, db, 20_000, time.Now().Add(-time.Hour), func(i int) string { return uuid.NewSHA1(uuid.NameSpaceOID, []byte(strconv.Itoa(i))).String() })
	s, err := history.OpenStoreChunked(db, zerolog.Nop(), 2000)
	require.NoError(t, err)
	fill, err := s.IndexFill()
	require.NoError(t, err)
	for name, f := range fill {
		require.GreaterOrEqual(t, f, 0.5, "index %s pages %.0f%% full", name, 100*f)
	}
}

// A store of the second format (six index buckets, format 2) is re-indexed
// into the three of the current one when opened: the buckets it no longer
// has are dropped, and every query finds its deliveries.
func TestOpenStoreUpgradesASecondFormatStore(t *testing.T) {
	t.Parallel()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	s, err := history.OpenStore(db, zerolog.Nop())
	require.NoError(t, err)
	t0 := time.Now().UTC().Add(-time.Hour)
	for i := range 100 {
		r := attemptRec(fmt.Sprintf("d%03d", i), fmt.Sprintf("s%d", i%2), fmt.Sprintf("e%03d", i), 1, delivery.StatusSucceeded, t0.Add(time.Duration(i)*time.Second))
		require.NoError(t, s.Apply(r))
	}
	// As the second format left it: its other buckets, format 2, and
	// status entries without the event type as their value.
	gone := []string{"dx_created", "dx_sub_created", "dx_type_created"}
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		for _, name := range gone {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("k"), nil); err != nil {
				return err
			}
		}
		for _, name := range []string{"dx_status_created", "dx_sub_status_created"} {
			b := tx.Bucket([]byte(name))
			c := b.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if err := b.Put(bytes.Clone(k), nil); err != nil {
					return err
				}
			}
		}
		return tx.Bucket([]byte("delivery_meta")).Put([]byte("index_version"), binary.BigEndian.AppendUint64(nil, 2))
	}))

	var logs bytes.Buffer
	s, err = history.OpenStore(db, zerolog.New(&logs))
	require.NoError(t, err)
	require.Contains(t, logs.String(), `"from_format":2`)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		for _, name := range gone {
			require.Nil(t, tx.Bucket([]byte(name)), name)
		}
		return nil
	}))
	for _, q := range []history.Query{{}, {SubscriptionID: "s1"}, {EventType: "task.completed"}, {Status: delivery.StatusSucceeded}, {SubscriptionID: "s0", EventType: "task.completed"}} {
		q.Limit = 1000
		page, _, err := s.List(q)
		require.NoError(t, err)
		want := 100
		if q.SubscriptionID != "" {
			want = 50
		}
		require.Len(t, page, want, "%+v", q)
	}
}
