package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/internal/daemontest"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// hangingReceiver answers nothing until the test ends: each request holds
// its attempt for the subscription's whole timeout.
func hangingReceiver(t *testing.T) (url string, reached *atomic.Int64) {
	t.Helper()
	reached = new(atomic.Int64)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv.URL, reached
}

// An unordered subscription whose receiver hangs sits beside an ordered
// one, on the same events. Its fast-path attempts hold their events
// unacked for up to its timeout (30 s), so the router's ack floor stands
// still; the ordered receiver still gets every event, in order, long
// before: a hanging receiver only hurts itself.
func TestOrderedNotHeldBackByAHangingUnorderedReceiver(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	hangURL, reached := hangingReceiver(t)
	_, err := b.subs.Create(context.Background(), subscriptions.Subscription{
		URL: hangURL, Events: []string{"task.completed"}, Timeout: 30 * time.Second, MaxInFlight: 2,
	})
	require.NoError(t, err)
	recv := daemontest.NewOrderedReceiver(t, 0, func(string, int, string) bool { return false })
	b.orderedSub(t, recv.URL, 8)

	const robots, perRobot = 5, 10
	b.publishRobots(t, robots, perRobot)
	// Liveness only: well under the hanging attempts' 30 s.
	waitUntil(t, 15*time.Second, func() bool { n := recv.Answered(); return n == robots*perRobot || n < 0 },
		"every ordered event while the unordered receiver hangs")
	violations, _, _, _, _ := recv.Report()
	require.Empty(t, violations)
	require.Positive(t, reached.Load(), "the hanging receiver was reached: its attempts held their events")
}

// Two replicas share the partitions under constant load: each owns at
// least a quarter of them after a short while (at most its share, half of
// them, once they heard of each other; without a share, the first to pull
// keeps nearly all). Then one stops; the other takes its partitions,
// and the order per robot holds throughout.
func TestOrderedPartitionsSpreadOverReplicas(t *testing.T) {
	t.Parallel()
	a := setup(t, options{})
	b := setup(t, options{server: a.ns})
	recv := daemontest.NewOrderedReceiver(t, 5*time.Millisecond, func(string, int, string) bool { return false })
	sub := a.orderedSub(t, recv.URL, 8)
	waitUntil(t, 10*time.Second, func() bool { _, ok := b.subs.Get(sub.ID); return ok }, "the subscription on both replicas")

	const robots = 64
	published := 0
	round := func() {
		for r := range robots {
			a.publish(t, "task.completed", fmt.Sprintf(`{"robot_id":"R%03d","n":%d}`, r, published/robots), "")
			published++
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for min(a.disp.OrderedPartitions(), b.disp.OrderedPartitions()) < jetstream.OrderedPartitions/4 {
		require.True(t, time.Now().Before(deadline), "each replica owns a quarter of the partitions under load (A %d, B %d)",
			a.disp.OrderedPartitions(), b.disp.OrderedPartitions())
		round()
		waitUntil(t, 30*time.Second, func() bool { n := recv.Answered(); return n >= published-2*robots || n < 0 }, "the receiver to keep up")
	}
	t.Logf("after %d events: A owns %d partitions, B %d", published, a.disp.OrderedPartitions(), b.disp.OrderedPartitions())
	round()
	b.stop()
	round()
	waitUntil(t, 60*time.Second, func() bool { n := recv.Answered(); return n == published || n < 0 }, "every event answered after B left")
	violations, _, _, _, _ := recv.Report()
	require.Empty(t, violations, "per robot, in order, across B's leaving")
}
