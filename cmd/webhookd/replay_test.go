package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// A replay runs under the daemon's errgroup: stopping the daemon mid-replay
// stops it and run returns cleanly (the package's goleak check finds
// nothing left running); the daemon started again on the same data dir
// replays the rest, and every delivery arrives once.
func TestReplayStopsWithTheDaemonAndAnotherSendsTheRest(t *testing.T) {
	t.Parallel()
	const n = 300
	const token = "replay-test-token-of-32-bytes-or-more"
	dir := t.TempDir()
	flags := []string{"--data-dir", dir, "--admin-token", token, "--retry-backoff", ""}
	var up atomic.Bool
	var mu sync.Mutex
	okBy := map[string]int{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusBadRequest) // fails without opening the breaker
			return
		}
		mu.Lock()
		okBy[r.Header.Get("X-Webhook-Delivery")]++
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)

	d := start(t, flags...)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", token, `{"url":"`+rcv.URL+`","events":["task.failed"]}`, &sub))
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for i := range n {
		require.Equal(t, 202, d.call(t, "POST", "/v1/events", token, fmt.Sprintf(`{"event":"task.failed","data":{},"id":"stop-%d"}`, i), nil))
	}
	var plan client.ReplayResult
	waitFor(t, func() bool {
		require.Equal(t, 200, d.call(t, "POST", "/v1/deliveries/replay", token, `{"subscription":"`+sub.ID+`","since":"`+since+`","dry_run":true}`, &plan))
		return plan.Count == n
	})
	up.Store(true)
	body := `{"subscription":"` + sub.ID + `","since":"` + since + `","rate":50}`
	var rp client.Replay
	require.Equal(t, 202, d.call(t, "POST", "/v1/deliveries/replay", token, body, &rp))
	require.Equal(t, n, rp.Planned)
	var again client.Replay
	require.Equal(t, 202, d.call(t, "POST", "/v1/deliveries/replay", token, body, &again), "the same replay again")
	require.True(t, again.Joined)
	require.Equal(t, rp.ID, again.ID)
	other := `{"subscription":"` + sub.ID + `","since":"` + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + `","rate":50}`
	var e struct{ Error client.Error }
	require.Equal(t, http.StatusConflict, d.call(t, "POST", "/v1/deliveries/replay", token, other, &e), "another range while it runs")
	require.Contains(t, e.Error.Message, "replay "+rp.ID)
	waitFor(t, func() bool {
		require.Equal(t, 200, d.call(t, "GET", "/v1/replays/"+rp.ID, token, "", &rp))
		return rp.Sent >= 30
	})
	stopping := time.Now()
	require.NoError(t, d.stop(), "run returns nil")
	t.Logf("stopped mid-replay (%d of %d sent) in %s", rp.Sent, n, time.Since(stopping).Round(time.Millisecond))
	require.True(t, strings.Contains(d.logs.String(), "shutting down; replay again"), "the log says the replay stopped")

	d = start(t, flags...) // same data dir: its index knows what is still failed
	waitFor(t, func() bool {
		require.Equal(t, 202, d.call(t, "POST", "/v1/deliveries/replay", token, `{"subscription":"`+sub.ID+`","since":"`+since+`","rate":1000}`, &rp))
		if rp.Planned > 0 && rp.Planned < n {
			return true
		}
		waitFor(t, func() bool { d.call(t, "GET", "/v1/replays/"+rp.ID, token, "", &rp); return rp.Done })
		return false
	})
	waitFor(t, func() bool {
		require.Equal(t, 200, d.call(t, "GET", "/v1/replays/"+rp.ID, token, "", &rp))
		return rp.Done
	})
	require.Empty(t, rp.Error)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(okBy) == n })
	var st client.Status
	waitFor(t, func() bool {
		require.Equal(t, 200, d.call(t, "GET", "/v1/status", token, "", &st))
		for _, c := range st.Consumers {
			if c.Name == "workers" && (c.Pending != 0 || c.InFlight != 0) {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for id, count := range okBy {
		require.Equal(t, 1, count, "delivery %s once", id)
	}
}
