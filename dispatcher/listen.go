package dispatcher

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// HeaderListenDropped marks a message on a listener's subject that stands
// for a signed request the dispatcher did not publish (its listen queue was
// full, or the request is larger than the server's max payload): the
// stream counts it as dropped.
const HeaderListenDropped = "Webhookd-Listen-Dropped"

// listenQueue bounds the events waiting for the listen publisher.
const listenQueue = 1024

// heard is one event for one listen subscription, waiting to be signed
// and published.
type heard struct {
	ev  delivery.Event
	sub subscriptions.Subscription
	at  time.Time
}

// listen hands ev to the listen subscription sub: no job, attempt or
// record is made. The router only queues it for the listen publisher
// (publishListens), without waiting: when the queue is full the listener
// is told of a drop instead. So signing and encoding for listeners happen
// beside routing, never in its way, and a listener never slows the real
// subscriptions.
func (d *Dispatcher) listen(ev delivery.Event, sub subscriptions.Subscription, now time.Time) {
	if !sub.Active {
		return
	}
	select {
	case d.listens <- heard{ev, sub, now}:
	default:
		d.publishListen(droppedFor(sub.ID))
	}
}

// publishListens signs and publishes the queued events until ctx is done:
// the request a delivery would send (signed with the listen subscription's
// secret, attempt 1), with core NATS on the listener's subject, fire and
// forget. A core publish only appends to the connection's buffer; a
// listener that is gone or not connected loses the event, as it should.
func (d *Dispatcher) publishListens(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-d.listens:
			d.publishListen(d.signed(h))
		}
	}
}

// signed returns the message of h for its listener.
func (d *Dispatcher) signed(h heard) *nats.Msg {
	log := d.log.With().Str("event_id", h.ev.ID).Str("subscription_id", h.sub.ID).Logger()
	s, err := delivery.Sign(delivery.NewJob(h.ev, h.sub.ID, h.at), h.sub, h.at)
	if err != nil {
		log.Error().Err(err).Msg("signing for a listener failed")
		return droppedFor(h.sub.ID)
	}
	data, err := json.Marshal(s)
	if err != nil {
		log.Error().Err(err).Msg("encoding for a listener failed")
		return droppedFor(h.sub.ID)
	}
	if int64(len(data)) > d.deps.JS.Conn().MaxPayload() {
		return droppedFor(h.sub.ID)
	}
	return &nats.Msg{Subject: jetstream.ListenSubject(h.sub.ID), Data: data}
}

// droppedFor is the message that tells listener subID of one drop.
func droppedFor(subID string) *nats.Msg {
	return &nats.Msg{Subject: jetstream.ListenSubject(subID), Header: nats.Header{HeaderListenDropped: []string{"1"}}}
}

func (d *Dispatcher) publishListen(m *nats.Msg) {
	if err := d.deps.JS.Conn().PublishMsg(m); err != nil {
		d.log.Debug().Err(err).Str("subject", m.Subject).Msg("publishing for a listener failed")
	}
}
