package dispatcher_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
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

// BenchmarkIsolation measures a healthy receiver's deliveries/s alone, then
// beside a receiver that hangs on every request, one that always answers
// 503 and one that refuses connections, each with 300 jobs queued for it
// first. The per-subscription cap and the circuit breaker should keep at
// least 90 % of the rate alone. Run with -benchtime 3000x (events to the
// healthy receiver per case); each case logs its share of the rate alone.
func BenchmarkIsolation(b *testing.B) {
	refused := func(tb testing.TB) string {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		return srv.URL
	}
	cases := []struct {
		name string
		bad  func(testing.TB) string // the other receiver's URL; nil: alone
	}{
		{"alone", nil},
		{"beside-hanging", func(tb testing.TB) string {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			tb.Cleanup(func() { close(release); srv.Close() })
			return srv.URL
		}},
		{"beside-503", func(tb testing.TB) string {
			return newReceiverQuiet(tb, http.StatusServiceUnavailable).URL
		}},
		{"beside-refusing", refused},
	}
	rates := map[string]float64{}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			// webhookd's defaults: 64 workers, the 5s/10s/15s schedule, a
			// cap of 8 and a breaker after 5 failures with a 30s cool-down.
			bb := setup(b, options{workers: 64, policy: delivery.Schedule(5*time.Second, 10*time.Second, 15*time.Second),
				health: endpoint.Config{BreakerFailures: 5}})
			healthy := newReceiverQuiet(b, http.StatusOK)
			bb.subscribe(b, healthy.URL, "task.completed")
			if c.bad != nil {
				bb.subscribe(b, c.bad(b), "alert.triggered")
				publishFlat(b, bb, "alert.triggered", 300)
			}
			b.ResetTimer()
			start := time.Now()
			publishFlat(b, bb, "task.completed", b.N)
			for healthy.count.Load() < int64(b.N) {
				select {
				case <-healthy.tick:
				case <-time.After(time.Minute):
					b.Fatalf("only %d of %d healthy deliveries", healthy.count.Load(), b.N)
				}
			}
			rate := float64(b.N) / time.Since(start).Seconds()
			b.StopTimer()
			rates[c.name] = rate
			b.ReportMetric(rate, "deliveries/s")
			if alone := rates["alone"]; alone > 0 && c.bad != nil {
				b.ReportMetric(100*rate/alone, "%-of-alone")
			}
		})
	}
}

// quietReceiver answers every request with one status and only counts.
type quietReceiver struct {
	*httptest.Server
	count atomic.Int64
	tick  chan struct{}
}

func newReceiverQuiet(tb testing.TB, status int) *quietReceiver {
	r := &quietReceiver{tick: make(chan struct{}, 1)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		w.WriteHeader(status)
		r.count.Add(1)
		select {
		case r.tick <- struct{}{}:
		default:
		}
	}))
	tb.Cleanup(r.Close)
	return r
}

// publishFlat publishes n events of type t as fast as JetStream acks them.
func publishFlat(tb testing.TB, bb *bundle, t string, n int) {
	js := bb.ns.JS
	for i := range n {
		m := nats.NewMsg(jetstream.EventSubject(t))
		m.Data = []byte(`{"task_id":"T1","robot_id":"R001","payload":"0123456789abcdef0123456789abcdef"}`)
		m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s-%d-%d", t, i, time.Now().UnixNano()))
		if _, err := js.PublishMsgAsync(m); err != nil {
			tb.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		tb.Fatal("publishes not acknowledged")
	}
}
