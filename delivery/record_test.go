package delivery_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
)

// The headers shown for an attempt (history.RequestHeaders) are derived,
// not stored: they must be the ones the Deliverer sent, signatures redacted.
func TestRequestHeadersAreTheOnesSent(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: loopback})
	t.Cleanup(d.Close)
	job := testJob(t, "sub-1")
	job.Attempt = 3
	res := d.Attempt(context.Background(), job, testSub(t, srv.URL))
	require.Equal(t, 503, res.StatusCode)
	sent := (<-got).header

	// As the worker records it and the store keeps it.
	dl := history.Delivery{ID: job.ID, EventID: job.EventID, Event: job.Event, SubscriptionID: job.SubscriptionID}
	shown := history.RequestHeaders(dl, history.AttemptInfo{Attempt: job.Attempt, At: res.Start.UTC()})
	for name, value := range shown {
		if value == history.Redacted {
			require.NotEmpty(t, sent.Get(name), name)
			continue
		}
		require.Equal(t, sent.Get(name), value, name)
	}
	for name := range sent {
		switch name {
		case "User-Agent", "Accept-Encoding", "Content-Length":
			continue // the transport's, or a replica setting
		}
		ok := false
		for s := range shown {
			ok = ok || strings.EqualFold(s, name)
		}
		require.True(t, ok, "header %s was sent but is not shown", name)
	}
}
