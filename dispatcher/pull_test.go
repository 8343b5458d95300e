package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/stretchr/testify/require"
)

// The workers pull no more jobs than they have idle goroutines: a job
// pulled is a job whose AckWait runs, so none should sit in a buffer
// while every worker is busy.
func TestWorkersPullOnlyWhatTheyCanStart(t *testing.T) {
	t.Parallel()
	const workers, jobs = 3, 12
	b := setup(t, options{workers: workers, health: endpoint.Config{MaxInFlight: jobs}, noFastPath: true})
	hang := newGate(t)
	_, err := b.subs.Create(context.Background(), subscriptions.Subscription{
		URL: hang.URL, Events: []string{"robot.connected"}, Timeout: time.Minute,
	})
	require.NoError(t, err)
	for i := range jobs {
		b.publish(t, "robot.connected", `{}`, fmt.Sprintf("e-%d", i))
	}
	waitUntil(t, 10*time.Second, func() bool { return hang.inFlight.Load() == workers }, "every worker busy")
	c, err := b.ns.JS.Consumer(context.Background(), jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
	require.NoError(t, err)
	// Every job is stored after the workers got busy: a pull request left
	// waiting on the server, or a buffer, would have taken some.
	waitUntil(t, 10*time.Second, func() bool { return b.disp.Stats().Jobs == jobs }, "every job queued")
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	require.Equal(t, workers, info.NumAckPending, "only the jobs in flight were pulled")
	require.EqualValues(t, jobs-workers, info.NumPending)

	hang.open()
	waitUntil(t, 30*time.Second, func() bool { return hang.total.Load() == jobs && b.workersIdle(t) }, "all sent")
}

// The routers pull no more events than the fast path has capacity for: a
// replica whose every worker is busy leaves new events in EVENTS, for
// itself later or for a peer, instead of holding them unstarted.
func TestRoutersPullOnlyWhatTheyCanStart(t *testing.T) {
	t.Parallel()
	const workers, events = 3, 12
	b := setup(t, options{workers: workers, health: endpoint.Config{MaxInFlight: events}})
	hang := newGate(t)
	_, err := b.subs.Create(context.Background(), subscriptions.Subscription{
		URL: hang.URL, Events: []string{"robot.connected"}, Timeout: time.Minute,
	})
	require.NoError(t, err)
	for i := range events {
		b.publish(t, "robot.connected", `{}`, fmt.Sprintf("e-%d", i))
	}
	waitUntil(t, 10*time.Second, func() bool { return hang.inFlight.Load() == workers }, "every token in use")
	pending, held := b.consumerState(t, jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.Equal(t, workers, held, "only the events whose attempts are in flight were pulled")
	require.EqualValues(t, events-workers, pending)
	require.Zero(t, b.disp.Stats().Jobs, "nothing spilled: the events wait in EVENTS")

	hang.open()
	waitUntil(t, 30*time.Second, func() bool { return hang.total.Load() == events && b.workersIdle(t) }, "all sent")
}

// A busy endpoint's backlog waits in memory for its slot, as much of it
// as the endpoint gets through within a third of the AckWait: the jobs are
// not handed back to JetStream and pulled again and again.
func TestBusyEndpointsBacklogWaitsInMemory(t *testing.T) {
	t.Parallel()
	const events = 300
	b := setup(t, options{workers: 8, health: endpoint.Config{MaxInFlight: 1}})
	r := newReceiver(t, func(int) int {
		time.Sleep(time.Millisecond) // a receiver that takes a moment
		return http.StatusOK
	})
	b.subscribe(t, r.URL, "task.completed")
	publishMany(t, b, "task.completed", "busy", events)
	for range events {
		r.next(t, 30*time.Second)
	}
	waitUntil(t, 10*time.Second, func() bool { return b.workersIdle(t) }, "every job settled")
	t.Logf("%d jobs handed back", b.disp.Stats().Deferred)
	// One slot, 300 jobs: without the queue nearly every job would be
	// handed back at least once; with it, at most those beyond its 256.
	require.Less(t, b.disp.Stats().Deferred, uint64(events/2), "jobs handed back for want of a slot")
}

// An attempt longer than the AckWait is kept in progress: JetStream does
// not hand the job to another worker meanwhile.
func TestSlowAttemptIsNotRedeliveredMeanwhile(t *testing.T) {
	t.Parallel()
	const ackWait = 2 * time.Second
	b := setup(t, options{prov: func(p *jetstream.Provisioning) { p.AckWait = ackWait }})
	r := newReceiver(t, func(int) int {
		time.Sleep(2*ackWait + ackWait/2) // a receiver slower than the AckWait
		return http.StatusOK
	})
	sub, err := b.subs.Create(context.Background(), subscriptions.Subscription{
		URL: r.URL, Events: []string{"task.completed"}, Timeout: 4 * ackWait,
	})
	require.NoError(t, err)
	id := b.deliver(t, sub, "task.completed", `{}`, "slow")
	r.next(t, 10*time.Second)
	d := b.waitDelivery(t, id, delivery.StatusSucceeded)
	require.Len(t, d.Attempts, 1)
	select {
	case req := <-r.reqs:
		t.Fatalf("the job was redelivered during its attempt: a second request at %s", req.at)
	default:
	}
}

// A slow endpoint's backlog does not hold back another endpoint's jobs:
// they are delivered while the slow one still works through most of it.
func TestSlowEndpointsBacklogDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	const backlog, others = 200, 10
	b := setup(t, options{workers: 8, health: endpoint.Config{MaxInFlight: 1, MaxQueued: 32}})
	var served atomic.Int64
	slow := newReceiver(t, func(int) int {
		time.Sleep(20 * time.Millisecond) // 50 requests a second at most
		served.Add(1)
		return http.StatusOK
	})
	fast := newReceiver(t, always(http.StatusOK))
	b.subscribe(t, slow.URL, "robot.disconnected")
	b.subscribe(t, fast.URL, "robot.connected")
	publishMany(t, b, "robot.disconnected", "slow", backlog)
	slow.next(t, 10*time.Second) // the backlog is being worked through
	publishMany(t, b, "robot.connected", "fast", others)
	for range others {
		fast.next(t, 30*time.Second)
	}
	require.Less(t, served.Load(), int64(backlog/2), "the other endpoint's jobs waited behind the slow one's backlog")
	for range backlog - 1 {
		slow.next(t, 30*time.Second)
	}
}
