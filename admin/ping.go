package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/subscriptions"
)

// EventPing is the type of the test event POST /v1/subscriptions/{id}/ping
// sends. It is in the catalog, so receivers can recognise it, but only the
// ping command sends it: it is never published or routed.
const EventPing = "webhook.ping"

// PingReason is the reason a ping's audit record carries: the delivery
// list shows it as a test, and it is never retried or replayed (no job is
// kept for it).
const PingReason = "test ping: sent once, never retried"

// Pinger makes one HTTP attempt, as delivery.Deliverer does: signed with
// the subscription's live secrets, with its custom headers and timeout,
// through the outbound guard.
type Pinger interface {
	Attempt(ctx context.Context, job delivery.Job, sub subscriptions.Subscription) delivery.Result
}

// ping sends one signed webhook.ping event to the subscription's endpoint,
// whatever its state (paused, disabled, breaker open: a ping is how an
// operator checks it), records the attempt in the audit trail as a test
// and answers with the outcome.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "subscription")
	if err != nil {
		return err
	}
	if s.deps.Pinger == nil || s.deps.Recorder == nil {
		return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "ping is not available on this replica")
	}
	sub, err := s.deps.Subs.Fetch(r.Context(), id) // the record of truth: fresh secrets
	if errors.Is(err, subscriptions.ErrNotFound) || err == nil && !visible(r, sub) {
		return notFound("subscription", id)
	}
	if err != nil {
		return err
	}
	if sub.Listen {
		return listenerReadOnly(id)
	}
	now := s.now().UTC()
	data, err := json.Marshal(map[string]string{
		"subscription_id": sub.ID,
		"message":         "webhookd test ping, sent by an operator: answer 2xx to confirm the endpoint works",
	})
	if err != nil {
		return err
	}
	job := delivery.Job{
		ID: uuid.NewString(), EventID: uuid.NewString(), Event: EventPing, EventTime: now,
		SubscriptionID: sub.ID, CreatedAt: now, Attempt: 1, Data: data,
	}
	// The attempt outlives a client that hangs up, so its record is written.
	ctx := context.WithoutCancel(r.Context())
	res := s.deps.Pinger.Attempt(ctx, job, sub)

	status := delivery.StatusFailed
	if res.Outcome == delivery.OutcomeSucceeded {
		status = delivery.StatusSucceeded
	}
	rec := history.Record{
		DeliveryID: job.ID, EventID: job.EventID, Event: job.Event, SubscriptionID: sub.ID, URL: sub.URL,
		Status: status, Reason: PingReason, At: s.now().UTC(), CreatedAt: now,
		Attempt: history.NewAttemptInfo(res, 1, 1, sub.URL),
	}
	out := client.PingResult{
		DeliveryID: job.ID, EventID: job.EventID, SubscriptionID: sub.ID, URL: sub.URL, Outcome: string(res.Outcome),
		Reason: res.Reason, StatusCode: res.StatusCode, DurationMS: res.Duration.Milliseconds(), Response: string(res.Response),
	}
	if res.Err != nil {
		out.Error = res.Err.Error()
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.deps.Recorder.Publish(rctx, rec, nil); err != nil {
		return err
	}
	s.log.Info().Str("subscription_id", sub.ID).Str("delivery_id", job.ID).Str("outcome", string(res.Outcome)).
		Str("reason", res.Reason).Int("status_code", res.StatusCode).Int64("duration_ms", res.Duration.Milliseconds()).
		Msg("subscription pinged")
	writeJSON(w, http.StatusOK, out)
	return nil
}
