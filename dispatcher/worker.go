package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// recordTimeout bounds writing one audit record, also during shutdown.
const recordTimeout = 10 * time.Second

// retryAfterOwnFailure is the nak delay when the failure is ours (the audit
// trail or the next job could not be written): the attempt is re-run, not
// counted.
const retryAfterOwnFailure = time.Second

// Operational event types webhookd publishes itself (events.webhook.*).
const (
	EventSubscriptionDisabled = "webhook.subscription_disabled"
	EventDeliveryExhausted    = "webhook.delivery_exhausted"
)

// action is how a job message is settled.
type action int

const (
	ack   action = iota // done: the delivery succeeded or its next attempt is queued
	nak                 // back to the queue after delay, nothing counted
	term                // leaves the queue: failed, held or cancelled, recorded with the job kept
	waits               // waits in memory for a slot of its busy endpoint: settled later
)

// settlement is how one job leaves a worker. Every path of the worker ends
// in settle, which applies it in a fixed order: record, queue the next
// attempt, settle the message, log.
type settlement struct {
	rec   *history.Record // recorded first; nil records nothing
	keep  *delivery.Job   // kept beside the record, for a later requeue
	next  *delivery.Job   // the next attempt, queued after the record
	act   action
	delay time.Duration // with nak
	why   string        // with term: the reason JetStream keeps
	log   func(*zerolog.Event) *zerolog.Event
	msg   string // log message; "" logs nothing
	level zerolog.Level
	took  time.Duration // with an attempt record: the attempt's duration
	// alive ends the job's keep-alive once it is settled: a job whose
	// record waits for its batch must not be redelivered meanwhile.
	alive func()
}

// work runs one job: decide whether it may be attempted now, attempt,
// decide what follows, settle; then run the jobs that waited for the
// endpoint slot this attempt freed.
func (d *Dispatcher) work(ctx context.Context, m natsjs.Msg) {
	pulled := time.Now()
	job, err := delivery.DecodeJob(m.Headers(), m.Data())
	if err != nil {
		d.log.Error().Err(err).Str("subject", m.Subject()).Msg("undecodable job; terminating")
		d.funnel.term(m, "undecodable job")
		return
	}
	// A job in DELIVERIES goes the unordered path, and so do its retries:
	// a requeue of a kept ordered job (redeliver, replay) does not wait
	// for its key.
	job.Ordered = false
	log := d.log.With().Str("delivery_id", job.ID).Str("event_id", job.EventID).
		Str("event_type", job.Event).Str("subscription_id", job.SubscriptionID).Int("attempt", job.Attempt).Logger()
	c := carrier{m: m}
	s, next := d.decide(ctx, c, job, pulled, log)
	d.settle(ctx, c, job, s, log)
	for next != nil {
		next = next()
	}
}

// decide runs the job's attempt if it may run now, and returns how the job
// is settled, and the job that waited for the slot the attempt freed.
func (d *Dispatcher) decide(ctx context.Context, c carrier, job delivery.Job, pulled time.Time, log zerolog.Logger) (settlement, endpoint.Handoff) {
	m := c.m
	if wait := job.NotBefore.Sub(d.now()); wait > 0 {
		return settlement{act: nak, delay: wait}, nil // a retry, published ahead of its time
	}
	sub, s, ok := d.admissible(ctx, job)
	if !ok {
		return s, nil
	}
	var tries uint64
	if md, err := m.Metadata(); err == nil {
		tries = md.NumDelivered
	}
	slot, wait, queued := d.deps.Endpoints.Acquire(endpointOf(sub), tries, &endpoint.Queued{
		// Within a third of the AckWait that runs since the job was pulled,
		// so no InProgress need keep it: a fast endpoint's backlog waits
		// here instead of going back to JetStream and forth.
		MaxWait: d.cfg.AckWait / 3,
		Bytes:   len(m.Data()),
		Run: func(slot *endpoint.Slot) endpoint.Handoff {
			return d.runQueued(ctx, c, job, pulled, slot, log)
		},
		Expire: func(wait time.Duration) {
			d.deferred.Add(1)
			d.funnel.nak(m, wait)
		},
	})
	switch {
	case queued:
		return settlement{act: waits}, nil
	case slot == nil && d.deps.Endpoints.Backlogged(sub.ID):
		// Its held-back jobs would fill the consumer's shared pending
		// limit: disable it, so they leave the queue (held, kept).
		d.disable(ctx, sub, endpoint.DisabledBacklog, delivery.Result{}, log)
		sub.Active, sub.DisabledReason = false, endpoint.DisabledBacklog
		d.held.Add(1)
		return d.verdict(job, sub, delivery.StatusPaused, holdReason(sub), &job), nil
	case slot == nil:
		d.deferred.Add(1)
		return settlement{act: nak, delay: wait}, nil
	}
	return d.run(ctx, c, job, pulled, sub, slot, log)
}

// runQueued runs a job that waited in memory, with the slot handed to it,
// settles it and returns the next job that waited.
func (d *Dispatcher) runQueued(ctx context.Context, c carrier, job delivery.Job, pulled time.Time, slot *endpoint.Slot, log zerolog.Logger) endpoint.Handoff {
	settling := false
	defer d.settleOnPanic(c, &settling, log)
	if c.fan == nil && time.Since(pulled) > d.cfg.AckWait/6 {
		// It waited a while, and the settling before the handoff may have
		// taken more: keep it ours before anything else. (An event's
		// branch is kept by the event's own keep-alive.)
		d.funnel.progress(c.m)
		pulled = time.Now()
	}
	sub, s, ok := d.admissible(ctx, job) // the subscription may have changed meanwhile
	var next endpoint.Handoff
	if ok {
		s, next = d.run(ctx, c, job, pulled, sub, slot, log)
	} else {
		next = slot.Cancel()
	}
	settling = true
	d.settle(ctx, c, job, s, log)
	return next
}

// admissible returns the job's subscription if its jobs may be attempted,
// and otherwise how to settle the job: cancelled (deleted), held (paused or
// disabled), or nak'ed when the subscription cannot be read.
func (d *Dispatcher) admissible(ctx context.Context, job delivery.Job) (subscriptions.Subscription, settlement, bool) {
	sub, err := d.subscription(ctx, job.SubscriptionID)
	switch {
	case errors.Is(err, subscriptions.ErrNotFound):
		return sub, d.verdict(job, subscriptions.Subscription{ID: job.SubscriptionID}, delivery.StatusCancelled, "subscription deleted", nil), false
	case err != nil:
		return sub, settlement{act: nak, delay: retryAfterOwnFailure, msg: "reading the subscription failed; will retry",
			level: zerolog.ErrorLevel, log: func(e *zerolog.Event) *zerolog.Event { return e.Err(err) }}, false
	case !sub.Active:
		d.held.Add(1)
		return sub, d.verdict(job, sub, delivery.StatusPaused, holdReason(sub), &job), false
	case d.deps.Endpoints.Gone(endpointOf(sub)):
		// Answered 410 a moment ago; the disabling is on its way.
		sub.DisabledReason = endpoint.DisabledGone
		d.held.Add(1)
		return sub, d.verdict(job, sub, delivery.StatusPaused, holdReason(sub), &job), false
	}
	return sub, settlement{}, true
}

// run makes the attempt in slot and returns its settlement, and the job
// that waited for the slot.
func (d *Dispatcher) run(ctx context.Context, c carrier, job delivery.Job, pulled time.Time, sub subscriptions.Subscription, slot *endpoint.Slot, log zerolog.Logger) (settlement, endpoint.Handoff) {
	res, alive := d.attempt(ctx, c, job, pulled, sub)
	// net/http reports the cancellation's cause, not context.Canceled, so
	// any failure after the stop cancelled the work is a cut-off attempt.
	if errors.Is(context.Cause(ctx), ErrStopping) && res.Outcome != delivery.OutcomeSucceeded {
		alive()
		return settlement{act: nak, msg: "attempt cut off by shutdown; returned to the queue unrecorded", level: zerolog.InfoLevel}, slot.Cancel()
	}
	var health endpoint.Verdict
	var next endpoint.Handoff
	if res.Reason == delivery.ReasonTransform {
		next = slot.Cancel() // no request was sent: nothing to say of the endpoint
	} else {
		health, next = slot.Done(res)
	}
	if health.FailingSinceChanged {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		if err := d.deps.Subscriptions.SetFailingSince(fctx, sub.ID, health.FailingSince); err != nil {
			log.Warn().Err(err).Msg("recording when the endpoint began failing")
		}
		cancel()
	}
	if health.Disable != "" {
		d.disable(ctx, sub, health.Disable, res, log)
		sub.Active, sub.DisabledReason = false, health.Disable
	}
	s := d.outcome(job, sub, res)
	s.alive = alive
	return s, next
}

// outcome turns an attempt's result into a settlement: succeeded (ack),
// retrying (queue the next attempt, ack this one), held (the subscription
// was just disabled) or failed after the last attempt (keep the job, term).
func (d *Dispatcher) outcome(job delivery.Job, sub subscriptions.Subscription, res delivery.Result) settlement {
	policy := d.policy(sub) // the subscription's own, or the default
	dec := policy.Decide(res, job.Attempt-job.Base)
	// Disabled by this attempt: the next attempt is held. An ordered
	// one's next job holds its key until the subscription is re-enabled.
	if dec.Status == delivery.StatusRetrying && !sub.Active && !job.Ordered {
		dec = delivery.Decision{Status: delivery.StatusPaused}
	}
	rec := d.record(job, sub, dec.Status, res.Reason)
	rec.Attempt = history.NewAttemptInfo(res, job.Attempt, job.Base+policy.MaxAttempts(), sub.URL)
	rec.Attempt.NextRetryMS = dec.After.Milliseconds()
	s := settlement{rec: &rec, msg: "delivery.attempted", level: zerolog.InfoLevel, took: res.Duration,
		log: func(e *zerolog.Event) *zerolog.Event {
			return e.Int("max_attempts", rec.Attempt.MaxAttempts).Str("outcome", string(res.Outcome)).
				Str("reason", res.Reason).Int("status_code", res.StatusCode).Str("delivery_status", string(dec.Status)).
				Int64("duration_ms", res.Duration.Milliseconds()).Int64("next_retry_ms", dec.After.Milliseconds())
		}}
	switch dec.Status {
	case delivery.StatusSucceeded:
		s.act = ack
	case delivery.StatusRetrying:
		next := job.Retry(d.now().Add(dec.After))
		s.next, s.act = &next, ack
	case delivery.StatusPaused: // held: the attempt was made, the next one waits for re-enabling
		next := job.Retry(time.Time{})
		rec.Reason = holdReason(sub)
		s.keep, s.act, s.why = &next, term, rec.Reason
	default:
		s.keep, s.act, s.why, s.level = &job, term, "max attempts reached", zerolog.WarnLevel
		attempted, host := s.log, delivery.Host(sub.URL) // the host only: a path or query may carry tokens
		s.log = func(e *zerolog.Event) *zerolog.Event { return attempted(e).Str("host", host) }
	}
	return s
}

// verdict settles a job without an attempt: held for a paused or disabled
// subscription (the job kept for resuming), or cancelled for a deleted one.
func (d *Dispatcher) verdict(job delivery.Job, sub subscriptions.Subscription, status delivery.Status, reason string, keep *delivery.Job) settlement {
	rec := d.record(job, sub, status, reason)
	return settlement{rec: &rec, keep: keep, act: term, why: reason, msg: "delivery.settled", level: zerolog.InfoLevel,
		log: func(e *zerolog.Event) *zerolog.Event {
			return e.Str("delivery_status", string(status)).Str("reason", reason)
		}}
}

func (d *Dispatcher) record(job delivery.Job, sub subscriptions.Subscription, status delivery.Status, reason string) history.Record {
	return history.Record{
		DeliveryID: job.ID, EventID: job.EventID, Event: job.Event, SubscriptionID: job.SubscriptionID,
		URL: sub.URL, Status: status, Reason: reason, At: d.now().UTC(), CreatedAt: job.CreatedAt,
	}
}

// carrier is what a settlement settles: a job message pulled from
// DELIVERIES (fan nil), or one branch of an event's fan-out, a first
// attempt made on the fast path (m is then the event's message, kept alive
// by the fan-out, and settled by it once every branch is).
type carrier struct {
	m   natsjs.Msg
	fan *fanout
	// ord is the entry of an ordered job, settled by its partition
	// (settledOrdered); ordNext is the attempt whose job was queued.
	ord     *entry
	ordNext int
}

// settle applies s: record (with the kept job), then queue the next
// attempt, then ack, nak or term through the funnel, then log. The record
// joins the recorder's next AUDIT batch, and the job is settled by a
// settler once the batch is confirmed, so a worker waits for its HTTP
// attempt, not for the stream. If the record or the next job cannot be
// written, the job is nak'ed (a branch spilled) and its attempt re-run
// later; it is never acked without its record.
func (d *Dispatcher) settle(ctx context.Context, c carrier, job delivery.Job, s settlement, log zerolog.Logger) {
	if s.act == waits {
		return
	}
	p := &pendingSettle{ctx: ctx, c: c, job: job, s: s, log: log}
	if s.rec == nil {
		d.settled(p)
		return
	}
	d.outstanding <- struct{}{} // waits while the records outstanding are at their bound
	d.pending.Add(1)
	d.deps.Recorder.Record(*s.rec, s.keep, func(err error) {
		p.err = err
		d.settling <- p // never blocks: it holds a place for every record outstanding
	})
}

// pendingSettle is a settlement whose record is on its way to AUDIT; err
// is the record's fate.
type pendingSettle struct {
	ctx context.Context
	c   carrier
	job delivery.Job
	s   settlement
	log zerolog.Logger
	err error
}

// settled finishes settling once the record (if any) is confirmed: queue
// the next attempt, then ack, nak or term, then log.
func (d *Dispatcher) settled(p *pendingSettle) {
	if p.s.alive != nil {
		defer p.s.alive()
	}
	s, log := p.s, p.log
	rctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), recordTimeout)
	defer cancel()
	if p.err != nil {
		log.Error().Err(p.err).Msg("recording failed; the attempt will run again")
		d.apply(rctx, p.c, p.job, nak, retryAfterOwnFailure, "", log)
		return
	}
	if s.rec != nil {
		if s.rec.Attempt != nil {
			d.attempts.Add(1)
			d.deps.Observer.Attempt(s.rec.SubscriptionID, s.rec.Attempt.Reason, s.took)
		}
		d.deps.Observer.Finished(s.rec.SubscriptionID, s.rec.Status)
	}
	if s.next != nil {
		if err := d.publishJobs(rctx, []delivery.Job{*s.next}); err != nil {
			log.Error().Err(err).Msg("queueing the next attempt failed; the attempt will run again")
			d.apply(rctx, p.c, p.job, nak, retryAfterOwnFailure, "", log)
			return
		}
		p.c.ordNext = s.next.Attempt
	}
	d.apply(rctx, p.c, p.job, s.act, s.delay, s.why, log)
	if s.msg != "" {
		ev := log.WithLevel(s.level)
		if s.log != nil {
			ev = s.log(ev)
		}
		ev.Msg(s.msg)
	}
	if s.rec != nil && s.rec.Status == delivery.StatusFailed && s.rec.Attempt != nil {
		d.announceExhausted(rctx, p.job, *s.rec)
	}
}

// apply settles c as act says. A job message goes through the funnel; a
// branch of an event is done with ack and term, and spilled to DELIVERIES
// (due after delay) with nak.
func (d *Dispatcher) apply(ctx context.Context, c carrier, job delivery.Job, act action, delay time.Duration, why string, log zerolog.Logger) {
	if c.ord != nil {
		d.settledOrdered(c.ord, act, delay, why, c.ordNext)
		return
	}
	if c.fan != nil {
		if act == nak {
			d.spillBranch(ctx, c.fan, job, delay, log)
			return
		}
		d.branchDone(c.fan, true)
		return
	}
	switch act {
	case ack:
		d.funnel.ack(c.m)
	case nak:
		d.funnel.nak(c.m, delay)
	case term:
		d.funnel.term(c.m, why)
	}
}

// subscription returns the job's subscription from this replica's mirror,
// or from the record of truth when the mirror lacks it (created on another
// replica a moment ago) or shows it inactive (resumed a moment ago: a job
// held on stale news would be stranded).
func (d *Dispatcher) subscription(ctx context.Context, id string) (subscriptions.Subscription, error) {
	sub, ok := d.deps.Subscriptions.Get(id)
	if ok && sub.Active {
		return sub, nil
	}
	return d.deps.Subscriptions.Fetch(ctx, id)
}

// endpointOf describes sub's endpoint to the health tracker.
func endpointOf(sub subscriptions.Subscription) endpoint.Endpoint {
	return endpoint.Endpoint{SubscriptionID: sub.ID, URL: sub.URL, MaxInFlight: sub.MaxInFlight, FailingSince: sub.FailingSince, Updated: sub.UpdatedAt}
}

// holdReason says why an inactive subscription's job is held.
func holdReason(sub subscriptions.Subscription) string {
	if sub.DisabledReason != "" {
		return "subscription disabled: " + sub.DisabledReason
	}
	return "subscription paused"
}

// attempt runs the HTTP attempt while telling JetStream the job is in
// progress every AckWait/3 since it was pulled (or last kept in progress),
// so a slow receiver causes no redelivery; the keep-alive goes on until
// alive is called, once the job is settled. Most attempts and settlements
// take milliseconds and send none. A branch of an event is kept alive by
// its fan-out (alive does nothing).
func (d *Dispatcher) attempt(ctx context.Context, c carrier, job delivery.Job, pulled time.Time, sub subscriptions.Subscription) (res delivery.Result, alive func()) {
	alive = func() {}
	if c.fan == nil {
		every := d.cfg.AckWait / 3
		first := time.Until(pulled.Add(every))
		if first <= 0 { // it waited in memory for a slot that long
			d.funnel.progress(c.m)
			first = every
		}
		alive = d.funnel.keepAlive(c.m, first, every)
	}
	return d.deps.Attempter.Attempt(ctx, job, sub), alive
}

// settleOnPanic, deferred by the code that attempts and settles c, turns a
// panic (a bug of ours, set off by one delivery) into a failure of c alone
// if it came before the settlement began: a branch fails its fan-out (the
// event is routed again), a job is nak'ed for panicDelay. The process and
// the other deliveries go on.
func (d *Dispatcher) settleOnPanic(c carrier, settling *bool, log zerolog.Logger) {
	p := recover()
	if p == nil {
		return
	}
	log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("handling a delivery panicked; it will run again")
	if *settling {
		return
	}
	if c.fan != nil {
		d.branchDone(c.fan, false)
		return
	}
	if c.ord != nil {
		d.settledOrdered(c.ord, nak, panicDelay, "", 0)
		return
	}
	d.funnel.nak(c.m, panicDelay)
}

// disable disables sub for reason and announces it. Its held jobs wait for
// an operator to re-enable it (resume) and replay.
func (d *Dispatcher) disable(ctx context.Context, sub subscriptions.Subscription, reason string, res delivery.Result, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	now := d.now().UTC()
	_, changed, err := d.deps.Subscriptions.Disable(ctx, sub.ID, reason, now)
	if err != nil {
		log.Error().Err(err).Str("reason", reason).Msg("disabling the subscription failed")
		return
	}
	if !changed {
		return
	}
	h := d.deps.Endpoints.Health(sub.ID)
	log.Warn().Str("reason", reason).Str("host", delivery.Host(sub.URL)).Int("status_code", res.StatusCode).
		Int("consecutive_failures", h.ConsecutiveFailures).Msg("subscription.disabled")
	d.announce(ctx, EventSubscriptionDisabled, sub.ID+"/disabled/"+now.Format(time.RFC3339Nano), map[string]any{
		"subscription_id": sub.ID, "reason": reason, "host": delivery.Host(sub.URL), "disabled_at": now,
		"last_status_code": res.StatusCode, "consecutive_failures": h.ConsecutiveFailures,
	}, log)
}

// announceExhausted publishes webhook.delivery_exhausted for a delivery
// that failed its last attempt, unless it was itself an operational event:
// a receiver of those that fails must not feed itself a new one each time.
func (d *Dispatcher) announceExhausted(ctx context.Context, job delivery.Job, rec history.Record) {
	if strings.HasPrefix(job.Event, "webhook.") {
		return
	}
	d.announce(ctx, EventDeliveryExhausted, job.ID+"/exhausted/"+strconv.Itoa(job.Attempt), map[string]any{
		"delivery_id": job.ID, "subscription_id": job.SubscriptionID, "event_id": job.EventID, "event": job.Event,
		"attempts": rec.Attempt.Attempt, "last_reason": rec.Attempt.Reason, "last_status_code": rec.Attempt.StatusCode,
		"host": delivery.Host(rec.URL),
	}, d.log)
}

// announce publishes an operational event to events.<type>, deduplicated by
// msgID. It is best effort: the audit trail and the log already hold the
// facts.
func (d *Dispatcher) announce(ctx context.Context, eventType, msgID string, data map[string]any, log zerolog.Logger) {
	b, err := json.Marshal(data)
	if err == nil {
		_, err = d.deps.JS.Publish(ctx, jetstream.EventSubject(eventType), b, natsjs.WithMsgID(msgID))
	}
	if err != nil {
		log.Warn().Err(err).Str("event_type", eventType).Msg("publishing operational event failed")
	}
}
