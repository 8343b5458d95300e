package dispatcher_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/subscriptions"
)

// A subscription's own retry policy replaces the default for its
// deliveries only, in either form; clearing it brings the default back.
func TestSubscriptionRetryPolicyOverridesTheDefault(t *testing.T) {
	t.Parallel()
	// The default: 3 retries.
	b := setup(t, options{policy: delivery.Schedule(50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond)})
	ctx := context.Background()
	create := func(url, policy string) subscriptions.Subscription {
		t.Helper()
		sub, err := b.subs.Create(ctx, subscriptions.Subscription{URL: url, Events: []string{"task.failed"}, RetryPolicy: policy})
		require.NoError(t, err)
		return sub
	}
	listRcv := newReceiver(t, always(http.StatusInternalServerError))
	expRcv := newReceiver(t, always(http.StatusInternalServerError))
	defRcv := newReceiver(t, always(http.StatusInternalServerError))
	list := create(listRcv.URL, "300ms")           // 1 retry, 300ms later
	exp := create(expRcv.URL, "exp:100ms:200ms:4") // 4 retries: 100, 200, 200, 200ms
	def := create(defRcv.URL, "")                  // the default: 3 retries
	seq := b.publish(t, "task.failed", `{}`, "evt-policy")

	failed := func(sub subscriptions.Subscription, attempts int) []history.AttemptInfo {
		t.Helper()
		d := b.waitDelivery(t, b.jobID(t, "evt-policy", sub.ID, seq), delivery.StatusFailed)
		require.Len(t, d.Attempts, attempts, "attempts of %s", sub.URL)
		for _, a := range d.Attempts {
			require.Equal(t, attempts, a.MaxAttempts)
		}
		return d.Attempts
	}
	la := failed(list, 2)
	require.GreaterOrEqual(t, la[1].At.Sub(la[0].At), 300*time.Millisecond-50*time.Millisecond, "the list's delay")
	ea := failed(exp, 5)
	require.GreaterOrEqual(t, ea[1].At.Sub(ea[0].At), 100*time.Millisecond-50*time.Millisecond)
	require.GreaterOrEqual(t, ea[2].At.Sub(ea[1].At), 200*time.Millisecond-50*time.Millisecond, "doubled")
	failed(def, 4)

	// Cleared, the default applies again.
	_, err := b.subs.Update(ctx, list.ID, func(s *subscriptions.Subscription) error { s.RetryPolicy = ""; return nil })
	require.NoError(t, err)
	seq = b.publish(t, "task.failed", `{}`, "evt-policy-2")
	d := b.waitDelivery(t, b.jobID(t, "evt-policy-2", list.ID, seq), delivery.StatusFailed)
	require.Len(t, d.Attempts, 4)
}
