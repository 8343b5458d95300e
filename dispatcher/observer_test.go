package dispatcher_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/dispatcher"
)

// observed counts what the dispatcher reports to its Observer.
type observed struct {
	mu           sync.Mutex
	events       map[string]int // "type/result"
	attempts     map[string]int // "sub/reason"
	finished     map[string]int // "sub/status"
	filterErrors map[string]int // by subscription
}

func newObserved() *observed {
	return &observed{events: map[string]int{}, attempts: map[string]int{}, finished: map[string]int{}, filterErrors: map[string]int{}}
}

func (o *observed) FilterError(subID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.filterErrors[subID]++
}

func (o *observed) filterErrorsOf(subID string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.filterErrors[subID]
}

func (o *observed) Event(eventType, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events[eventType+"/"+result]++
}

func (o *observed) Attempt(subID, reason string, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took > 0 { // an attempt reported without its duration is not counted
		o.attempts[subID+"/"+reason]++
	}
}

func (o *observed) Finished(subID string, status delivery.Status) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finished[subID+"/"+string(status)]++
}

func (o *observed) snapshot() (events, attempts, finished map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cp := func(m map[string]int) map[string]int {
		out := make(map[string]int, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	return cp(o.events), cp(o.attempts), cp(o.finished)
}

// The Observer hears of what the audit trail holds: an attempt whose
// record could not be written is not reported (its re-run is).
func TestObserverCountsWhatIsRecorded(t *testing.T) {
	t.Parallel()
	t.Run("unrecorded attempt", func(t *testing.T) {
		t.Parallel()
		obs := newObserved()
		b := setup(t, options{observer: obs, recorder: func(r dispatcher.Recorder) dispatcher.Recorder {
			f := &failingRecorder{Recorder: r}
			f.left.Store(1)
			return f
		}})
		rcv := newReceiver(t, always(http.StatusOK))
		sub := b.subscribe(t, rcv.URL, "task.completed")
		id := b.deliver(t, sub, "task.completed", `{}`, "obs-unrecorded")
		rcv.next(t, 10*time.Second)
		rcv.next(t, 10*time.Second) // the same attempt again, once recordable
		b.waitDelivery(t, id, delivery.StatusSucceeded)
		waitUntil(t, 10*time.Second, func() bool {
			_, _, finished := obs.snapshot()
			return finished[sub.ID+"/succeeded"] == 1
		}, "the delivery reported finished")
		events, attempts, finished := obs.snapshot()
		require.Equal(t, map[string]int{"task.completed/routed": 1}, events)
		require.Equal(t, map[string]int{sub.ID + "/succeeded": 1}, attempts, "two requests, one recorded attempt")
		require.Equal(t, map[string]int{sub.ID + "/succeeded": 1}, finished)
	})
	t.Run("rejected and unrouted events", func(t *testing.T) {
		t.Parallel()
		obs := newObserved()
		b := setup(t, options{observer: obs})
		b.publish(t, "task.completed", `[1,2]`, "obs-not-an-object") // no subscriber needed to be rejected
		b.publish(t, "maintenance.due", `{}`, "obs-nobody")
		waitUntil(t, 10*time.Second, func() bool {
			events, _, _ := obs.snapshot()
			return len(events) == 2
		}, "both events reported")
		events, attempts, finished := obs.snapshot()
		require.Equal(t, map[string]int{"task.completed/rejected": 1, "maintenance.due/no_subscriber": 1}, events)
		require.Empty(t, attempts)
		require.Equal(t, map[string]int{"/rejected": 1}, finished, "a rejected event finishes without a subscription")
	})
}
