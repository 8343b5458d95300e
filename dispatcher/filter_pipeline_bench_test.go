package dispatcher_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/robotlab/webhookd/subscriptions"
)

// BenchmarkThroughputFiltered measures the pipeline's deliveries/s with
// 100 subscriptions to one event type, without filters and then each with
// a filter that lets every event through: the same deliveries, plus 100
// filter evaluations per event in the router. Issue 18 wants the filtered
// run within 10 % of the unfiltered one. Run with -benchtime 100x (events;
// each is 100 deliveries) and -count 1: it reports the filtered run's share
// of the unfiltered run just before it.
func BenchmarkThroughputFiltered(b *testing.B) {
	rates := map[bool]float64{}
	for _, filtered := range []bool{false, true} {
		b.Run(fmt.Sprintf("subs-100/filtered=%v", filtered), func(b *testing.B) {
			bb := setup(b, options{workers: 64})
			rcv := newReceiverQuiet(b, http.StatusNoContent)
			for i := range 100 {
				sub := subscriptions.Subscription{URL: rcv.URL, Events: []string{"task.completed"}}
				if filtered {
					sub.Filter = fmt.Sprintf(`data.robot_id == "R001" && size(data.payload) > %d`, i%10)
				}
				bb.subscribeWith(b, sub)
			}
			want := int64(100 * b.N)
			b.ResetTimer()
			start := time.Now()
			publishFlat(b, bb, "task.completed", b.N)
			for rcv.count.Load() < want {
				select {
				case <-rcv.tick:
				case <-time.After(time.Minute):
					b.Fatalf("only %d of %d deliveries", rcv.count.Load(), want)
				}
			}
			rate := float64(want) / time.Since(start).Seconds()
			b.StopTimer()
			rates[filtered] = rate
			b.ReportMetric(rate, "deliveries/s")
			if plain := rates[false]; filtered && plain > 0 {
				b.ReportMetric(100*rate/plain, "%-of-unfiltered")
			}
		})
	}
}
