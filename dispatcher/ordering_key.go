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

// eventVars are an event's expression variables, decoded at most once per
// event, when its first filter or ordering key needs them, and shared by
// every subscription's filter and ordering key.
type eventVars struct {
	ev      delivery.Event
	decoded int // times decoded: at most once
	vars    *expr.Vars
	err     error // why they could not be decoded
}

// get decodes the variables the first time.
func (v *eventVars) get() (*expr.Vars, error) {
	if v.decoded == 0 {
		v.decoded++
		v.vars, v.err = expr.NewVars(expr.Event{Type: v.ev.Type, ID: v.ev.ID, Timestamp: v.ev.Timestamp, Data: v.ev.Data})
	}
	return v.vars, v.err
}

// orderingKey evaluates sub's ordering key over the event. When it fails
// (a missing field, the cost limit), the event is delivered to sub
// unordered, and the failure is logged and counted.
func (d *Dispatcher) orderingKey(sub subscriptions.Subscription, v *eventVars, log zerolog.Logger) (string, bool) {
	vars, err := v.get()
	if err == nil {
		var prg *expr.Program
		if prg, err = d.deps.Exprs.Compile(expr.OrderingKey, sub.OrderingKey); err == nil {
			var key string
			if key, err = prg.Key(vars); err == nil {
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
