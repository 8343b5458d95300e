package dispatcher

import (
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

// orderingVars are an event's expression variables, decoded once for all
// its ordered subscriptions; err is why they could not be.
type orderingVars struct {
	vars *expr.Vars
	err  error
}

func (d *Dispatcher) newOrderingVars(ev delivery.Event) *orderingVars {
	v, err := expr.NewVars(expr.Event{Type: ev.Type, ID: ev.ID, Timestamp: ev.Timestamp, Data: ev.Data})
	return &orderingVars{vars: v, err: err}
}

// orderingKey evaluates sub's ordering key over the event. When it fails
// (a missing field, the cost limit), the event is delivered to sub
// unordered, and the failure is logged and counted.
func (d *Dispatcher) orderingKey(sub subscriptions.Subscription, v *orderingVars, log zerolog.Logger) (string, bool) {
	err := v.err
	if err == nil {
		var prg *expr.Program
		if prg, err = d.deps.Exprs.Compile(expr.OrderingKey, sub.OrderingKey); err == nil {
			var key string
			if key, err = prg.Key(v.vars); err == nil {
				return headerSafeKey(key), true
			}
		}
	}
	d.keyErrors.Add(1)
	if o, ok := d.deps.Observer.(OrderingObserver); ok {
		o.OrderingKeyFailed(sub.ID)
	}
	log.Debug().Err(err).Str("subscription_id", sub.ID).Msg("ordering key failed; delivered unordered")
	return "", false
}

// OrderingObserver is an Observer that also counts the events whose
// ordering key could not be evaluated (delivered unordered).
type OrderingObserver interface {
	OrderingKeyFailed(subscriptionID string)
}

// maxKeyBytes bounds a key as jobs carry it (a header) and operators see it.
const maxKeyBytes = 256

// headerSafeKey returns key as a job's header can carry it: unchanged when
// it is valid UTF-8 of at most maxKeyBytes without control characters,
// otherwise "sha256:" and the hex of its SHA-256 (equal keys stay equal).
func headerSafeKey(key string) string {
	ok := len(key) <= maxKeyBytes && utf8.ValidString(key)
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			ok = false
			break
		}
	}
	if ok {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}
