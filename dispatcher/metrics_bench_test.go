package dispatcher_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/metrics"
)

// BenchmarkThroughputMetrics is BenchmarkThroughput's workload (b.N events
// to two subscribers, 64 workers) without an Observer and with webhookd's
// metrics, in one binary, so the metrics' cost on the hot path shows as the
// difference between the two.
func BenchmarkThroughputMetrics(b *testing.B) {
	for _, c := range []struct {
		name     string
		observer func(testing.TB) dispatcher.Observer
	}{
		{"off", func(testing.TB) dispatcher.Observer { return nil }},
		{"on", func(tb testing.TB) dispatcher.Observer {
			m, err := metrics.New(metrics.Config{EventTypes: config.Catalog()}, metrics.Deps{}, zerolog.Nop())
			if err != nil {
				tb.Fatal(err)
			}
			return m
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			bb := setup(b, options{workers: 64, observer: c.observer(b)})
			r1 := newReceiverQuiet(b, http.StatusNoContent)
			r2 := newReceiverQuiet(b, http.StatusNoContent)
			bb.subscribe(b, r1.URL, "task.*")
			bb.subscribe(b, r2.URL, "task.completed")
			b.ResetTimer()
			start := time.Now()
			publishFlat(b, bb, "task.completed", b.N)
			for r1.count.Load() < int64(b.N) || r2.count.Load() < int64(b.N) {
				select {
				case <-r1.tick:
				case <-r2.tick:
				case <-time.After(time.Minute):
					b.Fatalf("only %d+%d of 2×%d deliveries", r1.count.Load(), r2.count.Load(), b.N)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(2*b.N)/time.Since(start).Seconds(), "deliveries/s")
		})
	}
}
