package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/subscriptions"
)

// countingReceiver answers 503 until up, then 200, and records the
// attempt numbers of the successful requests per delivery id.
type countingReceiver struct {
	*httptest.Server
	up   atomic.Bool
	mu   sync.Mutex
	okBy map[string][]string
}

func newCountingReceiver(t *testing.T) *countingReceiver {
	c := &countingReceiver{okBy: map[string][]string{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		c.mu.Lock()
		id := r.Header.Get("X-Webhook-Delivery")
		c.okBy[id] = append(c.okBy[id], r.Header.Get("X-Webhook-Attempt"))
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *countingReceiver) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.okBy)
}

// failedDeliveries publishes n events to a subscription whose receiver is
// down, with one attempt each, and waits until all n are failed.
func failedDeliveries(t *testing.T, b *bundle, rcv *countingReceiver, n int) subscriptions.Subscription {
	t.Helper()
	sub := b.subscribe(t, rcv.URL, "task.failed")
	for i := range n {
		b.publish(t, "task.failed", `{}`, fmt.Sprintf("%s-%d", sub.ID[:8], i))
	}
	waitUntil(t, time.Minute, func() bool { return countFailed(t, b, sub.ID) == n }, fmt.Sprintf("%d failed deliveries", n))
	return sub
}

func countFailed(t *testing.T, b *bundle, subID string) int {
	t.Helper()
	n := 0
	require.NoError(t, b.queue.Each(history.Query{SubscriptionID: subID, Status: delivery.StatusFailed},
		func(history.Delivery) error { n++; return nil }))
	return n
}

func waitReplay(t *testing.T, q *dispatcher.Queue, id string) dispatcher.ReplayStatus {
	t.Helper()
	var st dispatcher.ReplayStatus
	waitUntil(t, time.Minute, func() bool {
		var ok bool
		st, ok = q.Replay(id)
		require.True(t, ok)
		return st.Done
	}, "replay "+id+" to end")
	return st
}

// A replay runs in the Queue, not in the request that started it: it goes
// on after that request's context ends, at the rate asked for. Asking again
// for the same range joins it; another range of the same subscription is a
// conflict while it runs.
func TestReplayRunsInTheBackgroundAndIsJoined(t *testing.T) {
	t.Parallel()
	const n = 60
	b := setup(t, options{policy: delivery.Schedule()}) // one attempt each
	rcv := newCountingReceiver(t)
	sub := failedDeliveries(t, b, rcv, n)
	rcv.up.Store(true)

	since := time.Now().Add(-time.Hour)
	query := history.Query{SubscriptionID: sub.ID, Since: since}
	reqCtx, endRequest := context.WithCancel(context.Background())
	st, joined, err := b.queue.StartReplay(reqCtx, query, 30) // two seconds' work
	endRequest()
	require.NoError(t, err)
	require.False(t, joined)
	require.Equal(t, n, st.Planned)
	require.False(t, st.Done)

	again, joined, err := b.queue.StartReplay(context.Background(), query, 30)
	require.NoError(t, err)
	require.True(t, joined, "the same replay asked for again")
	require.Equal(t, st.ID, again.ID)
	_, _, err = b.queue.StartReplay(context.Background(), history.Query{SubscriptionID: sub.ID, Since: since.Add(time.Minute)}, 30)
	require.ErrorIs(t, err, dispatcher.ErrReplayRunning)
	require.ErrorIs(t, err, dispatcher.ErrConflict)

	st = waitReplay(t, b.queue, st.ID)
	require.Empty(t, st.Err)
	require.Equal(t, n, st.Sent)
	took := st.FinishedAt.Sub(st.StartedAt)
	require.GreaterOrEqual(t, took, 1500*time.Millisecond, "%d at 30/s (a burst of one)", n)
	waitUntil(t, 30*time.Second, func() bool { return rcv.distinct() == n }, "every replayed delivery")
	waitUntil(t, 10*time.Second, func() bool { return b.workersIdle(t) }, "queue empty")
	rcv.mu.Lock()
	for id, attempts := range rcv.okBy {
		require.Equal(t, []string{"2"}, attempts, "delivery %s sent once, as attempt 2", id)
	}
	rcv.mu.Unlock()

	next, joined, err := b.queue.StartReplay(context.Background(), query, 30)
	require.NoError(t, err)
	require.False(t, joined, "a finished replay is not joined")
	require.NotEqual(t, st.ID, next.ID)
	require.Zero(t, next.Planned, "nothing is failed any more")
	require.Zero(t, waitReplay(t, b.queue, next.ID).Sent)
}

// A replay stops when its replica shuts down; a replay on another replica
// then sends the rest, and every delivery arrives once.
func TestReplayStopsAtShutdownAndTheNextSendsTheRest(t *testing.T) {
	t.Parallel()
	const n = 200
	a := setup(t, options{policy: delivery.Schedule()})
	rcv := newCountingReceiver(t)
	sub := failedDeliveries(t, a, rcv, n)
	rcv.up.Store(true)

	query := history.Query{SubscriptionID: sub.ID, Since: time.Now().Add(-time.Hour)}
	st, _, err := a.queue.StartReplay(context.Background(), query, 50)
	require.NoError(t, err)
	waitUntil(t, 30*time.Second, func() bool { s, _ := a.queue.Replay(st.ID); return s.Sent >= 20 }, "20 sent")
	a.stop() // returns once Queue.Run (and with it the replay) has returned
	st, ok := a.queue.Replay(st.ID)
	require.True(t, ok)
	require.True(t, st.Done)
	require.Contains(t, st.Err, "shutting down")
	require.Less(t, st.Sent, n/2, "stopped early")
	_, _, err = a.queue.StartReplay(context.Background(), query, 50)
	require.ErrorIs(t, err, dispatcher.ErrQueueStopped)

	b := setup(t, options{server: a.ns, policy: delivery.Schedule()})
	waitUntil(t, 30*time.Second, func() bool { return countFailed(t, b, sub.ID) == n-st.Sent }, "B's index to show the rest failed")
	rest, _, err := b.queue.StartReplay(context.Background(), query, 1000)
	require.NoError(t, err)
	require.Equal(t, n-st.Sent, rest.Planned)
	rest = waitReplay(t, b.queue, rest.ID)
	require.Empty(t, rest.Err)
	require.Equal(t, n-st.Sent, rest.Sent)
	waitUntil(t, 30*time.Second, func() bool { return rcv.distinct() == n }, "every delivery")
	waitUntil(t, 10*time.Second, func() bool { return b.workersIdle(t) }, "queue empty")
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for id, attempts := range rcv.okBy {
		require.Len(t, attempts, 1, "delivery %s sent once", id)
	}
}

// Held deliveries of a subscription that is active again are resumed even
// when no resume was asked of this replica (the replica that was asked
// shut down mid-way): the Queue's sweep finds and sends them, once each.
func TestHeldDeliveriesOfAnActiveSubscriptionAreNotStranded(t *testing.T) {
	t.Parallel()
	const held = 50
	b := setup(t, options{heldSweep: 300 * time.Millisecond})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL, "maintenance.due")
	_, err := b.subs.Update(context.Background(), sub.ID, func(s *subscriptions.Subscription) error { s.Active = false; return nil })
	require.NoError(t, err)
	for i := range held {
		b.publish(t, "maintenance.due", `{}`, fmt.Sprintf("stranded-%d", i))
	}
	waitUntil(t, 30*time.Second, func() bool { return b.disp.Stats().Held == held }, "all held")

	// Resumed in the record of truth only: no Queue.Resume call.
	_, err = b.subs.Update(context.Background(), sub.ID, func(s *subscriptions.Subscription) error { s.Active = true; return nil })
	require.NoError(t, err)
	got := map[string]int{}
	for range held {
		got[rcv.next(t, 30*time.Second).header.Get("X-Webhook-Delivery")]++
	}
	require.Len(t, got, held)
	waitUntil(t, 10*time.Second, func() bool { return b.workersIdle(t) }, "queue empty")
	waitUntil(t, 10*time.Second, func() bool {
		ds, _, err := b.store.List(history.Query{SubscriptionID: sub.ID, Status: delivery.StatusPaused})
		require.NoError(t, err)
		return len(ds) == 0
	}, "nothing left held")
	require.Empty(t, rcv.reqs, "once each, though the sweep keeps looking")
}

// A replay requeues oldest first: its requeues overlap, but each publishes
// after the one before it, so one worker sees the jobs in that order.
func TestReplayQueuesOldestFirst(t *testing.T) {
	t.Parallel()
	const n = 40
	b := setup(t, options{policy: delivery.Schedule(), workers: 1})
	rcv := newReceiver(t, func(int) int { return http.StatusOK })
	failing := newCountingReceiver(t)
	sub := failedDeliveries(t, b, failing, n)
	_, err := b.subs.Update(context.Background(), sub.ID, func(s *subscriptions.Subscription) error { s.URL = rcv.URL; return nil })
	require.NoError(t, err)
	var want []string
	require.NoError(t, b.queue.Each(history.Query{SubscriptionID: sub.ID, Status: delivery.StatusFailed},
		func(d history.Delivery) error { want = append(want, d.ID); return nil }))

	st, _, err := b.queue.StartReplay(context.Background(), history.Query{SubscriptionID: sub.ID, Since: time.Now().Add(-time.Hour)}, 1000)
	require.NoError(t, err)
	require.Empty(t, waitReplay(t, b.queue, st.ID).Err)
	var got []string
	for range n {
		got = append(got, rcv.next(t, 30*time.Second).header.Get("X-Webhook-Delivery"))
	}
	require.Equal(t, want, got)
}
