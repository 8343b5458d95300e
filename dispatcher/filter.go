package dispatcher

import (
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

// filtered returns the subscriptions of subs that ev goes to: those
// without a filter, and those whose filter gives true, in subs' order. It
// returns subs itself when none has a filter. The event's variables (v)
// are decoded once, when the first filter needs them, and shared by every
// filter and ordering key. A filter that fails (a missing field, the cost limit, an
// expression that no longer compiles) does not match: it is counted
// (Observer.FilterError) and logged at debug level, as it may fail for
// every event.
func (d *Dispatcher) filtered(v *eventVars, subs []subscriptions.Subscription, log zerolog.Logger) []subscriptions.Subscription {
	var out []subscriptions.Subscription // nil until the first filter
	for i, sub := range subs {
		if sub.Filter == "" {
			if out != nil {
				out = append(out, sub)
			}
			continue
		}
		if out == nil {
			out = append(make([]subscriptions.Subscription, 0, len(subs)), subs[:i]...)
		}
		vars, varsErr := v.get()
		ok, err := d.match(sub.Filter, vars, varsErr)
		if err != nil {
			d.deps.Observer.FilterError(sub.ID)
			log.Debug().Err(err).Str("subscription_id", sub.ID).Msg("filter failed: no match")
			continue
		}
		if ok {
			out = append(out, sub)
		}
	}
	if out == nil {
		return subs
	}
	return out
}

// match evaluates filter src against vars (varsErr: why they could not be
// decoded).
func (d *Dispatcher) match(src string, vars *expr.Vars, varsErr error) (bool, error) {
	prg, err := d.deps.Exprs.Compile(expr.Filter, src)
	if err != nil {
		return false, err
	}
	if varsErr != nil {
		return false, varsErr
	}
	return prg.Match(vars)
}
