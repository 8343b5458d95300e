package jetstream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// EventIDHeader returns the id an event's headers give it: its
// Nats-Msg-Id, or for an event copied by the EVENTS migration its
// HeaderEventID; "" when it has neither, and its id is then derived from
// its sequence (delivery.EventIDFromSequence).
func EventIDHeader(h nats.Header) string {
	if id := h.Get(nats.MsgIdHdr); id != "" {
		return id
	}
	return h.Get(HeaderEventID)
}

// EventTime returns when an event was published: stored, the time its
// stream stored it, or for an event copied by the EVENTS migration the time
// its HeaderEventTime gives.
func EventTime(h nats.Header, stored time.Time) time.Time {
	if v := h.Get(HeaderEventTime); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	return stored
}

// EventSalt returns what makes this EVENTS stream unlike any other: its
// creation time, to the nanosecond, which its every server keeps and
// which changes when the stream is created anew. Events published without
// a Nats-Msg-Id take their id from it and their sequence.
func EventSalt(ctx context.Context, js natsjs.JetStream) (string, error) {
	str, err := js.Stream(ctx, StreamEvents)
	if err != nil {
		return "", fmt.Errorf("jetstream: stream %s info: %w", StreamEvents, err)
	}
	created := str.CachedInfo().Created
	if created.IsZero() {
		return "", fmt.Errorf("jetstream: stream %s has no creation time", StreamEvents)
	}
	return created.UTC().Format(time.RFC3339Nano), nil
}
