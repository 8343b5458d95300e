package dispatcher

import (
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/subscriptions"
)

// policy returns the retry policy of sub's deliveries: the subscription's
// own (Subscription.RetryPolicy) when it has one, else the default.
func (d *Dispatcher) policy(sub subscriptions.Subscription) *delivery.Policy {
	b, ok := sub.Retry()
	switch {
	case !ok:
		return d.deps.Policy
	case b.Exponential():
		return delivery.Exponential(b.Initial, b.Max, b.Retries, b.Jitter, nil)
	default:
		return delivery.Schedule(b.Delays...)
	}
}
