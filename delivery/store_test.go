package delivery_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
)

func openStore(t *testing.T) *delivery.Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	s, err := delivery.OpenStore(db)
	require.NoError(t, err)
	return s
}

func attemptRec(id, sub, event string, n int, status delivery.Status, at time.Time) delivery.Record {
	return delivery.Record{
		DeliveryID: id, EventID: event, Event: "task.completed", SubscriptionID: sub, URL: "https://example.com",
		Status: status, Reason: "http_503", At: at, CreatedAt: at.Add(-time.Duration(n) * time.Second),
		Attempt: &delivery.AttemptInfo{Attempt: n, MaxAttempts: 4, At: at, StatusCode: 503, Outcome: delivery.OutcomeFailed, Reason: "http_503"},
	}
}

func TestStoreApplyIsIdempotentAndOrderFree(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r1 := attemptRec("d1", "s1", "e1", 1, delivery.StatusRetrying, t0)
	r2 := attemptRec("d1", "s1", "e1", 2, delivery.StatusRetrying, t0.Add(time.Second))
	r3 := attemptRec("d1", "s1", "e1", 3, delivery.StatusFailed, t0.Add(2*time.Second))
	r3.CreatedAt = r1.CreatedAt
	r2.CreatedAt = r1.CreatedAt
	r3.JobSeq = 77 // where the failed delivery's job is kept in AUDIT
	r2.JobSeq = 5  // an older kept job, applied late: must not win
	// Out of order and twice over.
	require.NoError(t, s.Apply(r3, r1))
	require.NoError(t, s.Apply(r2, r1, r3))

	d, err := s.Get("d1")
	require.NoError(t, err)
	require.Equal(t, delivery.StatusFailed, d.Status)
	require.Len(t, d.Attempts, 3)
	for i, a := range d.Attempts {
		require.Equal(t, i+1, a.Attempt)
	}
	kept, err := s.JobSeq("d1")
	require.NoError(t, err)
	require.Equal(t, uint64(77), kept)

	// Only one index entry per delivery: the status index moved with it.
	failed, _, err := s.List(delivery.Query{Status: delivery.StatusFailed})
	require.NoError(t, err)
	require.Len(t, failed, 1)
	retrying, _, err := s.List(delivery.Query{Status: delivery.StatusRetrying})
	require.NoError(t, err)
	require.Empty(t, retrying)

	_, err = s.Get("nope")
	require.ErrorIs(t, err, delivery.ErrNotFound)
	_, err = s.JobSeq("nope")
	require.ErrorIs(t, err, delivery.ErrNotFound)
}

func TestStoreListUsesIndexesAndPages(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []delivery.Record
	for i := range 25 {
		sub := fmt.Sprintf("s%d", i%3)
		st := delivery.StatusSucceeded
		if i%5 == 0 {
			st = delivery.StatusFailed
		}
		r := attemptRec(fmt.Sprintf("d%02d", i), sub, fmt.Sprintf("e%d", i%4), 1, st, t0.Add(time.Duration(i)*time.Minute))
		recs = append(recs, r)
	}
	require.NoError(t, s.Apply(recs...))

	var all []string
	cursor := ""
	for {
		page, next, err := s.List(delivery.Query{SubscriptionID: "s1", Limit: 3, Cursor: cursor})
		require.NoError(t, err)
		for _, d := range page {
			require.Equal(t, "s1", d.SubscriptionID)
			all = append(all, d.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, []string{"d22", "d19", "d16", "d13", "d10", "d07", "d04", "d01"}, all, "newest first, every one once")

	byEvent, _, err := s.List(delivery.Query{EventID: "e2"})
	require.NoError(t, err)
	require.Len(t, byEvent, 6)
	both, _, err := s.List(delivery.Query{SubscriptionID: "s0", Status: delivery.StatusFailed})
	require.NoError(t, err)
	require.Len(t, both, 2) // d00 and d15
	for _, d := range both {
		require.Equal(t, "s0", d.SubscriptionID)
		require.Equal(t, delivery.StatusFailed, d.Status)
	}
	since, _, err := s.List(delivery.Query{Since: t0.Add(19 * time.Minute)})
	require.NoError(t, err)
	require.Len(t, since, 5)
	subSince, _, err := s.List(delivery.Query{SubscriptionID: "s1", Since: t0.Add(9 * time.Minute), Until: t0.Add(19 * time.Minute)})
	require.NoError(t, err)
	var ids []string
	for _, d := range subSince {
		ids = append(ids, d.ID)
	}
	require.Equal(t, []string{"d19", "d16", "d13", "d10"}, ids, "created in [9m, 19m), newest first")

	_, _, err = s.List(delivery.Query{SubscriptionID: "s1", Cursor: "garbage!"})
	require.ErrorIs(t, err, delivery.ErrBadCursor)
}

func TestStoreSweep(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		r := attemptRec(fmt.Sprintf("d%d", i), "s", fmt.Sprintf("e%d", i), 1, delivery.StatusSucceeded, t0.Add(time.Duration(i)*time.Hour))
		r.CreatedAt = r.At
		require.NoError(t, s.Apply(r))
	}
	n, err := s.Sweep(t0.Add(4 * time.Hour))
	require.NoError(t, err)
	require.Equal(t, 4, n)
	left, _, err := s.List(delivery.Query{SubscriptionID: "s"})
	require.NoError(t, err)
	require.Len(t, left, 6)
	_, err = s.Get("d3")
	require.ErrorIs(t, err, delivery.ErrNotFound)
	byEvent, _, err := s.List(delivery.Query{EventID: "e3"})
	require.NoError(t, err)
	require.Empty(t, byEvent, "index entries go with the delivery")
}
