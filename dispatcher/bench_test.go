package dispatcher_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/jetstream"
)

// BenchmarkPublishToReceipt measures, one event at a time, the time from a
// robot's publish call to the receiver getting the POST, through the whole
// pipeline (router, DELIVERIES, worker, HTTP). It reports the median and the
// 99th percentile.
func BenchmarkPublishToReceipt(b *testing.B) {
	bb := setup(b, options{workers: 16})
	rcv := newReceiver(b, always(http.StatusOK))
	bb.subscribe(b, rcv.URL, "task.completed")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		bb.publish(b, "task.completed", `{"task_id":"T1"}`, fmt.Sprintf("lat-%d", i))
		lat = append(lat, rcv.next(b, 10*time.Second).at.Sub(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkThroughput publishes b.N events to two subscribers as fast as
// JetStream acknowledges them and waits for all 2×b.N deliveries.
func BenchmarkThroughput(b *testing.B) {
	bb := setup(b, options{workers: 64})
	r1 := newReceiver(b, always(http.StatusNoContent))
	r2 := newReceiver(b, always(http.StatusNoContent))
	bb.subscribe(b, r1.URL, "task.*")
	bb.subscribe(b, r2.URL, "task.completed")
	js := bb.ns.JS
	b.ResetTimer()
	start := time.Now()
	futures := make([]natsjs.PubAckFuture, 0, b.N)
	for i := range b.N {
		m := nats.NewMsg(jetstream.EventSubject("task.completed"))
		m.Data = []byte(`{"task_id":"T1"}`)
		m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("tp-%d", i))
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishes not acknowledged")
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	for range b.N {
		r1.next(b, time.Minute)
		r2.next(b, time.Minute)
	}
	b.StopTimer()
	b.ReportMetric(float64(2*b.N)/time.Since(start).Seconds(), "deliveries/s")
}
