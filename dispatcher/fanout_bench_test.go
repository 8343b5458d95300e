package dispatcher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// BenchmarkFanOut measures spilling one event's fan-out: a job per
// matching subscription published to DELIVERIES on the embedded file
// store, every acknowledgement awaited, for 1 and 10 subscriptions (the
// path of a redelivered event, or of one whose endpoints are all full).
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("subs-%d", n), func(b *testing.B) {
			ns := jstest.RunProvisioned(b)
			d := &Dispatcher{deps: Deps{JS: ns.JS}, now: time.Now}
			subs := make([]string, n)
			for i := range subs {
				subs[i] = fmt.Sprintf("sub-%d", i)
			}
			data := []byte(`{"task_id":"T123","robot_id":"R001"}`)
			var seq uint64
			b.ReportAllocs()
			for b.Loop() {
				seq++
				ev := delivery.Event{ID: fmt.Sprintf("e-%d", seq), Type: "task.completed", Timestamp: time.Now(), Seq: seq, Data: data}
				jobs := make([]delivery.Job, len(subs))
				for i, sub := range subs {
					jobs[i] = delivery.NewJob(ev, sub, time.Now())
				}
				if err := d.publishJobs(context.Background(), jobs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}
