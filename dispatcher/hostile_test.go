package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// Events that grow when escaped, events over the size limit and events that
// are not JSON objects, mixed between good events: every good event is
// delivered, every hostile one is delivered or recorded with its reason, and
// nothing loops.
func TestHostileEventsNeverBlockGoodOnes(t *testing.T) {
	// Not parallel: heavy enough that it would slow its neighbours past their timeouts.
	const limit = 256 << 10
	b := setup(t, options{workers: 16, maxEventBytes: limit, prov: func(p *jetstream.Provisioning) { p.MaxEventBytes = limit }})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL, "task.completed")

	huge := `{"x":"` + strings.Repeat("<", 200_000) + `"}` // 1.2 MB once escaped as \u003c
	const hostile, good = 300, 30
	for i := range hostile {
		b.publish(t, "task.completed", huge, fmt.Sprintf("huge-%d", i))
		if i%10 == 0 {
			b.publish(t, "task.completed", fmt.Sprintf(`{"n":%d}`, i), fmt.Sprintf("good-%d", i))
		}
	}
	// Over the limit but within the header allowance: stored, then rejected
	// by the router with its reason.
	b.publish(t, "task.completed", `{"x":"`+strings.Repeat("a", limit)+`"}`, "too-big")
	// Far over: the stream refuses it at publish, so the robot knows.
	_, err := b.ns.JS.Publish(context.Background(), jetstream.EventSubject("task.completed"),
		[]byte(`{"x":"`+strings.Repeat("a", 2*limit)+`"}`))
	require.ErrorIs(t, err, natsjs.ErrStreamMessageExceedsMaximum)

	seen := map[string]int{}
	for len(seen) < hostile+good { // at least once each: a loaded machine may redeliver
		r := rcv.next(t, 30*time.Second)
		id, _ := r.event["id"].(string)
		seen[id]++
		if strings.HasPrefix(id, "huge-") {
			var env struct{ Data json.RawMessage }
			require.NoError(t, json.Unmarshal(r.body, &env))
			require.Equal(t, huge, string(env.Data), "the data arrives byte for byte, not re-encoded")
			require.Less(t, len(r.body), len(huge)+200)
		}
	}
	waitUntil(t, 10*time.Second, func() bool { return b.disp.Stats().Rejected == 1 }, "the oversized event rejected")
	var ds []history.Delivery
	waitUntil(t, 10*time.Second, func() bool {
		ds, _, _ = b.store.List(history.Query{EventID: "too-big"})
		return len(ds) == 1
	}, "the rejection recorded")
	require.Equal(t, delivery.StatusRejected, ds[0].Status)
	require.Contains(t, ds[0].Reason, "over the limit")
	require.GreaterOrEqual(t, b.disp.Stats().Attempts, uint64(hostile+good))
	_ = sub
}

// A receiver answering with a body that grows when escaped cannot make the
// audit record too large to write.
func TestBloatingResponseIsRecordedBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(strings.Repeat("<\u2028\x00", 400_000)))
	}))
	t.Cleanup(rcv.Close)
	sub := b.subscribe(t, rcv.URL, "task.completed")
	id := b.deliver(t, sub, "task.completed", `{"x":"`+strings.Repeat("<", 500_000)+`"}`, "bloat")
	d := b.waitDelivery(t, id, delivery.StatusFailed)
	require.Len(t, d.Attempts, 4)
	require.LessOrEqual(t, len(d.Attempts[0].Response), 1<<10+3)
	require.Equal(t, 4, int(b.disp.Stats().Attempts), "each attempt recorded once: none was re-sent for want of a record")
}

// An event id that a robot reuses after the stream's duplicate window is a
// new event: it is delivered again, as a new delivery, not dropped.
func TestEventIDReusedAfterTheDuplicateWindowIsDelivered(t *testing.T) {
	t.Parallel()
	b := setup(t, options{prov: func(p *jetstream.Provisioning) { p.DuplicateWindow = 300 * time.Millisecond }})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL, "task.created")
	first := b.deliver(t, sub, "task.created", `{"n":1}`, "reused")
	rcv.next(t, 10*time.Second)

	var seq uint64
	waitUntil(t, 10*time.Second, func() bool { // the window passes
		m := nats.NewMsg(jetstream.EventSubject("task.created"))
		m.Data, m.Header = []byte(`{"n":2}`), nats.Header{nats.MsgIdHdr: []string{"reused"}}
		ack, err := b.ns.JS.PublishMsg(context.Background(), m)
		require.NoError(t, err)
		seq = ack.Sequence
		return !ack.Duplicate
	}, "the duplicate window to pass")
	second := b.jobID(t, "reused", sub.ID, seq)
	require.NotEqual(t, first, second)
	r := rcv.next(t, 10*time.Second)
	require.Equal(t, second, r.header.Get("X-Webhook-Delivery"))
	require.Equal(t, "reused", r.event["id"], "receivers still see the robot's event id")
	b.waitDelivery(t, first, delivery.StatusSucceeded)
	b.waitDelivery(t, second, delivery.StatusSucceeded)
}

// gate is a receiver that holds every request until released, and tracks
// how many it holds at once.
type gate struct {
	*httptest.Server
	release        chan struct{}
	open           func()
	inFlight, peak atomic.Int64
	total          atomic.Int64
}

func newGate(t *testing.T) *gate {
	g := &gate{release: make(chan struct{})}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := g.inFlight.Add(1)
		g.total.Add(1)
		for {
			p := g.peak.Load()
			if n <= p || g.peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-g.release:
		case <-r.Context().Done():
		}
		g.inFlight.Add(-1)
	}))
	var once sync.Once
	g.open = func() { once.Do(func() { close(g.release) }) }
	t.Cleanup(func() { g.open(); g.Close() })
	return g
}

// A receiver that hangs holds at most its subscription's cap of workers;
// its other jobs wait without using up attempts, and other subscriptions
// keep being served.
func TestHangingReceiverHoldsOnlyItsCap(t *testing.T) {
	t.Parallel()
	b := setup(t, options{workers: 16, health: endpoint.Config{MaxInFlight: 3, BusyDelay: 50 * time.Millisecond}})
	hang := newGate(t)
	healthy := newReceiver(t, always(http.StatusOK))
	hung, err := b.subs.Create(context.Background(), subscriptions.Subscription{
		URL: hang.URL, Events: []string{"robot.disconnected"}, Timeout: time.Minute, // hangs, no time-out
	})
	require.NoError(t, err)
	b.subscribe(t, healthy.URL, "robot.connected")
	for i := range 30 {
		b.publish(t, "robot.disconnected", `{}`, fmt.Sprintf("h-%d", i))
	}
	waitUntil(t, 10*time.Second, func() bool { return hang.inFlight.Load() == 3 }, "the cap reached")
	waitUntil(t, 10*time.Second, func() bool { return b.disp.Stats().Deferred > 30 }, "jobs deferred")
	for i := range 50 {
		b.publish(t, "robot.connected", `{}`, fmt.Sprintf("ok-%d", i))
	}
	for range 50 {
		healthy.next(t, 10*time.Second)
	}
	require.EqualValues(t, 3, hang.peak.Load(), "never more than the cap in flight")
	require.Equal(t, 3, b.endpoints.Health(hung.ID).InFlight)

	hang.open()
	waitUntil(t, time.Minute, func() bool { return hang.total.Load() >= 30 && b.workersIdle(t) }, "all 30 sent")
	for i := range 30 {
		ds, _, err := b.store.List(history.Query{EventID: fmt.Sprintf("h-%d", i)})
		require.NoError(t, err)
		if len(ds) == 1 {
			require.Len(t, ds[0].Attempts, 1, "waiting for a slot is no attempt")
		}
	}
	require.EqualValues(t, 3, hang.peak.Load())
}

// The breaker opens after a run of failures; while it is open a dead
// receiver gets at most one probe per cool-down, and jobs use up no
// retries; a successful probe closes it and the held-back jobs go out.
func TestBreakerHoldsJobsBackAndProbes(t *testing.T) {
	t.Parallel()
	const cooldown = 400 * time.Millisecond
	b := setup(t, options{
		workers: 8,
		// Enough retries that no delivery can run out while the breaker holds them back.
		policy: delivery.Schedule(50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond,
			50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond),
		health: endpoint.Config{BreakerFailures: 3, BreakerCooldown: cooldown, MaxInFlight: 1},
	})
	var healthy atomic.Bool
	var mu sync.Mutex
	var times []time.Time
	rcv := newReceiver(t, func(int) int {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	sub := b.subscribe(t, rcv.URL, "alert.triggered")
	for i := range 10 {
		b.publish(t, "alert.triggered", `{}`, fmt.Sprintf("a-%d", i))
	}
	waitUntil(t, 10*time.Second, func() bool { return b.endpoints.Health(sub.ID).Breaker == endpoint.BreakerOpen }, "breaker open")
	time.Sleep(4 * cooldown) // let the breaker run through several cool-downs (what is measured is the gaps)
	mu.Lock()
	opened := times[2]
	probes := append([]time.Time(nil), times[3:]...)
	mu.Unlock()
	require.LessOrEqual(t, len(probes), 5, "at most one probe per cool-down")
	prev := opened
	for _, p := range probes {
		require.GreaterOrEqual(t, p.Sub(prev), cooldown/2, "probes are a cool-down apart (less jitter)")
		prev = p
	}
	h := b.endpoints.Health(sub.ID)
	require.GreaterOrEqual(t, h.ConsecutiveFailures, 3)

	require.NotZero(t, b.disp.Stats().Deferred, "jobs were held back")

	healthy.Store(true)
	attempts := 0
	for i := range 10 {
		id := b.jobID(t, fmt.Sprintf("a-%d", i), sub.ID, uint64(i+1))
		d := b.waitDelivery(t, id, delivery.StatusSucceeded)
		attempts += len(d.Attempts)
	}
	mu.Lock()
	require.Equal(t, len(times), attempts, "every attempt is a request: holding back counted none")
	mu.Unlock()
	require.Equal(t, endpoint.BreakerClosed, b.endpoints.Health(sub.ID).Breaker)
}

// A 410 Gone disables the subscription at once and announces it; later
// events are held; re-enabling sends them all.
func TestGoneDisablesHoldsAndReenables(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	var gone atomic.Bool
	gone.Store(true)
	rcv := newReceiver(t, func(int) int {
		if gone.Load() {
			return http.StatusGone
		}
		return http.StatusOK
	})
	ops := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL, "task.completed")
	b.subscribe(t, ops.URL, dispatcher.EventSubscriptionDisabled)

	first := b.deliver(t, sub, "task.completed", `{"n":0}`, "g-0")
	require.Equal(t, "1", rcv.next(t, 10*time.Second).header.Get("X-Webhook-Attempt"))
	d := b.waitDelivery(t, first, delivery.StatusPaused)
	require.Contains(t, d.Reason, endpoint.DisabledGone)
	require.Len(t, d.Attempts, 1)
	waitUntil(t, 10*time.Second, func() bool { s, _ := b.subs.Get(sub.ID); return !s.Active }, "subscription disabled")

	note := ops.next(t, 10*time.Second)
	require.Equal(t, dispatcher.EventSubscriptionDisabled, note.event["event"])
	data := note.event["data"].(map[string]any)
	require.Equal(t, sub.ID, data["subscription_id"])
	require.Equal(t, endpoint.DisabledGone, data["reason"])
	require.NotContains(t, fmt.Sprint(data), rcv.URL, "only the host, never the URL")

	later := make([]string, 3)
	for i := range later {
		later[i] = b.deliver(t, sub, "task.completed", fmt.Sprintf(`{"n":%d}`, i+1), fmt.Sprintf("g-%d", i+1))
	}
	for _, id := range later {
		d := b.waitDelivery(t, id, delivery.StatusPaused)
		require.Empty(t, d.Attempts)
	}
	require.Empty(t, rcv.reqs, "exactly one request: the 410")

	gone.Store(false)
	_, err := b.subs.Update(context.Background(), sub.ID, func(s *subscriptions.Subscription) error {
		s.Active, s.DisabledReason = true, ""
		return nil
	})
	require.NoError(t, err)
	b.queue.Resume(sub.ID)
	for range 4 {
		rcv.next(t, 10*time.Second)
	}
	d = b.waitDelivery(t, first, delivery.StatusSucceeded)
	require.Len(t, d.Attempts, 2, "the 410'd delivery continues with attempt 2")
	for _, id := range later {
		b.waitDelivery(t, id, delivery.StatusSucceeded)
	}
}

// Retry-After on a 503 stretches the delay beyond the policy's.
func TestRetryAfterStretchesTheDelay(t *testing.T) {
	t.Parallel()
	b := setup(t, options{policy: delivery.Schedule(50 * time.Millisecond)})
	rcv := httptest.NewServer(http.HandlerFunc(func() http.HandlerFunc {
		n := atomic.Int64{}
		return func(w http.ResponseWriter, _ *http.Request) {
			if n.Add(1) == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}
	}()))
	t.Cleanup(rcv.Close)
	sub := b.subscribe(t, rcv.URL, "task.completed")
	id := b.deliver(t, sub, "task.completed", `{}`, "ra")
	d := b.waitDelivery(t, id, delivery.StatusSucceeded)
	require.Len(t, d.Attempts, 2)
	require.EqualValues(t, 1000, d.Attempts[0].NextRetryMS)
	require.GreaterOrEqual(t, d.Attempts[1].At.Sub(d.Attempts[0].At), time.Second)
}

// failingRecorder fails the first n attempt records. Their failure is
// told from a goroutine of its own, after Record returned, as when AUDIT
// refuses a batch after the worker went on.
type failingRecorder struct {
	dispatcher.Recorder
	left atomic.Int64
	used atomic.Int64
}

func (f *failingRecorder) Record(rec history.Record, keep *delivery.Job, done func(error)) {
	f.used.Add(1)
	if rec.Attempt != nil && f.left.Add(-1) >= 0 {
		go done(fmt.Errorf("audit stream unavailable (test)"))
		return
	}
	f.Recorder.Record(rec, keep, done)
}

// When the record cannot be written, the job is nak'ed, never acked: the
// attempt runs again, under the same number, until it is recorded.
func TestUnrecordedAttemptIsNeverAcked(t *testing.T) {
	t.Parallel()
	unrecordedIsNeverAcked(t, "unrecorded", func(r dispatcher.Recorder) dispatcher.Recorder {
		f := &failingRecorder{Recorder: r}
		f.left.Store(2)
		return f
	})
}

// unrecordedIsNeverAcked delivers one event through a recorder that refuses
// its first two attempt records: the same attempt runs three times, is
// recorded once, and the job is acked only then.
func unrecordedIsNeverAcked(t *testing.T, eventID string, wrap func(dispatcher.Recorder) dispatcher.Recorder) {
	t.Helper()
	b := setup(t, options{recorder: wrap})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL, "task.completed")
	id := b.deliver(t, sub, "task.completed", `{}`, eventID)
	for range 3 {
		r := rcv.next(t, 10*time.Second)
		require.Equal(t, "1", r.header.Get("X-Webhook-Attempt"), "the same attempt again")
	}
	d := b.waitDelivery(t, id, delivery.StatusSucceeded)
	require.Len(t, d.Attempts, 1)
	waitUntil(t, 10*time.Second, func() bool { return b.workersIdle(t) }, "acked once recorded")
	require.Empty(t, rcv.reqs)
}

// A replica killed while it retries leaves nothing to re-count: the
// replica that takes over, with an empty index, continues every delivery's
// attempts from the job itself, each attempt exactly once.
//
// A's history is WEBHOOKD_TEST_HISTORY successful deliveries, which B's
// index has to catch up on while it takes over: none of them is sent
// again. The default, 2,000, keeps the test near a minute with -race on a
// loaded machine; the 20,000 took 2m36s to build there (run it with
// WEBHOOKD_TEST_HISTORY=20000).
func TestTakeoverContinuesAttemptsWithAnEmptyIndex(t *testing.T) {
	// Not parallel: heavy enough that it would slow its neighbours past their timeouts.
	const deliveries, attempts = 40, 5
	past := testSize(t, "WEBHOOKD_TEST_HISTORY", 2_000)
	// Long enough that no third attempt is due while A is killed, even if
	// a loaded machine spreads the second attempts over seconds: a kill
	// mid-attempt would make that attempt twice, which at-least-once allows
	// but this test does not measure.
	gap := 4 * time.Second
	policy := delivery.Schedule(gap, gap, gap, gap)
	health := endpoint.Config{MaxInFlight: deliveries}
	a := setup(t, options{policy: policy, workers: 32, health: health})
	done, pastSub := buildHistory(t, a, past)
	var mu sync.Mutex
	seen := map[string][]string{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		id := r.Header.Get("X-Webhook-Delivery")
		seen[id] = append(seen[id], r.Header.Get("X-Webhook-Attempt"))
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(rcv.Close)
	sub := a.subscribe(t, rcv.URL, "task.failed")
	ids := make([]string, deliveries)
	for i := range ids {
		ids[i] = a.deliver(t, sub, "task.failed", `{}`, fmt.Sprintf("t-%d", i))
	}
	twoEach := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if len(seen[id]) != 2 {
				return false
			}
		}
		return true
	}
	str, err := a.ns.JS.Stream(context.Background(), jetstream.StreamDeliveries)
	require.NoError(t, err)
	// Kill A once every delivery has made two attempts and is settled: the
	// queue holds exactly one job per delivery, each for attempt 3 (a
	// delivery recorded but not yet settled still has its attempt-2 job).
	thirdQueued := func() bool {
		info, err := str.Info(context.Background())
		require.NoError(t, err)
		if info.State.Msgs != deliveries {
			return false
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := str.GetMsg(context.Background(), seq)
			if errors.Is(err, natsjs.ErrMsgNotFound) {
				continue // acked and removed
			}
			require.NoError(t, err)
			if m.Header.Get("Webhook-Attempt") != "3" {
				return false
			}
		}
		return true
	}
	waitUntil(t, 30*time.Second, func() bool { return twoEach() && thirdQueued() }, "two attempts each, the third queued")
	a.crash()

	started := time.Now()
	b := setup(t, options{server: a.ns, policy: policy, workers: 8, health: health})
	serving := time.Since(started)
	waitUntil(t, time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen[ids[0]]) == 3
	}, "B's first attempt")
	firstAttempt := time.Since(started)
	for _, id := range ids {
		var d history.Delivery
		waitUntil(t, time.Minute, func() bool {
			var err error
			d, err = b.store.Get(id)
			return err == nil && d.Status == delivery.StatusFailed
		}, "delivery "+id+" to fail")
		require.Len(t, d.Attempts, attempts, "B indexed all five attempts of %s", id)
	}
	indexed := indexedHistory(t, b, pastSub, past)
	require.Equal(t, past, indexed, "B indexed the whole history")
	t.Logf("B with an empty data dir: serving after %s, first attempt (3 of 5, due 4s after the second) after %s, "+
		"its index held all %d past deliveries after %s", serving.Round(time.Millisecond), firstAttempt.Round(time.Millisecond),
		indexed, time.Since(started).Round(time.Millisecond))
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		require.Equal(t, []string{"1", "2", "3", "4", "5"}, seen[id], "delivery %s", id)
	}
	distinct, total := done.counts()
	require.Equal(t, past, distinct)
	require.Equal(t, past, total, "no finished delivery is sent again")
}

// Operators' requeues: a failed delivery is sent again as the next attempt
// with the policy afresh; a double submit queues it once.
func TestRequeueContinuesTheAttemptsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, options{policy: delivery.Schedule(50 * time.Millisecond)})
	var up atomic.Bool
	rcv := newReceiver(t, func(int) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	sub := b.subscribe(t, rcv.URL, "task.completed")
	id := b.deliver(t, sub, "task.completed", `{"keep":"me"}`, "rq")
	b.waitDelivery(t, id, delivery.StatusFailed)
	rcv.next(t, time.Second)
	rcv.next(t, time.Second)

	up.Store(true)
	var wg sync.WaitGroup
	for range 5 { // a double (five-fold) submit, racing
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.queue.Requeue(context.Background(), id); err != nil {
				require.ErrorIs(t, err, dispatcher.ErrConflict, "the losers find it queued")
			}
		}()
	}
	wg.Wait()
	r := rcv.next(t, 10*time.Second)
	require.Equal(t, "3", r.header.Get("X-Webhook-Attempt"))
	require.Equal(t, "me", r.event["data"].(map[string]any)["keep"], "the kept job carries the data")
	d := b.waitDelivery(t, id, delivery.StatusSucceeded)
	require.Len(t, d.Attempts, 3)
	require.Equal(t, 4, d.Attempts[2].MaxAttempts, "the policy starts afresh after the two made")
	waitUntil(t, 10*time.Second, func() bool { return b.workersIdle(t) }, "queue empty")
	require.Empty(t, rcv.reqs, "queued once")

	err := b.queue.Requeue(context.Background(), id)
	require.ErrorIs(t, err, dispatcher.ErrConflict, "a succeeded delivery kept no job")
}

// Pause, then resume across two replicas: every held job is delivered
// after the resume, once per delivery id, whichever replica held it. Its
// size is WEBHOOKD_TEST_HELD held jobs: 2,000 by default, to stay near a
// minute with -race on a loaded machine; run the 20,000 by hand.
func TestPauseAndResumeAcrossReplicas(t *testing.T) {
	// Not parallel: heavy enough that it would slow its neighbours past their timeouts.
	held := testSize(t, "WEBHOOKD_TEST_HELD", 2_000)
	a := setup(t, options{workers: 16})
	b := setup(t, options{server: a.ns, workers: 16})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := a.subscribe(t, rcv.URL, "robot.connected")
	_, err := a.subs.Update(context.Background(), sub.ID, func(s *subscriptions.Subscription) error { s.Active = false; return nil })
	require.NoError(t, err)
	waitUntil(t, 10*time.Second, func() bool {
		sa, okA := a.subs.Get(sub.ID)
		sb, okB := b.subs.Get(sub.ID)
		return okA && okB && !sa.Active && !sb.Active
	}, "both replicas see the pause") // else the first events may be delivered
	start := time.Now()
	publishMany(t, a, "robot.connected", "p", held)
	waitUntil(t, 5*time.Minute, func() bool { return a.disp.Stats().Held+b.disp.Stats().Held == uint64(held) }, "all held")
	require.NotZero(t, a.disp.Stats().Held)
	require.NotZero(t, b.disp.Stats().Held, "both replicas held some")
	require.Empty(t, rcv.reqs)
	t.Logf("%d jobs held in %s (A %d, B %d)", held, time.Since(start).Round(time.Millisecond), a.disp.Stats().Held, b.disp.Stats().Held)

	_, err = b.subs.Update(context.Background(), sub.ID, func(s *subscriptions.Subscription) error { s.Active = true; return nil })
	require.NoError(t, err)
	resumed := time.Now()
	a.queue.Resume(sub.ID) // A resumes, though B held half of them
	got := map[string]int{}
	for range held {
		got[rcv.next(t, time.Minute).header.Get("X-Webhook-Delivery")]++
	}
	t.Logf("resume of %d held jobs: all delivered %s after it", held, time.Since(resumed).Round(time.Millisecond))
	require.Len(t, got, held)
	waitUntil(t, time.Minute, func() bool { return a.workersIdle(t) }, "queue empty")
	require.Empty(t, rcv.reqs, "once per delivery id")
}

// A robot's Nats-Msg-Id too long to index (bbolt keys are at most 32 KiB)
// is rejected by the router with its reason, under the id derived from the
// stream sequence: delivered, its audit records would fail every index
// batch they fall into, for good.
func TestOverlongEventIDIsRejected(t *testing.T) {
	t.Parallel()
	b := setup(t, options{workers: 2})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL, "task.completed")

	seq := b.publish(t, "task.completed", `{"n":1}`, strings.Repeat("i", 40<<10))
	good := b.deliver(t, sub, "task.completed", `{"n":2}`, "good")

	id := delivery.EventIDFromSequence("", seq)
	var ds []history.Delivery
	waitUntil(t, 10*time.Second, func() bool {
		ds, _, _ = b.store.List(history.Query{EventID: id})
		return len(ds) == 1
	}, "the overlong id recorded as rejected")
	require.Equal(t, delivery.StatusRejected, ds[0].Status)
	require.Contains(t, ds[0].Reason, "Nats-Msg-Id")
	b.waitDelivery(t, good, delivery.StatusSucceeded)
	r := rcv.next(t, 10*time.Second)
	require.Equal(t, "good", r.event["id"], "only the good event reaches the receiver")
}

// Jobs held back by an open breaker hold slots of the consumer's pending
// limit, which every subscription shares: a dead endpoint whose backlog
// outgrows MaxHeldBack is disabled, so its jobs leave the queue (held,
// kept) and the others keep flowing.
func TestDeadEndpointsBacklogIsDisabledBeforeItStallsOthers(t *testing.T) {
	t.Parallel()
	b := setup(t, options{
		workers: 8,
		prov:    func(p *jetstream.Provisioning) { p.MaxAckPending = 40 },
		health:  endpoint.Config{BreakerFailures: 2, BreakerCooldown: 2 * time.Second, MaxHeldBack: 10},
	})
	dead := newReceiver(t, always(http.StatusServiceUnavailable))
	healthy := newReceiver(t, always(http.StatusOK))
	deadSub := b.subscribe(t, dead.URL, "alert.triggered")
	b.subscribe(t, healthy.URL, "task.completed")
	const backlog = 60 // more than the pending limit
	for i := range backlog {
		b.publish(t, "alert.triggered", `{}`, fmt.Sprintf("dead-%d", i))
	}
	waitUntil(t, 30*time.Second, func() bool {
		s, _ := b.subs.Get(deadSub.ID)
		return !s.Active && s.DisabledReason == endpoint.DisabledBacklog
	}, "the backlogged subscription disabled")
	for i := range 50 {
		b.publish(t, "task.completed", `{}`, fmt.Sprintf("ok-%d", i))
	}
	for range 50 {
		healthy.next(t, 20*time.Second)
	}
	waitUntil(t, 30*time.Second, func() bool {
		ds, _, err := b.store.List(history.Query{SubscriptionID: deadSub.ID, Status: delivery.StatusPaused, Limit: 1000})
		require.NoError(t, err)
		return len(ds) == backlog
	}, "every dead delivery held, none lost")
}
