package dispatcher

import (
	"context"
	"errors"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/subscriptions"
)

// recordTimeout bounds writing one audit record, also during shutdown.
const recordTimeout = 10 * time.Second

// retryAfterOwnFailure is the nak delay when the failure is ours (the audit
// trail could not be read or written): the attempt is re-run, not counted.
const retryAfterOwnFailure = time.Second

// work runs one job: attempt, record, settle.
func (d *Dispatcher) work(ctx context.Context, m natsjs.Msg) {
	job, err := delivery.DecodeJob(m.Data())
	if err != nil {
		d.log.Error().Err(err).Str("subject", m.Subject()).Msg("undecodable job; terminating")
		_ = m.TermWithReason("undecodable job")
		return
	}
	log := d.log.With().Str("delivery_id", job.ID).Str("event_id", job.EventID).
		Str("event_type", job.Event).Str("subscription_id", job.SubscriptionID).Logger()
	md, err := m.Metadata()
	if err != nil {
		log.Error().Err(err).Msg("job without metadata; will retry")
		_ = m.NakWithDelay(retryAfterOwnFailure)
		return
	}
	last, status, err := d.deps.History.LastAttempt(job.ID)
	if err != nil {
		log.Error().Err(err).Msg("reading delivery history failed; will retry")
		_ = m.NakWithDelay(retryAfterOwnFailure)
		return
	}
	// A finished delivery offered again (consumer state lost in a crash) is
	// not sent twice. A requeued job is not skipped even if this replica has
	// not yet indexed the "pending" record the requeue wrote: no attempt was
	// recorded since the requeue (last == AttemptBase).
	if status.Final() && last > job.AttemptBase {
		d.skipped.Add(1)
		log.Debug().Str("delivery_status", string(status)).Msg("job already finished; acking unsent")
		_ = m.Ack()
		return
	}
	sub, ok := d.deps.Subscriptions.Get(job.SubscriptionID)
	if !ok {
		// Not in this replica's mirror: deleted, or created on another
		// replica a moment ago. Ask the record of truth before cancelling.
		sub, err = d.deps.Subscriptions.Fetch(ctx, job.SubscriptionID)
		if errors.Is(err, subscriptions.ErrNotFound) {
			d.verdict(m, job, subscriptions.Subscription{ID: job.SubscriptionID}, delivery.StatusCancelled, "subscription deleted", log)
			return
		}
		if err != nil {
			log.Error().Err(err).Msg("reading the subscription failed; will retry")
			_ = m.NakWithDelay(retryAfterOwnFailure)
			return
		}
	}
	switch {
	case !sub.Active:
		d.verdict(m, job, sub, delivery.StatusPaused, "subscription paused", log)
		return
	case int(md.NumDelivered) > d.cfg.MaxDeliveries:
		d.verdict(m, job, sub, delivery.StatusFailed, "delivered too often without a recorded outcome (worker crashes?)", log)
		return
	}

	policy := d.deps.Policy
	n := last + 1
	// k is the attempt number within this (re)queueing, which the policy counts.
	k := max(n-job.AttemptBase, 1)
	res := d.attempt(ctx, m, job, sub, n)
	// net/http reports the cancellation's cause, not context.Canceled, so
	// any failure after the stop cancelled the work is a cut-off attempt.
	if errors.Is(context.Cause(ctx), ErrStopping) && res.Outcome != delivery.OutcomeSucceeded {
		log.Info().Int("attempt", n).Msg("attempt cut off by shutdown; returned to the queue unrecorded")
		_ = m.Nak()
		return
	}
	dec := policy.Decide(res, k)
	rec := delivery.Record{
		DeliveryID: job.ID, EventID: job.EventID, Event: job.Event, SubscriptionID: job.SubscriptionID,
		URL: sub.URL, Status: dec.Status, Reason: res.Reason, At: d.now().UTC(), CreatedAt: job.CreatedAt,
		Attempt: &delivery.AttemptInfo{
			Attempt: n, MaxAttempts: job.AttemptBase + policy.MaxAttempts(), At: res.Start.UTC(), StatusCode: res.StatusCode,
			DurationMS: res.Duration.Milliseconds(), Outcome: res.Outcome, Reason: res.Reason,
			Response: string(res.Response), NextRetryMS: dec.After.Milliseconds(),
		},
	}
	if res.Err != nil {
		rec.Attempt.Error = res.Err.Error()
	}
	if dec.Status.Final() {
		rec.Job = &job // kept for redelivery and replay
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := d.deps.Recorder.Record(rctx, rec); err != nil {
		log.Error().Err(err).Int("attempt", n).Msg("recording attempt failed; the attempt will be re-run")
		_ = m.NakWithDelay(retryAfterOwnFailure)
		return
	}
	d.attempts.Add(1)
	if err := settle(m, dec); err != nil {
		log.Warn().Err(err).Msg("settling job failed; JetStream will redeliver it")
	}
	log.Info().Int("attempt", n).Int("max_attempts", rec.Attempt.MaxAttempts).
		Str("outcome", string(res.Outcome)).Str("reason", res.Reason).Int("status_code", res.StatusCode).
		Str("delivery_status", string(dec.Status)).Int64("duration_ms", res.Duration.Milliseconds()).
		Int64("next_retry_ms", dec.After.Milliseconds()).Msg("delivery.attempted")
}

// attempt runs the HTTP attempt while telling JetStream the job is in
// progress, so a slow receiver causes no redelivery.
func (d *Dispatcher) attempt(ctx context.Context, m natsjs.Msg, job delivery.Job, sub subscriptions.Subscription, n int) delivery.Result {
	_ = m.InProgress()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(d.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return d.deps.Attempter.Attempt(ctx, job, sub, n)
}

// verdict records a status reached without an attempt (cancelled, paused,
// failed by the safety net), keeps the job for replay and removes it from
// the queue.
func (d *Dispatcher) verdict(m natsjs.Msg, job delivery.Job, sub subscriptions.Subscription, status delivery.Status, reason string, log zerolog.Logger) {
	rec := delivery.Record{
		DeliveryID: job.ID, EventID: job.EventID, Event: job.Event, SubscriptionID: job.SubscriptionID,
		URL: sub.URL, Status: status, Reason: reason, At: d.now().UTC(), CreatedAt: job.CreatedAt, Job: &job,
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if err := d.deps.Recorder.Record(ctx, rec); err != nil {
		log.Error().Err(err).Str("delivery_status", string(status)).Msg("recording verdict failed; will retry")
		_ = m.NakWithDelay(retryAfterOwnFailure)
		return
	}
	log.Info().Str("delivery_status", string(status)).Str("reason", reason).Msg("delivery.settled")
	_ = m.TermWithReason(reason)
}

// settle is the one place a job leaves the queue or is scheduled again.
func settle(m natsjs.Msg, dec delivery.Decision) error {
	switch dec.Status {
	case delivery.StatusSucceeded:
		return m.Ack()
	case delivery.StatusRetrying:
		return m.NakWithDelay(dec.After)
	default: // failed: the last attempt is recorded, with the job for replay
		return m.TermWithReason("max attempts reached")
	}
}
