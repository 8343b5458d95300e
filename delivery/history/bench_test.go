package history_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// BenchmarkRecord measures writing attempt records to AUDIT on the embedded
// file store: waiting for each acknowledgement (Publish), and pipelined
// (PublishAsync, every acknowledgement awaited at the end).
func BenchmarkRecord(b *testing.B) {
	ns := jstest.RunProvisioned(b)
	rec := history.NewRecorder(ns.JS, nil, "bench")
	at := time.Now()
	n := 0
	next := func() history.Record {
		n++
		return attemptRec(fmt.Sprintf("d-%d", n), "sub-1", fmt.Sprintf("e-%d", n), 1, delivery.StatusSucceeded, at)
	}
	b.Run("sync", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rec.Publish(context.Background(), next(), nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("pipelined", func(b *testing.B) {
		b.ReportAllocs()
		futures := make([]natsjs.PubAckFuture, 0, 4096)
		wait := func() {
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			futures = futures[:0]
		}
		for b.Loop() {
			f, err := rec.PublishAsync(next())
			if err != nil {
				b.Fatal(err)
			}
			if futures = append(futures, f); len(futures) == cap(futures) {
				wait()
			}
		}
		wait()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}
