package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// envInt reads a test size from the environment, for a bigger run by hand.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, name)
	return n
}

// Thousands of failed deliveries replayed through the real daemon and the
// CLI at --rate 1000: one request starts the replay in the daemon, the CLI
// follows it, every delivery arrives once, at the rate asked for.
func TestCLIReplaysThousandsAtTheRequestedRate(t *testing.T) {
	// Not parallel: it measures a rate.
	n := envInt(t, "WEBHOOKD_TEST_REPLAY_N", 2000)
	d := newDaemon(t, "--retry-backoff", "", "--max-in-flight", "64")
	var up atomic.Bool
	var mu sync.Mutex
	okBy := map[string][]string{}
	requests := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() { // a 400 does not open the circuit breaker
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		requests++
		id := r.Header.Get("X-Webhook-Delivery")
		okBy[id] = append(okBy[id], r.Header.Get("X-Webhook-Attempt"))
	}))
	t.Cleanup(rcv.Close)
	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", rcv.URL, "--events", "alert.triggered")
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)

	nc, err := nats.Connect("nats://" + d.natsAddr)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	for i := range n {
		_, err := js.PublishAsync("events.alert.triggered", []byte(`{}`), natsjs.WithMsgID(fmt.Sprintf("rp-%05d", i)))
		require.NoError(t, err)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		t.Fatal("events not acknowledged")
	}
	var plan client.ReplayResult
	waitFor(t, 2*time.Minute, func() bool {
		d.ctlJSON(t, &plan, "deliveries", "replay", "--subscription", sub.ID, "--since", since, "--dry-run")
		return plan.Count == n
	}, fmt.Sprintf("%d failed deliveries", n))

	up.Store(true)
	out, errOut, code := d.ctl("-o", "json", "deliveries", "replay", "--subscription", sub.ID, "--since", since, "--rate", "1000")
	require.Equal(t, 0, code, errOut)
	var rp client.Replay
	require.NoError(t, json.Unmarshal([]byte(out), &rp), out)
	require.True(t, rp.Done)
	require.Empty(t, rp.Error)
	require.Equal(t, n, rp.Planned)
	require.Equal(t, n, rp.Sent)
	require.Contains(t, errOut, fmt.Sprintf("replayed %d/%d", n, n), "progress lines")
	took := rp.FinishedAt.Sub(rp.StartedAt)
	reached := float64(n) / took.Seconds()
	t.Logf("replayed %d deliveries in %s: %.0f/s for --rate 1000", n, took.Round(time.Millisecond), reached)
	require.Less(t, reached, 1100.0, "not faster than asked")
	// How close it comes depends on the machine's load: a floor is checked
	// only when asked for (WEBHOOKD_TEST_REPLAY_MIN_RATE=800 on a quiet one).
	require.GreaterOrEqual(t, reached, float64(envInt(t, "WEBHOOKD_TEST_REPLAY_MIN_RATE", 0)))

	delivered := func() int { mu.Lock(); defer mu.Unlock(); return len(okBy) }
	waitFor(t, time.Minute, func() bool { return delivered() == n }, "every replayed delivery")
	waitFor(t, 30*time.Second, func() bool {
		var st client.Status
		d.ctlJSON(t, &st, "status")
		for _, c := range st.Consumers {
			if c.Name == "workers" && (c.Pending != 0 || c.InFlight != 0) {
				return false
			}
		}
		return true
	}, "queue empty")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, n, requests, "once each")
	for id, attempts := range okBy {
		require.Equal(t, []string{"2"}, attempts, "delivery %s", id)
	}
}
