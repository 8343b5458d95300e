// Package publisher is the Go library robots and controllers use to publish
// events to webhookd.
//
// An event is published to the NATS subject events.<type> of the EVENTS
// stream, its body the event's data (one JSON object). webhookd routes it to
// every subscribed endpoint. Publish sets the Nats-Msg-Id header to the
// event id, given with WithID or a new UUID, and waits for the stream's
// acknowledgement: once Publish returns nil the event is stored and will be
// delivered (at least once). Publishing again with the same id within the
// stream's duplicate window (2 minutes) is acknowledged as a duplicate and
// delivered only once, so a robot that did not get its ack retries with the
// same id:
//
//	id := publisher.NewID()
//	for {
//		_, err := p.Publish(ctx, publisher.TaskCompleted, data, publisher.WithID(id))
//		if err == nil || !publisher.Retryable(err) {
//			break
//		}
//	}
//
// Event types are checked against webhookd's catalog (the constants below,
// plus any the server adds with --event-types, given here with
// WithEventTypes) before anything is sent, and data must be one JSON object.
//
// For high rates, Async publishes without waiting for each ack: every event
// it accepted is either acknowledged or reported to its failure callback,
// exactly once.
//
// The connection may be anonymous (a robot on the embedded server's loopback
// listener) or carry a robot's credentials; a robot may publish to events.>
// and receive its acks on _INBOX.>, nothing else. Publisher and Async are
// safe for concurrent use.
package publisher
