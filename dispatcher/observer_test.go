package dispatcher_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/dispatcher"
)

// observed counts what the dispatcher reports to its Observer.
type observed struct {
	mu       sync.Mutex
	events   map[string]int // "type/result"
	attempts map[string]int // "sub/reason"
	finished map[string]int // "sub/status"
}

func newObserved() *observed {
	return &observed{events: map[string]int{}, attempts: map[string]int{}, finished: map[string]int{}}
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

// dupAsyncRecorder pipelines every record to AUDIT but says the first
// attempt record was already there, as when a worker died after recording it.
type dupAsyncRecorder struct {
	dispatcher.Recorder
	async dispatcher.AsyncRecorder
	once  sync.Once
}

func (d *dupAsyncRecorder) PublishAsync(rec history.Record) (natsjs.PubAckFuture, error) {
	f, err := d.async.PublishAsync(rec)
	if err != nil || rec.Attempt == nil {
		return f, err
	}
	dup := false
	d.once.Do(func() { dup = true })
	if !dup {
		return f, nil
	}
	out := &dupFuture{PubAckFuture: f, ok: make(chan *natsjs.PubAck, 1), err: make(chan error, 1)}
	go func() {
		select {
		case a := <-f.Ok():
			c := *a
			c.Duplicate = true
			out.ok <- &c
		case err := <-f.Err():
			out.err <- err
		}
	}()
	return out, nil
}

// dupFuture is a real acknowledgement that says Duplicate.
type dupFuture struct {
	natsjs.PubAckFuture
	ok  chan *natsjs.PubAck
	err chan error
}

func (d *dupFuture) Ok() <-chan *natsjs.PubAck { return d.ok }
func (d *dupFuture) Err() <-chan error         { return d.err }

// The Observer hears of what the audit trail holds, once: an attempt whose
// record could not be written is not reported (its re-run is), and one whose
// record an earlier run already wrote is not reported again.
func TestObserverCountsWhatIsRecorded(t *testing.T) {
	t.Parallel()
	// Each case runs on both settle paths: the synchronous Publish (the
	// recorder hides PublishAsync) and the pipelined PublishAsync.
	var async *failingAsyncRecorder
	for name, wrap := range map[string]func(dispatcher.Recorder) dispatcher.Recorder{
		"unrecorded attempt": func(r dispatcher.Recorder) dispatcher.Recorder {
			f := &failingRecorder{Recorder: r}
			f.left.Store(1)
			return f
		},
		"unrecorded pipelined attempt": func(r dispatcher.Recorder) dispatcher.Recorder {
			async = &failingAsyncRecorder{Recorder: r, async: r.(dispatcher.AsyncRecorder)}
			async.left.Store(1)
			return async
		},
	} {
		t.Run(name, func(t *testing.T) {
			obs := newObserved()
			b := setup(t, options{observer: obs, recorder: wrap})
			rcv := newReceiver(t, always(http.StatusOK))
			sub := b.subscribe(t, rcv.URL, "task.completed")
			id := b.deliver(t, sub, "task.completed", `{}`, "obs-"+name)
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
	}
	require.GreaterOrEqual(t, async.used.Load(), int64(2), "the pipelined case's records went through the pipeline")
	for name, wrap := range map[string]func(dispatcher.Recorder) dispatcher.Recorder{
		"duplicate pipelined record": func(r dispatcher.Recorder) dispatcher.Recorder {
			return &dupAsyncRecorder{Recorder: r, async: r.(dispatcher.AsyncRecorder)}
		},
	} {
		t.Run(name, func(t *testing.T) {
			obs := newObserved()
			b := setup(t, options{observer: obs, recorder: wrap})
			rcv := newReceiver(t, always(http.StatusOK))
			sub := b.subscribe(t, rcv.URL, "task.completed")
			dupID := b.deliver(t, sub, "task.completed", `{}`, "obs-dup-"+name)
			b.waitDelivery(t, dupID, delivery.StatusSucceeded)
			id := b.deliver(t, sub, "task.completed", `{}`, "obs-after-"+name)
			b.waitDelivery(t, id, delivery.StatusSucceeded)
			waitUntil(t, 10*time.Second, func() bool {
				_, _, finished := obs.snapshot()
				return finished[sub.ID+"/succeeded"] == 1
			}, "the second delivery reported finished")
			_, attempts, finished := obs.snapshot()
			require.Equal(t, map[string]int{sub.ID + "/succeeded": 1}, attempts, "the duplicate is not reported")
			require.Equal(t, map[string]int{sub.ID + "/succeeded": 1}, finished)
		})
	}
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
