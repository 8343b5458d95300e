package delivery_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery"
)

// BenchmarkStoreApply times Apply as the indexer calls it: batches of
// attempt records, a new delivery's first attempt and a retry of an older
// one, which moves it between statuses.
func BenchmarkStoreApply(b *testing.B) {
	s := openBenchStore(b)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 64
	recs := make([]delivery.Record, batch)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for i := range recs {
			id := n / 2
			attempt := n%2 + 1
			st := delivery.StatusRetrying
			if attempt == 2 {
				st = delivery.StatusSucceeded
			}
			at := t0.Add(time.Duration(n) * time.Millisecond)
			recs[i] = delivery.Record{
				DeliveryID: fmt.Sprintf("d%09d", id), EventID: fmt.Sprintf("e%09d", id), Event: "task.completed",
				SubscriptionID: fmt.Sprintf("s%02d", id%20), URL: "https://example.com/hook", Status: st, Reason: "http_503",
				At: at, CreatedAt: t0.Add(time.Duration(id) * time.Millisecond),
				Attempt: &delivery.AttemptInfo{Attempt: attempt, MaxAttempts: 4, At: at, URL: "https://example.com/hook",
					StatusCode: 503, DurationMS: 12, Outcome: delivery.OutcomeFailed, Reason: "http_503"},
			}
			n++
		}
		if err := s.Apply(recs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
}

func openBenchStore(b *testing.B) *delivery.Store {
	b.Helper()
	db, err := bolt.Open(filepath.Join(b.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	db.MaxBatchDelay = time.Microsecond // one caller: do not wait for others to join the batch
	s, err := delivery.OpenStore(db, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	return s
}
