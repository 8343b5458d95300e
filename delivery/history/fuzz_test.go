package history_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
)

// The fuzz target of this file states what the store promises for any list
// cursor and query. Its seed corpus is in testdata/fuzz/FuzzStoreListCursor;
// `go test` runs it, `make fuzz` explores further.

// listStore opens a store in a bbolt file under f's temporary directory and
// applies deliveries that share subscriptions, events, statuses and
// creation times, with ids that are prefixes of one another.
func listStore(f *testing.F) *history.Store {
	f.Helper()
	db, err := bolt.Open(filepath.Join(f.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		// Close waits for every read transaction: bound the wait, so that
		// a List that never returned does not hang the test (listWithin
		// has already panicked with the query).
		closed := make(chan error, 1)
		go func() { closed <- db.Close() }()
		timer := time.NewTimer(5 * time.Second)
		defer timer.Stop()
		select {
		case err := <-closed:
			if err != nil {
				f.Error(err)
			}
		case <-timer.C:
		}
	})
	s, err := history.OpenStore(db, zerolog.Nop())
	if err != nil {
		f.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	subs := []string{"s", "s1", "s10", ""}
	statuses := []delivery.Status{delivery.StatusSucceeded, delivery.StatusFailed, delivery.StatusRetrying, delivery.StatusRejected}
	var recs []history.Record
	for i := range 17 {
		at := t0.Add(time.Duration(i/2) * time.Minute)
		r := attemptRec(fmt.Sprintf("d%d", i), subs[i%len(subs)], fmt.Sprintf("e%d", i%3), 1+i%2, statuses[i%len(statuses)], at)
		r.CreatedAt = at // pairs share a creation time
		r.Event = []string{"task.completed", "task.failed", "robot.connected"}[i%3]
		recs = append(recs, r)
	}
	if err := s.Apply(recs...); err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzStoreListCursor lists deliveries with any cursor and query: List
// returns a page or ErrBadCursor, never panics, returns within a second, and
// every page is a run of consecutive deliveries of the full listing (the
// same query without a cursor), of at most the limit; its next cursor, if
// any, continues right after it.
func FuzzStoreListCursor(f *testing.F) {
	s := listStore(f)
	// Seeds include the cursors the store issues for a few queries.
	for _, q := range []history.Query{{Limit: 2}, {SubscriptionID: "s1", Limit: 1}, {EventID: "e1", Limit: 2, OldestFirst: true}, {Status: delivery.StatusFailed, Limit: 1}} {
		_, next, err := s.List(q)
		if err != nil || next == "" {
			f.Fatalf("List(%+v) = next %q, %v: want a next page", q, next, err)
		}
		var field uint8
		value := ""
		switch {
		case q.SubscriptionID != "":
			field, value = 1, q.SubscriptionID
		case q.EventID != "":
			field, value = 2, q.EventID
		case q.Status != "":
			field, value = 3, string(q.Status)
		}
		f.Add(next, field, value, q.OldestFirst, int16(q.Limit), int16(0), int16(0))
	}
	f.Add("", uint8(0), "", false, int16(0), int16(0), int16(0))
	f.Add("AA", uint8(1), "s", false, int16(3), int16(2), int16(7))
	f.Add("czEA", uint8(1), "s1", true, int16(-1), int16(0), int16(5)) // "s1\x00": the bare prefix
	f.Add("czEA__________8", uint8(1), "s1", false, int16(1), int16(0), int16(0))
	f.Add("////", uint8(4), "\x00", true, int16(1000), int16(-3), int16(-3))
	f.Add("garbage!", uint8(2), "e1", false, int16(2), int16(0), int16(0))
	f.Add("", uint8(4), "task.completed", false, int16(2), int16(0), int16(0))
	f.Add("", uint8(5), "task.completed", true, int16(1), int16(3), int16(9))
	f.Fuzz(func(t *testing.T, cursor string, field uint8, value string, oldestFirst bool, limit, since, until int16) {
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		q := history.Query{Limit: int(limit), OldestFirst: oldestFirst}
		switch field % 6 {
		case 1:
			q.SubscriptionID = value
		case 2:
			q.EventID = value
		case 3:
			q.Status = delivery.Status(value)
		case 4:
			q.EventType = value
		case 5: // two filters: the subscription+status index, or a check on what it reads
			q.SubscriptionID, q.EventType = "s1", value
		}
		if since != 0 {
			q.Since = t0.Add(time.Duration(since%16) * time.Minute)
		}
		if until != 0 {
			q.Until = t0.Add(time.Duration(until%16) * time.Minute)
		}
		full := q
		full.Limit = 1000
		all, allNext, err := listWithin(s, full)
		if err != nil || allNext != "" {
			t.Fatalf("List(%+v) without a cursor: next %q, %v", full, allNext, err)
		}
		q.Cursor = cursor
		page, next, err := listWithin(s, q)
		if err != nil {
			if cursor == "" || !errors.Is(err, history.ErrBadCursor) {
				t.Fatalf("List(%+v): %v, want a page or ErrBadCursor", q, err)
			}
			return
		}
		limit2 := q.Limit
		if limit2 <= 0 {
			limit2 = 50
		}
		limit2 = min(limit2, 1000)
		if len(page) > limit2 || (next != "" && len(page) != limit2) {
			t.Fatalf("List(%+v) gave %d deliveries and next %q: limit %d", q, len(page), next, limit2)
		}
		at := requireRun(t, all, page)
		if next == "" {
			if len(page) > 0 && at+len(page) != len(all) {
				t.Fatalf("List(%+v) ended after %d of %d without a next cursor", q, at+len(page), len(all))
			}
			return
		}
		q.Cursor = next
		more, _, err := listWithin(s, q)
		if err != nil || len(more) == 0 || more[0].ID != all[at+len(page)].ID {
			t.Fatalf("the next page of List(%+v) = %d deliveries, %v: want it to start at %s", q, len(more), err, all[at+len(page)].ID)
		}
	})
}

// listWithin runs s.List(q) and panics unless it returns within a second: a
// cursor must never make List loop.
func listWithin(s *history.Store, q history.Query) ([]history.Delivery, string, error) {
	type result struct {
		page []history.Delivery
		next string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		page, next, err := s.List(q)
		done <- result{page, next, err}
	}()
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.page, r.next, r.err
	case <-timer.C:
		// Panic rather than t.Fatal: the looping List cannot be stopped,
		// and a panic ends the process (the fuzzer records the input).
		panic(fmt.Sprintf("List(%+v) did not return within a second", q))
	}
}

// requireRun fails t unless page is a run of consecutive deliveries of all,
// and returns where it starts.
func requireRun(t *testing.T, all, page []history.Delivery) int {
	t.Helper()
	if len(page) == 0 {
		return len(all)
	}
	at := -1
	for i, d := range all {
		if d.ID == page[0].ID {
			at = i
			break
		}
	}
	if at < 0 || at+len(page) > len(all) {
		t.Fatalf("page starting at %s is not within the full listing", page[0].ID)
	}
	for i, d := range page {
		if all[at+i].ID != d.ID {
			t.Fatalf("page %v is not a run of the full listing %v", ids(page), ids(all))
		}
	}
	return at
}

func ids(ds []history.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
