package dispatcher

import (
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// HeaderListenDropped marks a message on a listener's subject that stands
// for a signed request the router could not publish (larger than the
// server's max payload): the stream counts it as dropped.
const HeaderListenDropped = "Webhookd-Listen-Dropped"

// listen hands ev to the listen subscription sub: the request a delivery
// would send (signed with sub's secret, attempt 1) is published with core
// NATS on the listener's subject, fire and forget. No job, attempt or
// record is made and nothing waits: a core publish only appends to the
// connection's buffer, so a listener never slows the real subscriptions,
// and one that is gone or not connected loses the event, as it should.
func (d *Dispatcher) listen(ev delivery.Event, sub subscriptions.Subscription, now time.Time) {
	if !sub.Active {
		return
	}
	log := d.log.With().Str("event_id", ev.ID).Str("subscription_id", sub.ID).Logger()
	signed, err := delivery.Sign(delivery.NewJob(ev, sub.ID, now), sub, now)
	if err != nil {
		log.Error().Err(err).Msg("signing for a listener failed")
		return
	}
	data, err := json.Marshal(signed)
	if err != nil {
		log.Error().Err(err).Msg("encoding for a listener failed")
		return
	}
	nc := d.deps.JS.Conn()
	m := &nats.Msg{Subject: jetstream.ListenSubject(sub.ID), Data: data}
	if int64(len(data)) > nc.MaxPayload() {
		m = &nats.Msg{Subject: m.Subject, Header: nats.Header{HeaderListenDropped: []string{"too_large"}}}
	}
	if err := nc.PublishMsg(m); err != nil {
		log.Debug().Err(err).Msg("publishing for a listener failed")
	}
}
