package history_test

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
)

func openStore(t *testing.T) *history.Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	s, err := history.OpenStore(db, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	return s
}

func attemptRec(id, sub, event string, n int, status delivery.Status, at time.Time) history.Record {
	return history.Record{
		DeliveryID: id, EventID: event, Event: "task.completed", SubscriptionID: sub, URL: "https://example.com",
		Status: status, Reason: "http_503", At: at, CreatedAt: at.Add(-time.Duration(n) * time.Second),
		Attempt: &history.AttemptInfo{Attempt: n, MaxAttempts: 4, At: at, StatusCode: 503, Outcome: delivery.OutcomeFailed, Reason: "http_503"},
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
	failed, _, err := s.List(history.Query{Status: delivery.StatusFailed})
	require.NoError(t, err)
	require.Len(t, failed, 1)
	retrying, _, err := s.List(history.Query{Status: delivery.StatusRetrying})
	require.NoError(t, err)
	require.Empty(t, retrying)

	_, err = s.Get("nope")
	require.ErrorIs(t, err, history.ErrNotFound)
	_, err = s.JobSeq("nope")
	require.ErrorIs(t, err, history.ErrNotFound)
}

func TestStoreListUsesIndexesAndPages(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []history.Record
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
		page, next, err := s.List(history.Query{SubscriptionID: "s1", Limit: 3, Cursor: cursor})
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

	byEvent, _, err := s.List(history.Query{EventID: "e2"})
	require.NoError(t, err)
	require.Len(t, byEvent, 6)
	both, _, err := s.List(history.Query{SubscriptionID: "s0", Status: delivery.StatusFailed})
	require.NoError(t, err)
	require.Len(t, both, 2) // d00 and d15
	for _, d := range both {
		require.Equal(t, "s0", d.SubscriptionID)
		require.Equal(t, delivery.StatusFailed, d.Status)
	}
	since, _, err := s.List(history.Query{Since: t0.Add(19 * time.Minute)})
	require.NoError(t, err)
	require.Len(t, since, 5)
	subSince, _, err := s.List(history.Query{SubscriptionID: "s1", Since: t0.Add(9 * time.Minute), Until: t0.Add(19 * time.Minute)})
	require.NoError(t, err)
	var ids []string
	for _, d := range subSince {
		ids = append(ids, d.ID)
	}
	require.Equal(t, []string{"d19", "d16", "d13", "d10"}, ids, "created in [9m, 19m), newest first")

	_, _, err = s.List(history.Query{SubscriptionID: "s1", Cursor: "garbage!"})
	require.ErrorIs(t, err, history.ErrBadCursor)
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
	left, _, err := s.List(history.Query{SubscriptionID: "s"})
	require.NoError(t, err)
	require.Len(t, left, 6)
	_, err = s.Get("d3")
	require.ErrorIs(t, err, history.ErrNotFound)
	byEvent, _, err := s.List(history.Query{EventID: "e3"})
	require.NoError(t, err)
	require.Empty(t, byEvent, "index entries go with the delivery")
}

// Every filter is answered by a range seek over a composite index: a page
// decodes only the deliveries it returns, however much history the others
// have. Decoded counts what List decoded.
func TestStoreListDecodesOnlyWhatItReturns(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	types := []string{"task.completed", "task.failed", "robot.connected", "alert.triggered"}
	var recs []history.Record
	for i := range 1200 {
		st := delivery.StatusSucceeded
		if i%50 == 7 {
			st = delivery.StatusFailed
		}
		r := attemptRec(fmt.Sprintf("d%04d", i), fmt.Sprintf("s%d", i%3), fmt.Sprintf("e%04d", i), 1, st, t0.Add(time.Duration(i)*time.Minute))
		r.CreatedAt, r.Event = r.At, types[i%4]
		recs = append(recs, r)
	}
	// Three held deliveries of s2, early in its long history.
	for _, i := range []int{5, 8, 11} {
		r := attemptRec(fmt.Sprintf("d%04d", i), "s2", fmt.Sprintf("e%04d", i), 1, delivery.StatusPaused, t0.Add(time.Duration(i)*time.Minute))
		r.CreatedAt, r.Event = t0.Add(time.Duration(i)*time.Minute), types[i%4]
		r.At = r.At.Add(time.Hour) // newer than the attempt: the status moves
		recs = append(recs, r)
	}
	// One event fanned out to three subscriptions, ids not in time order.
	for i, id := range []string{"fz", "fa", "fm"} {
		r := attemptRec(id, fmt.Sprintf("s%d", i), "shared", 1, delivery.StatusSucceeded, t0.Add(time.Duration(2000+i)*time.Minute))
		r.CreatedAt = r.At
		recs = append(recs, r)
	}
	require.NoError(t, s.Apply(recs...))

	ids := func(ds []history.Delivery) []string {
		out := make([]string, len(ds))
		for i, d := range ds {
			out[i] = d.ID
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    history.Query
		want []string
		more bool
		// decoded is how many deliveries the query may decode when some
		// filter is checked on them (an event id's fan-out); 0: the page.
		decoded int
		// visited bounds the index keys it may step over beyond the page
		// and the one that tells whether another page exists: a query
		// without a status merges the ranges of the three statuses present
		// (one more key each); one with a type steps over the other types'
		// entries in its range (checked on the index, not decoded).
		visited int
	}{
		{name: "all, newest first", q: history.Query{Limit: 3}, want: []string{"fm", "fa", "fz"}, more: true, visited: 3},
		{name: "until seeks", q: history.Query{Until: t0.Add(100 * time.Minute), Limit: 3}, want: []string{"d0099", "d0098", "d0097"}, more: true, visited: 3},
		{name: "since and until", q: history.Query{Since: t0.Add(10 * time.Minute), Until: t0.Add(13 * time.Minute)}, want: []string{"d0012", "d0011", "d0010"}, visited: 3},
		{name: "oldest first from since", q: history.Query{Since: t0.Add(1197 * time.Minute), Until: t0.Add(1999 * time.Minute), OldestFirst: true}, want: []string{"d1197", "d1198", "d1199"}, visited: 3},
		{name: "subscription", q: history.Query{SubscriptionID: "s1", Limit: 2}, want: []string{"fa", "d1198"}, more: true, visited: 2},
		{name: "subscription and until", q: history.Query{SubscriptionID: "s1", Until: t0.Add(10 * time.Minute), Limit: 2}, want: []string{"d0007", "d0004"}, more: true, visited: 2},
		{name: "status", q: history.Query{Status: delivery.StatusFailed, Limit: 2}, want: []string{"d1157", "d1107"}, more: true},
		{name: "subscription and status", q: history.Query{SubscriptionID: "s0", Status: delivery.StatusFailed, Limit: 2}, want: []string{"d1107", "d0957"}, more: true},
		{name: "held, oldest first", q: history.Query{SubscriptionID: "s2", Status: delivery.StatusPaused, OldestFirst: true}, want: []string{"d0005", "d0008", "d0011"}},
		{name: "event type", q: history.Query{EventType: "task.failed", Limit: 3}, want: []string{"d1197", "d1193", "d1189"}, more: true, visited: 3 + 4*3},
		{name: "event type and since", q: history.Query{EventType: "robot.connected", Since: t0.Add(1190 * time.Minute)}, want: []string{"d1198", "d1194", "d1190"}, visited: 3 + 4*3},
		{name: "event id, newest first", q: history.Query{EventID: "shared"}, want: []string{"fm", "fa", "fz"}},
		{name: "event id and subscription", q: history.Query{EventID: "shared", SubscriptionID: "s1"}, want: []string{"fa"}, decoded: 3},
	} {
		before, beforeKeys := s.Decoded(), s.Visited()
		page, next, err := s.List(tc.q)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, ids(page), tc.name)
		require.Equal(t, tc.more, next != "", tc.name)
		decoded := cmp.Or(tc.decoded, len(page))
		require.EqualValues(t, decoded, s.Decoded()-before, "%s: decoded more deliveries than it returned: an index is not used", tc.name)
		// Keys: the page's, and one more to know whether a next page
		// exists (the seek lands on the first key in range).
		require.LessOrEqual(t, s.Visited()-beforeKeys, int64(decoded+1+tc.visited), "%s: stepped over keys outside the range: no seek", tc.name)
	}

	// Paging through a subscription's failures reads each once.
	before := s.Decoded()
	var got []string
	q := history.Query{SubscriptionID: "s1", Status: delivery.StatusFailed, Limit: 3}
	for {
		page, next, err := s.List(q)
		require.NoError(t, err)
		got = append(got, ids(page)...)
		if next == "" {
			break
		}
		q.Cursor = next
	}
	require.Len(t, got, 8) // i%50 == 7 and i%3 == 1: 7, 157, 307, … 1057
	require.Equal(t, "d1057", got[0])
	require.EqualValues(t, len(got), s.Decoded()-before)
}

// A cursor that is not one List issued, or was issued for other filters,
// is refused with a reason, never read as the first page.
func TestStoreListRefusesBadCursors(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		require.NoError(t, s.Apply(attemptRec(fmt.Sprintf("d%d", i), "s1", fmt.Sprintf("e%d", i), 1, delivery.StatusSucceeded, t0.Add(time.Duration(i)*time.Minute))))
	}
	_, next, err := s.List(history.Query{SubscriptionID: "s1", Limit: 2})
	require.NoError(t, err)
	require.NotEmpty(t, next)
	for _, tc := range []struct {
		q    history.Query
		want string
	}{
		{history.Query{SubscriptionID: "s1", Cursor: "garbage!"}, "not a cursor this server issued"},
		{history.Query{SubscriptionID: "s1", Cursor: "AAAA"}, "not a cursor this server issued"},
		{history.Query{SubscriptionID: "s2", Cursor: next}, "issued for other filters"},
		{history.Query{Cursor: next}, "issued for other filters"},
		{history.Query{SubscriptionID: "s1", Cursor: next, OldestFirst: true}, "issued for other filters"},
	} {
		page, _, err := s.List(tc.q)
		require.ErrorIs(t, err, history.ErrBadCursor, "%+v", tc.q)
		require.ErrorContains(t, err, tc.want)
		require.Nil(t, page)
	}
	page, _, err := s.List(history.Query{SubscriptionID: "s1", Limit: 2, Cursor: next})
	require.NoError(t, err)
	require.Len(t, page, 2)
}

// The audit trail keeps the URL each attempt went to, not the
// subscription's URL of today.
func TestStoreKeepsTheURLOfEachAttempt(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r1 := attemptRec("d1", "s1", "e1", 1, delivery.StatusRetrying, t0)
	r1.URL, r1.Attempt.URL = "https://old.example/hook", "https://old.example/hook"
	r2 := attemptRec("d1", "s1", "e1", 2, delivery.StatusSucceeded, t0.Add(time.Second))
	r2.CreatedAt = r1.CreatedAt
	r2.URL, r2.Attempt.URL = "https://new.example/hook", "https://new.example/hook"
	check := func() {
		t.Helper()
		d, err := s.Get("d1")
		require.NoError(t, err)
		require.Equal(t, "https://new.example/hook", d.URL)
		require.Equal(t, "https://old.example/hook", d.Attempts[0].URL)
		require.Equal(t, "https://new.example/hook", d.Attempts[1].URL)
	}
	require.NoError(t, s.Apply(r1))
	require.NoError(t, s.Apply(r2))
	check()
	require.NoError(t, s.Apply(r2, r1)) // again, out of order
	check()
}

// Health counts each attempt once, whichever replica recorded it and
// however often its record is applied, over the last hour and 24 hours,
// and follows the newest attempt for failures in a row and the last code.
func TestStoreHealth(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	now := time.Date(2026, 1, 2, 12, 30, 0, 0, time.UTC)
	ok := func(id string, n int, at time.Time) history.Record {
		r := attemptRec(id, "s1", "e-"+id, n, delivery.StatusSucceeded, at)
		r.Attempt.Outcome, r.Attempt.StatusCode, r.Attempt.Reason, r.Replica = delivery.OutcomeSucceeded, 200, "succeeded", "r2"
		return r
	}
	fail := func(id string, n int, at time.Time) history.Record {
		r := attemptRec(id, "s1", "e-"+id, n, delivery.StatusRetrying, at) // 503
		r.Replica = "r1"
		return r
	}
	recs := []history.Record{
		ok("old", 1, now.Add(-30*time.Hour)),   // outside both windows
		ok("a", 1, now.Add(-5*time.Hour)),      // 24 h only
		fail("b", 1, now.Add(-3*time.Hour)),    // 24 h only
		ok("c", 1, now.Add(-50*time.Minute)),   // both
		fail("d", 1, now.Add(-20*time.Minute)), // both
		fail("d", 2, now.Add(-10*time.Minute)),
		fail("d", 3, now.Add(-time.Minute)),
	}
	require.NoError(t, s.Apply(recs[3:]...))
	require.NoError(t, s.Apply(recs...)) // again, and the older ones late
	require.NoError(t, s.Apply(attemptRec("other", "s2", "e", 1, delivery.StatusRetrying, now.Add(-time.Minute))))

	h, err := s.Health(now, "s1", "s2", "none")
	require.NoError(t, err)
	require.Equal(t, history.Health{
		Attempts1h: 4, Succeeded1h: 1, Attempts24h: 6, Succeeded24h: 2,
		ConsecutiveFailures: 3, LastStatusCode: 503, LastReason: "http_503", LastAttemptAt: now.Add(-time.Minute),
	}, h["s1"])
	require.Equal(t, 1, h["s2"].Attempts1h)
	require.Equal(t, history.Health{}, h["none"])
	rate, known := history.SuccessRate(h["s1"].Succeeded1h, h["s1"].Attempts1h)
	require.True(t, known)
	require.InDelta(t, 0.25, rate, 1e-9)
	_, known = history.SuccessRate(0, 0)
	require.False(t, known)

	// A success resets the run of failures.
	require.NoError(t, s.Apply(ok("d", 4, now)))
	h, err = s.Health(now, "s1")
	require.NoError(t, err)
	require.Zero(t, h["s1"].ConsecutiveFailures)
	require.Equal(t, 200, h["s1"].LastStatusCode)
	require.Equal(t, 5, h["s1"].Attempts1h)
}

// The sweep drops the counters no Health window reaches, and keeps the
// ones it does.
func TestStoreSweepDropsOldCounters(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	now := time.Date(2026, 1, 2, 12, 30, 0, 0, time.UTC)
	s.SetNow(func() time.Time { return now })
	require.NoError(t, s.Apply(
		attemptRec("old", "s1", "e1", 1, delivery.StatusRetrying, now.Add(-48*time.Hour)),
		attemptRec("new", "s1", "e2", 1, delivery.StatusRetrying, now.Add(-time.Minute)),
	))
	require.Equal(t, 5, s.StatKeys()) // two minutes, two hours, the last attempt
	_, err := s.Sweep(now.Add(-72 * time.Hour))
	require.NoError(t, err)
	require.Equal(t, 3, s.StatKeys())
	h, err := s.Health(now, "s1")
	require.NoError(t, err)
	require.Equal(t, 1, h["s1"].Attempts1h)
	require.Equal(t, 1, h["s1"].Attempts24h)
}

// The indexes whose keys end in the creation time grow at the end of each
// field's range, so their pages are left fuller when they split than
// bbolt's half: the index file is smaller.
func TestStoreFillsTheAppendingIndexes(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	t0 := time.Now().Add(-time.Hour)
	recs := make([]history.Record, 0, 5000)
	for i := range cap(recs) {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		recs = append(recs, attemptRec(delivery.JobID(strconv.Itoa(i), "s", uint64(i), at), "s"+strconv.Itoa(i%10), "e"+strconv.Itoa(i), 1, delivery.StatusSucceeded, at))
	}
	for chunk := range slices.Chunk(recs, 100) {
		require.NoError(t, s.Apply(chunk...))
	}
	fill, err := s.IndexFill()
	require.NoError(t, err)
	for name, f := range fill {
		if name == "event id" {
			continue // robots' ids land anywhere
		}
		require.GreaterOrEqual(t, f, 0.6, "index %s pages %.0f%% full", name, 100*f)
	}
}
