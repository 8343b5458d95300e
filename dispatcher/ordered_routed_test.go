package dispatcher_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	recv := newOrderedReceiver(t, 0, func(string, int, string) bool { return false })
	b.orderedSub(t, recv.URL, 8)

	const robots, perRobot = 5, 10
	b.publishRobots(t, robots, perRobot)
	// Liveness only: well under the hanging attempts' 30 s.
	waitUntil(t, 15*time.Second, func() bool { n := recv.answered(); return n == robots*perRobot || n < 0 },
		"every ordered event while the unordered receiver hangs")
	violations, _, _, _, _ := recv.report()
	require.Empty(t, violations)
	require.Positive(t, reached.Load(), "the hanging receiver was reached: its attempts held their events")
}
