package history_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
)

// BenchmarkStoreApply times ApplyBatch as the indexer calls it: batches of
// attempt records (the indexer gathers up to 1024, or 50ms of them), a new
// delivery's first attempt and a retry of an older
// one, which moves it between statuses.
//
// ids=random makes delivery ids as the previous release did (UUIDv5, random
// looking); ids=ordered as this one does, time-ordered (the creation time's
// milliseconds first, UUIDv7-shaped).
func BenchmarkStoreApply(b *testing.B) {
	for _, batch := range []int{64, 1024} {
		for _, ordered := range []bool{false, true} {
			ids := map[bool]string{false: "random", true: "ordered"}[ordered]
			b.Run(fmt.Sprintf("batch=%d/ids=%s", batch, ids), func(b *testing.B) { benchmarkApply(b, batch, ordered) })
		}
	}
}

// BenchmarkStoreApplyAt200k is BenchmarkStoreApply (batches of 1024) on a
// store that already holds 200,000 deliveries (400,000 records, applied
// before the timer starts): with -benchtime 100x it times the 200–250k
// range, where the index no longer fits the CPU caches.
func BenchmarkStoreApplyAt200k(b *testing.B) {
	for _, ordered := range []bool{false, true} {
		ids := map[bool]string{false: "random", true: "ordered"}[ordered]
		b.Run("ids="+ids, func(b *testing.B) { benchmarkApplyFrom(b, 1024, ordered, 200_000) })
	}
}

// benchID returns delivery n's id, created at created.
func benchID(n int, created time.Time, ordered bool) string {
	if !ordered {
		return uuid.NewSHA1(uuid.NameSpaceOID, []byte(strconv.Itoa(n))).String() // as the previous release made them
	}
	ms := uint64(created.UnixMilli())
	return fmt.Sprintf("%08x-%04x-7%03x-8000-%012x", ms>>16, ms&0xffff, n%0x1000, n)
}

func benchmarkApply(b *testing.B, batch int, ordered bool) { benchmarkApplyFrom(b, batch, ordered, 0) }

// benchmarkApplyFrom applies prefill deliveries' records before timing.
func benchmarkApplyFrom(b *testing.B, batch int, ordered bool, prefill int) {
	s, db := openBenchDB(b)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]history.Record, batch)
	n := 0
	fill := func() {
		for i := range recs {
			id := n / 2
			attempt := n%2 + 1
			st := delivery.StatusRetrying
			if attempt == 2 {
				st = delivery.StatusSucceeded
			}
			at := t0.Add(time.Duration(n) * time.Millisecond)
			recs[i] = history.Record{
				DeliveryID: benchID(id, t0.Add(time.Duration(id)*time.Millisecond), ordered), EventID: delivery.EventIDFromSequence("", uint64(id)), Event: "task.completed",
				SubscriptionID: fmt.Sprintf("s%02d", id%20), URL: "https://example.com/hook", Status: st, Reason: "http_503",
				At: at, CreatedAt: t0.Add(time.Duration(id) * time.Millisecond),
				Attempt: &history.AttemptInfo{Attempt: attempt, MaxAttempts: 4, At: at, URL: "https://example.com/hook",
					StatusCode: 503, DurationMS: 12, Outcome: delivery.OutcomeFailed, Reason: "http_503"},
			}
			n++
		}
		if err := s.ApplyBatch(recs, uint64(n)); err != nil {
			b.Fatal(err)
		}
	}
	for n < 2*prefill {
		fill()
	}
	start := n
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		fill()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n-start), "ns/record")
	b.ReportMetric(float64(dbSize(b, db))/float64(n), "file-B/record")
}

// dbSize returns the size of db's pages in use or free, the file's size
// without its preallocated tail.
func dbSize(b *testing.B, db *bolt.DB) int64 {
	var size int64
	if err := db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		b.Fatal(err)
	}
	return size
}

func openBenchDB(b *testing.B) (*history.Store, *bolt.DB) {
	b.Helper()
	db, err := bolt.Open(filepath.Join(b.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	db.MaxBatchDelay = time.Microsecond // one caller: do not wait for others to join the batch
	s, err := history.OpenStore(db, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	return s, db
}

// BenchmarkStoreList1M builds a store of 1,000,000 deliveries (50
// subscriptions, 7 event types, 4% failed, 1% held, over 30 days) in a
// temporary directory, once, and times the first page (50) of each kind of
// filter. Building takes a minute or more; it runs only with -bench.
func BenchmarkStoreList1M(b *testing.B) {
	const total = 1_000_000
	s, db := openBenchDB(b)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	step := 30 * 24 * time.Hour / total
	types := []string{"robot.connected", "robot.disconnected", "task.created", "task.completed", "task.failed", "alert.triggered", "maintenance.due"}
	start, cpu0 := time.Now(), cpuTime(b)
	recs := make([]history.Record, 0, 10_000)
	for i := range total {
		st, outcome, code := delivery.StatusSucceeded, delivery.OutcomeSucceeded, 200
		switch i % 100 {
		case 3, 17, 42, 77:
			st, outcome, code = delivery.StatusFailed, delivery.OutcomeFailed, 503
		case 55:
			st = delivery.StatusPaused
		}
		created := t0.Add(time.Duration(i) * step)
		recs = append(recs, history.Record{
			DeliveryID: fmt.Sprintf("%08x-0000-5000-8000-%012d", i, i), EventID: fmt.Sprintf("evt-%d", i/2), Event: types[i%len(types)],
			SubscriptionID: fmt.Sprintf("sub-%02d", i%50), URL: "https://example.com/hook", Status: st, Reason: string(outcome),
			At: created.Add(time.Second), CreatedAt: created, Replica: "r1",
			Attempt: &history.AttemptInfo{Attempt: 1, MaxAttempts: 4, At: created, URL: "https://example.com/hook",
				StatusCode: code, DurationMS: 12, Outcome: outcome, Reason: string(outcome)},
		})
		if len(recs) == cap(recs) || i == total-1 {
			if err := s.Apply(recs...); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	b.Logf("built a store of %d deliveries in %s (%s of CPU)", total, time.Since(start).Round(time.Millisecond), (cpuTime(b) - cpu0).Round(time.Millisecond))
	mid := t0.Add(15 * 24 * time.Hour)
	for _, bc := range []struct {
		name string
		q    history.Query
	}{
		{"all", history.Query{}},
		{"subscription", history.Query{SubscriptionID: "sub-07"}},
		{"subscription+failed", history.Query{SubscriptionID: "sub-17", Status: delivery.StatusFailed}},
		{"held-oldest-first", history.Query{SubscriptionID: "sub-05", Status: delivery.StatusPaused, OldestFirst: true}},
		{"status-failed", history.Query{Status: delivery.StatusFailed}},
		{"event-type", history.Query{EventType: "task.failed"}},
		{"event-id", history.Query{EventID: "evt-250000"}},
		{"until-mid", history.Query{Until: mid}},
		{"subscription-since-until", history.Query{SubscriptionID: "sub-07", Since: mid.Add(-time.Hour), Until: mid}},
		{"type+subscription", history.Query{SubscriptionID: "sub-07", EventType: "task.failed"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				page, _, err := s.List(bc.q)
				if err != nil || len(page) == 0 {
					b.Fatalf("List(%+v) = %d deliveries, %v", bc.q, len(page), err)
				}
			}
		})
	}
	// The upgrade of a store of the first format rebuilds every index:
	// once, timed, whatever -benchtime says.
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("delivery_meta")).Delete([]byte("index_version")) }); err != nil {
		b.Fatal(err)
	}
	start, cpu0 = time.Now(), cpuTime(b)
	if _, err := history.OpenStore(db, zerolog.Nop()); err != nil {
		b.Fatal(err)
	}
	b.Logf("rebuilt the indexes of %d deliveries in %s (%s of CPU)", total, time.Since(start).Round(time.Millisecond), (cpuTime(b) - cpu0).Round(time.Millisecond))
}

// cpuTime is the process's user and system CPU time so far: on a shared
// machine it says more than the wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStoreIndexRSS indexes 100,000 deliveries (one attempt each, 20
// subscriptions), once, and reports what they cost: the file's size, and
// the file-backed resident memory (RssFile) the index adds to the process,
// after indexing and after a page of every query kind. bbolt maps the file
// read-only and writes with pwrite, so a page counts in RSS once read (a
// lookup during Apply, a List); the kernel drops such clean pages under
// memory pressure. ids=random makes delivery ids as the previous release
// did, ids=ordered time-ordered.
func BenchmarkStoreIndexRSS(b *testing.B) {
	for _, ordered := range []bool{false, true} {
		ids := map[bool]string{false: "random", true: "ordered"}[ordered]
		b.Run("ids="+ids, func(b *testing.B) { benchmarkIndexRSS(b, ordered) })
	}
}

func benchmarkIndexRSS(b *testing.B, ordered bool) {
	const total = 100_000
	rss0 := rssFile(b)
	s, db := openBenchDB(b)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]history.Record, 0, 1024)
	for i := range total {
		created := t0.Add(time.Duration(i) * time.Millisecond)
		recs = append(recs, history.Record{
			DeliveryID: benchID(i, created, ordered), EventID: delivery.EventIDFromSequence("", uint64(i)), Event: "task.completed",
			SubscriptionID: fmt.Sprintf("s%02d", i%20), URL: "https://example.com/hook", Status: delivery.StatusSucceeded,
			Reason: "succeeded", At: created.Add(10 * time.Millisecond), CreatedAt: created,
			Attempt: &history.AttemptInfo{Attempt: 1, MaxAttempts: 4, At: created, URL: "https://example.com/hook",
				StatusCode: 200, DurationMS: 10, Outcome: delivery.OutcomeSucceeded, Reason: "succeeded"},
		})
		if len(recs) == cap(recs) || i == total-1 {
			if err := s.ApplyBatch(recs, uint64(i+1)); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	indexed := rssFile(b)
	for b.Loop() {
		for _, q := range []history.Query{{}, {SubscriptionID: "s07"}, {Status: delivery.StatusSucceeded}, {EventType: "task.completed"}} {
			if _, _, err := s.List(q); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(dbSize(b, db))/(1<<20), "file-MiB/100k")
	b.ReportMetric(float64(indexed-rss0)/(1<<20), "rss-file-MiB/100k-indexed")
	b.ReportMetric(float64(rssFile(b)-rss0)/(1<<20), "rss-file-MiB/100k-listed")
}

// rssFile returns the process's file-backed resident memory (RssFile in
// /proc/self/status), in bytes.
func rssFile(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status:", err)
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Skip("no RssFile in /proc/self/status")
	return 0
}
