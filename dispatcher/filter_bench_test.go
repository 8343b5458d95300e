package dispatcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

// BenchmarkFiltered measures what filters add to routing one event to
// 100 matching subscriptions: none with a filter (the list is returned
// as it is), or each with its own filter that lets the event through
// (the data decoded once, 100 programs from the compiler's cache).
func BenchmarkFiltered(b *testing.B) {
	exprs, err := expr.NewCompiler()
	if err != nil {
		b.Fatal(err)
	}
	d := &Dispatcher{deps: Deps{Exprs: exprs, Observer: nopObserver{}}}
	data := []byte(`{"robot_id":"r-7","severity":"critical","fleet":"lab-2","level":3,"message":"battery low","battery":0.12}`)
	for _, filtered := range []bool{false, true} {
		subs := make([]subscriptions.Subscription, 100)
		for i := range subs {
			subs[i] = subscriptions.Subscription{ID: fmt.Sprintf("sub-%d", i)}
			if filtered {
				subs[i].Filter = fmt.Sprintf(`data.severity == "critical" && data.level > -%d`, i)
			}
		}
		b.Run(fmt.Sprintf("subs-100/filtered=%v", filtered), func(b *testing.B) {
			var seq uint64
			b.ReportAllocs()
			for b.Loop() {
				seq++
				ev := delivery.Event{ID: "e", Type: "alert.triggered", Timestamp: time.Now(), Seq: seq, Data: data}
				if got := d.filtered(&eventVars{ev: ev}, subs, zerolog.Nop()); len(got) != len(subs) {
					b.Fatalf("%d of %d subscriptions matched", len(got), len(subs))
				}
			}
		})
	}
}
