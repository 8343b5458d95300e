package dispatcher_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// holdFirst returns a status function that holds the first request until
// release is called, then answers 200. Register release with t.Cleanup after
// creating the receiver, so it runs before the receiver's server closes.
func holdFirst() (status func(int) int, release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	return func(n int) int {
		if n == 1 {
			<-gate
		}
		return http.StatusOK
	}, release
}

// A worker killed mid-attempt records nothing; JetStream redelivers the job
// after AckWait to another replica, which makes the same attempt again: an
// interrupted attempt does not use up a retry.
func TestWorkerKilledMidAttemptRetriesTheSameAttempt(t *testing.T) {
	t.Parallel()
	status, release := holdFirst()
	a := setup(t, options{})
	rcv := newReceiver(t, status)
	t.Cleanup(release)
	sub := a.subscribe(t, rcv.URL, "task.completed")
	id := a.deliver(t, sub, "task.completed", `{"n":1}`, "evt-kill")

	first := rcv.next(t, 10*time.Second)
	require.Equal(t, "1", first.header.Get("X-Webhook-Attempt"))
	a.crash()

	b := setup(t, options{server: a.ns})
	second := rcv.next(t, 20*time.Second) // after AckWait (5s in tests)
	require.Equal(t, first.header.Get("X-Webhook-Delivery"), second.header.Get("X-Webhook-Delivery"))
	require.Equal(t, "1", second.header.Get("X-Webhook-Attempt"), "the interrupted attempt was not counted")
	// The first attempt ran on A's fast path; the event came back to B,
	// which spilled it as a job, as it does every branch of a redelivered
	// event.
	require.Zero(t, a.disp.Stats().Jobs)
	require.EqualValues(t, 1, b.disp.Stats().Jobs)
	release()

	d := b.waitDelivery(t, id, delivery.StatusSucceeded)
	require.Len(t, d.Attempts, 1)
	require.Equal(t, 1, d.Attempts[0].Attempt)
}

// On stop, an in-flight attempt may finish within the shutdown timeout and is
// recorded and acked before Run returns.
func TestShutdownLetsInFlightAttemptsFinish(t *testing.T) {
	t.Parallel()
	status, release := holdFirst()
	a := setup(t, options{shutdownTimeout: 30 * time.Second})
	rcv := newReceiver(t, status)
	t.Cleanup(release)
	sub := a.subscribe(t, rcv.URL, "task.completed")
	id := a.deliver(t, sub, "task.completed", `{}`, "evt-drain")
	rcv.next(t, 10*time.Second)

	stopped := make(chan struct{})
	go func() { a.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("stop returned while an attempt was in flight")
	case <-time.After(200 * time.Millisecond): // stop stays blocked on the attempt
	}
	release()
	<-stopped

	// The ack left before stop returned; the server applies it asynchronously.
	// Unacked, the job would stay in flight (nobody is left to take it).
	waitUntil(t, 10*time.Second, func() bool { return a.workersIdle(t) }, "the job acked")
	b := setup(t, options{server: a.ns}) // its indexer reads the audit trail
	d := b.waitDelivery(t, id, delivery.StatusSucceeded)
	require.Len(t, d.Attempts, 1)
	require.Empty(t, rcv.reqs)
}

// An attempt still running when the shutdown timeout ends is cut off,
// recorded nowhere and nak'ed at once: another replica retries it as the same
// attempt without waiting for AckWait (a minute here, longer than the test).
func TestShutdownTimeoutReturnsCutOffJobsAtOnce(t *testing.T) {
	t.Parallel()
	status, release := holdFirst() // the first request hangs until the test ends
	longAckWait := func(p *jetstream.Provisioning) { p.AckWait = time.Minute }
	a := setup(t, options{shutdownTimeout: 100 * time.Millisecond, prov: longAckWait})
	rcv := newReceiver(t, status)
	t.Cleanup(release)
	sub := a.subscribe(t, rcv.URL, "task.completed")
	id := a.deliver(t, sub, "task.completed", `{}`, "evt-cut")
	first := rcv.next(t, 10*time.Second)

	b := setup(t, options{server: a.ns, prov: longAckWait})
	a.stop()
	second := rcv.next(t, 10*time.Second)
	require.Equal(t, first.header.Get("X-Webhook-Delivery"), second.header.Get("X-Webhook-Delivery"))
	require.Equal(t, "1", second.header.Get("X-Webhook-Attempt"), "a cut-off attempt is not counted")
	d := b.waitDelivery(t, id, delivery.StatusSucceeded)
	require.Len(t, d.Attempts, 1)
}

// Retries waiting on NakWithDelay hold MaxAckPending slots; with the limit
// sized above the retry backlog, a dead receiver does not hold back a
// healthy one.
func TestDeadReceiverDoesNotStarveHealthyOnes(t *testing.T) {
	t.Parallel()
	b := setup(t, options{
		workers: 4,
		policy:  delivery.Schedule(time.Minute), // the dead receiver's retries wait far beyond the test
		prov:    func(p *jetstream.Provisioning) { p.MaxAckPending = 16 },
	})
	dead := newReceiver(t, always(http.StatusServiceUnavailable))
	healthy := newReceiver(t, always(http.StatusOK))
	b.subscribe(t, dead.URL, "alert.triggered")
	b.subscribe(t, healthy.URL, "task.completed")

	const backlog, flow = 10, 40
	for i := range backlog {
		b.publish(t, "alert.triggered", `{}`, "dead-"+string(rune('a'+i)))
	}
	for range backlog {
		dead.next(t, 10*time.Second) // each failed once and now waits a minute
	}
	for i := range flow {
		b.publish(t, "task.completed", `{}`, "ok-"+string(rune('a'+i)))
	}
	seen := map[string]bool{}
	for range flow {
		seen[healthy.next(t, 10*time.Second).event["id"].(string)] = true
	}
	require.Len(t, seen, flow, "every healthy event arrived while the backlog waited")
	require.Empty(t, dead.reqs, "no retry was due yet")
}

// Workers run in parallel: a receiver that hangs holds only the workers
// busy with it, and other subscribers keep being served.
func TestSlowReceiverDoesNotHoldBackOthers(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	b := setup(t, options{workers: 4})
	slow := newReceiver(t, func(int) int { <-gate; return http.StatusOK })
	t.Cleanup(func() { close(gate) })
	fast := newReceiver(t, always(http.StatusOK))
	b.subscribe(t, slow.URL, "robot.disconnected")
	b.subscribe(t, fast.URL, "robot.connected")
	for _, id := range []string{"s1", "s2"} {
		b.publish(t, "robot.disconnected", `{}`, id)
	}
	slow.next(t, 10*time.Second)
	slow.next(t, 10*time.Second) // two workers are now stuck
	for i := range 20 {
		b.publish(t, "robot.connected", `{}`, "f"+string(rune('a'+i)))
	}
	for range 20 {
		fast.next(t, 10*time.Second)
	}
}

// A graceful stop hands back at once what it has not started: the events
// and jobs waiting in memory for their endpoint's slots are spilled or
// nak'ed, not left for their AckWait (30 s here), nor for the memory
// queue's own expiry (a third of it). Only the attempts in flight stay
// with the stopping replica, and they finish and settle before Run
// returns; the replica that comes next starts the rest at once.
//
// What is handed back is counted as another replica sees it, by pulling:
// the consumers' count of unsettled messages is no measure, as JetStream
// counts a nak'ed message there until someone pulls it again.
func TestGracefulStopHandsBackUnstartedWork(t *testing.T) {
	t.Parallel()
	const events, limit = 40, 8
	const ackWait = 30 * time.Second
	ack := func(p *jetstream.Provisioning) { p.AckWait = ackWait }
	a := setup(t, options{workers: 16, prov: ack, shutdownTimeout: 30 * time.Second,
		health: endpoint.Config{MaxInFlight: limit}})
	hang := newGate(t)
	// Attempts that outlast the test's waits: none times out meanwhile.
	_, err := a.subs.Create(context.Background(), subscriptions.Subscription{
		URL: hang.URL, Events: []string{"task.completed"}, Timeout: time.Minute,
	})
	require.NoError(t, err)
	publishMany(t, a, "task.completed", "handback", events)
	waitUntil(t, 10*time.Second, func() bool { return hang.inFlight.Load() == limit }, "the endpoint's cap in flight")

	stopped := make(chan struct{})
	go func() { a.stop(); close(stopped) }()
	// While its attempts are still in flight, the stopping replica holds
	// nothing else: every other delivery can be pulled, as an event or as
	// a job.
	handedBack := events - limit
	seen := pullAvailable(t, a, handedBack, ackWait/6)
	require.Len(t, seen, handedBack, "every unstarted delivery handed back while the attempts are in flight")
	hang.open()
	<-stopped

	started := time.Now()
	b := setup(t, options{server: a.ns, prov: ack, workers: 16, health: endpoint.Config{MaxInFlight: limit}})
	waitUntil(t, ackWait/6, func() bool { return hang.total.Load() >= events }, "every handed-back delivery attempted well before AckWait")
	t.Logf("the next replica attempted the %d handed-back deliveries within %s", handedBack, time.Since(started).Round(time.Millisecond))
	waitUntil(t, 20*time.Second, func() bool { return b.workersIdle(t) }, "all settled")
	require.EqualValues(t, events, hang.total.Load(), "each delivery attempted once")
}

// pullAvailable pulls, as another replica would, the events and jobs no
// replica holds, until it has seen want distinct events (a job counts as
// its event) or timeout has passed; it naks back all it pulled and returns
// the events' ids.
func pullAvailable(t *testing.T, b *bundle, want int, timeout time.Duration) map[string]bool {
	t.Helper()
	ctx := context.Background()
	router, err := b.ns.JS.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.NoError(t, err)
	workers, err := b.ns.JS.Consumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
	require.NoError(t, err)
	seen := map[string]bool{}
	var pulled []natsjs.Msg
	defer func() {
		for _, m := range pulled {
			require.NoError(t, m.Nak())
		}
	}()
	for deadline := time.Now().Add(timeout); len(seen) < want && time.Now().Before(deadline); {
		for _, c := range []natsjs.Consumer{router, workers} {
			batch, err := c.Fetch(want, natsjs.FetchMaxWait(100*time.Millisecond))
			require.NoError(t, err)
			for m := range batch.Messages() {
				pulled = append(pulled, m)
				if c == router {
					seen[m.Headers().Get(nats.MsgIdHdr)] = true
					continue
				}
				job, err := delivery.DecodeJob(m.Headers(), m.Data())
				require.NoError(t, err)
				seen[job.EventID] = true
			}
		}
	}
	return seen
}

// A replica killed while first attempts run on its fast path and retries
// wait in DELIVERIES loses nothing: its unsettled events and jobs come back
// to the replica that stays, and every delivery succeeds. Duplicates (an
// attempt the killed replica made but did not record) are allowed, counted
// and reported.
func TestReplicaKilledMidRunLosesNothing(t *testing.T) {
	t.Parallel()
	const events, fanout = 200, 2
	var n atomic.Int64
	var mu sync.Mutex
	ok := map[string]int{} // 2xx answers per delivery id
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 { // a quarter fail: their retries are jobs in DELIVERIES
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		select { // a request whose sender was killed meanwhile was not answered
		case <-time.After(2 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		mu.Lock()
		ok[r.Header.Get("X-Webhook-Delivery")]++
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	// Enough quick retries that no delivery runs out of them (a quarter of
	// nine attempts in a row failing is a chance in 260,000).
	policy := delivery.Schedule(50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond,
		50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond)
	a := setup(t, options{workers: 8, policy: policy})
	b := setup(t, options{server: a.ns, workers: 8, policy: policy})
	for range fanout {
		a.subscribe(t, rcv.URL, "task.completed")
	}
	waitUntil(t, 10*time.Second, func() bool { return len(b.subs.Match("task.completed")) == fanout }, "b's mirror")
	publishMany(t, a, "task.completed", "kill", events)
	waitUntil(t, 20*time.Second, func() bool { return n.Load() > events/2 }, "the run under way")
	aStats := a.disp.Stats()
	a.crash()
	t.Logf("killed A after %d requests; A had %d attempts recorded and %d jobs spilled or retried", n.Load(), aStats.Attempts, aStats.Jobs)

	waitUntil(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ok) == events*fanout
	}, "every delivery succeeded")
	waitUntil(t, 30*time.Second, func() bool { return b.workersIdle(t) }, "all settled")
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, c := range ok {
		dups += c - 1
	}
	t.Logf("%d deliveries, 0 lost, %d delivered twice or more", len(ok), dups)
	require.Len(t, ok, events*fanout, "none lost")
}

// panicOnce panics in its first attempt, as a bug of ours set off by one
// delivery would.
type panicOnce struct {
	dispatcher.Attempter
	done atomic.Bool
}

func (p *panicOnce) Attempt(ctx context.Context, job delivery.Job, sub subscriptions.Subscription) delivery.Result {
	if p.done.CompareAndSwap(false, true) {
		panic("a bug in an attempt (test)")
	}
	return p.Attempter.Attempt(ctx, job, sub)
}

// A panic in a fast-path attempt stops neither the process nor its event:
// the branch fails, the event is routed again (its branch spilled as a
// job) and delivered, and the next events go the fast path as before.
func TestPanicInAFastPathAttemptRunsItAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, options{attempter: func(a dispatcher.Attempter) dispatcher.Attempter { return &panicOnce{Attempter: a} }})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL, "task.completed")
	first := b.deliver(t, sub, "task.completed", `{}`, "evt-panic")
	require.Equal(t, first, rcv.next(t, 20*time.Second).header.Get("X-Webhook-Delivery"))
	b.waitDelivery(t, first, delivery.StatusSucceeded)
	second := b.deliver(t, sub, "task.completed", `{}`, "evt-after-panic")
	require.Equal(t, second, rcv.next(t, 10*time.Second).header.Get("X-Webhook-Delivery"))
	waitUntil(t, 10*time.Second, func() bool { return b.workersIdle(t) }, "both settled")
	require.EqualValues(t, 1, b.disp.Stats().Jobs, "the failed branch's event was routed again and spilled")
}
