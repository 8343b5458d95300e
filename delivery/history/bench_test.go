package history_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// BenchmarkRecord measures writing attempt records to AUDIT on the embedded
// file store through Record, with 256 records outstanding at a time (as
// many workers waiting for their records): one record per message (format
// 1, what the recorder writes while an indexer of the previous release is
// registered) and batched (format 2). It reports µs of wall and of CPU (the
// server's included: it runs in the process) per record.
func BenchmarkRecord(b *testing.B) {
	for _, format := range []int{1, history.FormatBatch} {
		b.Run(fmt.Sprintf("format=%d", format), func(b *testing.B) { benchmarkRecord(b, format) })
	}
}

func benchmarkRecord(b *testing.B, format int) {
	ns := jstest.RunProvisioned(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if format == 1 {
		registerOldIndexer(b, ns, "old") // an indexer that reads only format 1
	}
	rec := history.NewRecorder(ns.JS, nil, "bench")
	rec.SetFormatEvery(10 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Go(func() { _ = rec.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	waitFormat(b, rec, format)

	at := time.Now()
	window := make(chan struct{}, 256)
	errs := make(chan error, 1)
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for b.Loop() {
		n++
		window <- struct{}{}
		rec.Record(attemptRec(fmt.Sprintf("d-%d", n), "sub-1", fmt.Sprintf("e-%d", n), 1, delivery.StatusSucceeded, at), nil, func(err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
			<-window
		})
	}
	for range cap(window) {
		window <- struct{}{}
	}
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/record")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(n), "cpu-µs/record")
}
