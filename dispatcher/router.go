package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// publishTimeout bounds waiting for the acknowledgements of one fan-out.
const publishTimeout = 10 * time.Second

// route fans one event out into delivery jobs and settles it.
func (d *Dispatcher) route(ctx context.Context, m natsjs.Msg) {
	md, err := m.Metadata()
	if err != nil {
		d.log.Error().Err(err).Str("subject", m.Subject()).Msg("event without metadata; terminating")
		_ = m.Term()
		return
	}
	ev := delivery.Event{
		ID:        m.Headers().Get(nats.MsgIdHdr),
		Type:      jetstream.EventType(m.Subject()),
		Timestamp: md.Timestamp,
		Data:      m.Data(),
	}
	if ev.ID == "" {
		ev.ID = delivery.EventIDFromSequence(md.Sequence.Stream)
	}
	log := d.log.With().Str("event_id", ev.ID).Str("event_type", ev.Type).Logger()

	if reason := d.check(ev); reason != "" {
		rec := delivery.Record{
			DeliveryID: delivery.JobID(ev.ID, ""), EventID: ev.ID, Event: ev.Type,
			Status: delivery.StatusRejected, Reason: reason, At: d.now().UTC(), CreatedAt: ev.Timestamp,
		}
		if err := d.deps.Recorder.Record(ctx, rec); err != nil {
			log.Error().Err(err).Msg("recording rejected event failed; will retry")
			_ = m.NakWithDelay(time.Second)
			return
		}
		d.rejected.Add(1)
		log.Warn().Str("reason", reason).Msg("event.rejected")
		_ = m.Ack()
		return
	}

	subs := d.deps.Subscriptions.Match(ev.Type)
	if len(subs) == 0 {
		d.noSubscriber.Add(1)
		log.Debug().Msg("event has no subscriber")
		_ = m.Ack()
		return
	}
	if err := d.fanOut(ctx, ev, subs); err != nil {
		log.Error().Err(err).Msg("fan-out failed; will retry")
		_ = m.NakWithDelay(time.Second)
		return
	}
	d.routed.Add(1)
	if err := m.Ack(); err != nil {
		log.Warn().Err(err).Msg("ack event") // redelivered; the jobs are deduplicated
	}
}

// check returns why ev is rejected, or "".
func (d *Dispatcher) check(ev delivery.Event) string {
	if !d.catalog[ev.Type] {
		return fmt.Sprintf("unknown event type %q", ev.Type)
	}
	if err := delivery.CheckData(ev.Data); err != nil {
		return err.Error()
	}
	return ""
}

// fanOut publishes one job per subscription and waits for every
// acknowledgement.
func (d *Dispatcher) fanOut(ctx context.Context, ev delivery.Event, subs []subscriptions.Subscription) error {
	now := d.now()
	futures := make([]natsjs.PubAckFuture, 0, len(subs))
	for _, sub := range subs {
		job, err := delivery.NewJob(ev, sub.ID, now)
		if err != nil {
			return err
		}
		body, err := json.Marshal(job)
		if err != nil {
			return fmt.Errorf("encode job %s: %w", job.ID, err)
		}
		f, err := d.deps.JS.PublishAsync(jetstream.DeliverySubject(sub.ID), body, natsjs.WithMsgID(job.ID))
		if err != nil {
			return fmt.Errorf("publish job %s: %w", job.ID, err)
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(publishTimeout)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
			d.jobs.Add(1)
		case err := <-f.Err():
			return fmt.Errorf("publish job: %w", err)
		case <-timeout.C:
			return fmt.Errorf("publish job: no acknowledgement within %s", publishTimeout)
		case <-ctx.Done():
			return fmt.Errorf("publish job: %w", context.Cause(ctx))
		}
	}
	return nil
}
