package delivery_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
)

func TestAttemptSendsCustomHeaders(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) })
	d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: loopback})
	sub := testSub(t, srv.URL)
	sub.SetHeader("x-api-key", "abc")
	sub.SetHeader("Authorization", "Bearer t0k")
	require.NoError(t, sub.Validate())

	res := d.Attempt(context.Background(), testJob(t, sub.ID), sub)
	require.Equal(t, delivery.OutcomeSucceeded, res.Outcome)
	r := <-got
	require.Equal(t, []string{"abc"}, r.header.Values("X-Api-Key"))
	require.Equal(t, "Bearer t0k", r.header.Get("Authorization"))
	// Ours are untouched beside them.
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, hmacHex(sub.Secret, r.body), r.header.Get("X-Webhook-Signature"))
}
