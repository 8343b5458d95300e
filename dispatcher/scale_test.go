package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/jetstream"
)

// testSize is a test's size: def, or the environment's name when set (for
// a bigger run by hand).
func testSize(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, name)
	return n
}

// okCounter is a receiver that answers 200 and counts requests per
// delivery id.
type okCounter struct {
	*httptest.Server
	mu    sync.Mutex
	byID  map[string]int
	total int
}

func newOKCounter(t *testing.T) *okCounter {
	c := &okCounter{byID: map[string]int{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.byID[r.Header.Get("X-Webhook-Delivery")]++
		c.total++
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *okCounter) counts() (distinct, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID), c.total
}

// publishMany publishes n events of eventType with ids prefix-0…, as a
// robot would, without waiting for each acknowledgement in turn.
func publishMany(t *testing.T, b *bundle, eventType, prefix string, n int) {
	t.Helper()
	for i := range n {
		m := nats.NewMsg(jetstream.EventSubject(eventType))
		m.Data = []byte(`{}`)
		m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s-%d", prefix, i))
		_, err := b.ns.JS.PublishMsgAsync(m)
		require.NoError(t, err)
		if (i+1)%1000 == 0 || i == n-1 { // within the client's limit of pending acks
			select {
			case <-b.ns.JS.PublishAsyncComplete():
			case <-time.After(time.Minute):
				t.Fatal("events not acknowledged")
			}
		}
	}
}

// buildHistory delivers n events successfully through b, so the AUDIT stream
// holds a history of n deliveries; it returns the receiver, which counts
// what it is sent later, and the subscription.
func buildHistory(t *testing.T, b *bundle, n int) (*okCounter, string) {
	t.Helper()
	start := time.Now()
	rcv := newOKCounter(t)
	sub := b.subscribe(t, rcv.URL, "task.completed")
	publishMany(t, b, "task.completed", "hist", n)
	waitUntil(t, 3*time.Minute, func() bool { d, _ := rcv.counts(); return d == n }, fmt.Sprintf("%d deliveries", n))
	waitUntil(t, time.Minute, func() bool { return b.workersIdle(t) }, "history settled")
	info, err := b.ns.JS.Stream(context.Background(), jetstream.StreamAudit)
	require.NoError(t, err)
	t.Logf("history: %d deliveries (%d AUDIT records) in %s", n, info.CachedInfo().State.Msgs, time.Since(start).Round(time.Millisecond))
	return rcv, sub.ID
}

// indexedHistory waits until b's index holds the last of n history
// deliveries, then counts the succeeded ones of subID.
func indexedHistory(t *testing.T, b *bundle, subID string, n int) int {
	t.Helper()
	last := fmt.Sprintf("hist-%d", n-1)
	waitUntil(t, 2*time.Minute, func() bool {
		ds, _, err := b.store.List(history.Query{EventID: last})
		require.NoError(t, err)
		return len(ds) == 1 && ds[0].Status == delivery.StatusSucceeded
	}, "the history indexed")
	count := 0
	require.NoError(t, b.queue.Each(history.Query{SubscriptionID: subID, Status: delivery.StatusSucceeded},
		func(history.Delivery) error { count++; return nil }))
	return count
}
