package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/jetstream"
)

const (
	defaultRate = 10.0
	maxRate     = 1000.0
	// maxFilter bounds a list filter's value (ids and event types are far shorter).
	maxFilter = 1024
)

func deliveryView(d history.Delivery) client.Delivery {
	v := client.Delivery{
		ID: d.ID, EventID: d.EventID, Event: d.Event, SubscriptionID: d.SubscriptionID, URL: d.URL,
		Status: string(d.Status), Reason: d.Reason, Attempts: make([]client.Attempt, len(d.Attempts)),
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
	for i, a := range d.Attempts {
		v.Attempts[i] = client.Attempt{Attempt: a.Attempt, At: a.At, StatusCode: a.StatusCode, DurationMS: a.DurationMS,
			Reason: a.Reason, Error: a.Error, Response: a.Response, Replica: a.Replica, URL: a.URL}
	}
	return v
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "subscription", "event", "type", "status", "since", "until", "limit", "cursor":
		default:
			return invalid("%s: unknown query parameter", k)
		}
	}
	query := history.Query{SubscriptionID: q.Get("subscription"), EventID: q.Get("event"), EventType: q.Get("type"), Cursor: q.Get("cursor")}
	for _, k := range []string{"subscription", "event", "type"} {
		if len(q.Get(k)) > maxFilter {
			return invalid("%s: at most %d bytes", k, maxFilter)
		}
	}
	if v := q.Get("status"); v != "" {
		st, ok := delivery.ParseStatus(v)
		if !ok {
			return invalid("status: %q is not one of pending, retrying, succeeded, failed, paused, cancelled, rejected", v)
		}
		query.Status = st
	}
	var err error
	if query.Since, err = parseTime("since", q.Get("since")); err != nil {
		return err
	}
	if query.Until, err = parseTime("until", q.Get("until")); err != nil {
		return err
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return invalid("limit: %q must be a number from 1 to 1000", v)
		}
		query.Limit = n
	}
	ds, next, err := s.listVisible(r, query)
	if errors.Is(err, history.ErrBadCursor) {
		return invalid("cursor: %s", strings.TrimPrefix(err.Error(), history.ErrBadCursor.Error()+": "))
	}
	if err != nil {
		return err
	}
	items := make([]client.Delivery, len(ds))
	for i, d := range ds {
		items[i] = deliveryView(d)
	}
	writeJSON(w, http.StatusOK, client.List[client.Delivery]{Items: items, NextCursor: next})
	return nil
}

// delivery returns the delivery named by the path, or a 404.
func (s *Server) delivery(r *http.Request) (history.Delivery, error) {
	id, err := pathID(r, "delivery")
	if err != nil {
		return history.Delivery{}, err
	}
	d, err := s.deps.Store.Get(id)
	if errors.Is(err, history.ErrNotFound) || err == nil && !s.ownsSubscription(r, d.SubscriptionID) {
		return history.Delivery{}, notFound("delivery", id)
	}
	return d, err
}

func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request) error {
	d, err := s.delivery(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.detailView(r.Context(), d))
	return nil
}

// detailView is deliveryView with what the delivery went through: each
// attempt's request headers (derived, signatures redacted) and the payload
// from the job kept in AUDIT, when there is one.
func (s *Server) detailView(ctx context.Context, d history.Delivery) client.Delivery {
	v := deliveryView(d)
	for i := range v.Attempts {
		v.Attempts[i].RequestHeaders = history.RequestHeaders(d, d.Attempts[i])
	}
	v.Payload, v.PayloadNote = s.payload(ctx, d)
	return v
}

// payload returns the body POSTed for d, read from its job kept in AUDIT
// (a delivery that failed or was held), else from the event EVENTS keeps
// for --event-retention, or a note that says why there is none. With a
// transform, the body is what the subscription's current one gives: what
// a redelivery would send.
func (s *Server) payload(ctx context.Context, d history.Delivery) (json.RawMessage, string) {
	if d.Status == delivery.StatusRejected {
		return nil, "a rejected event is not delivered; its reason says why"
	}
	seq, err := s.deps.Store.JobSeq(d.ID)
	if errors.Is(err, history.ErrNotFound) {
		return s.loggedPayload(ctx, d)
	}
	if err != nil {
		return nil, "the kept job could not be read: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	str, err := s.deps.JS.Stream(ctx, jetstream.StreamAudit)
	if err != nil {
		return nil, "the kept job could not be read: " + err.Error()
	}
	raw, err := str.GetMsg(ctx, seq)
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return s.loggedPayload(ctx, d) // the kept job has left AUDIT (retention or size limit)
	}
	if err != nil {
		return nil, "the kept job could not be read: " + err.Error()
	}
	job, err := delivery.DecodeJob(raw.Header, raw.Data)
	if err != nil || job.ID != d.ID {
		return nil, fmt.Sprintf("AUDIT sequence %d holds no job of this delivery", seq)
	}
	return s.sentBody(d.SubscriptionID, job)
}

func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) error {
	d, err := s.delivery(r)
	if err != nil {
		return err
	}
	if err := s.deps.Queue.Requeue(r.Context(), d.ID); err != nil {
		return requeueError(err)
	}
	if d, err = s.delivery(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, s.detailView(r.Context(), d))
	return nil
}

// requeueError maps a requeue conflict to a 409.
func requeueError(err error) error {
	if errors.Is(err, dispatcher.ErrConflict) {
		return apiError(http.StatusConflict, client.CodeConflict, "%s", strings.TrimPrefix(err.Error(), dispatcher.ErrConflict.Error()+": "))
	}
	return err
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request) error {
	var req client.ReplayRequest
	if err := decode(r, 4<<10, &req); err != nil {
		return err
	}
	if req.Subscription == "" {
		return invalid("subscription: required")
	}
	if sub, ok := s.deps.Subs.Get(req.Subscription); !ok || !visible(r, sub) {
		return notFound("subscription", req.Subscription)
	}
	if req.Since.IsZero() {
		return invalid("since: required (RFC 3339 time)")
	}
	if req.Rate == 0 {
		req.Rate = defaultRate
	}
	if req.Rate < 0 || req.Rate > maxRate {
		return invalid("rate: %g must be from 0 (default %g) to %g per second", req.Rate, defaultRate, maxRate)
	}
	q := history.Query{SubscriptionID: req.Subscription, Status: delivery.StatusFailed, Since: req.Since, Until: req.Until}
	if req.DryRun { // synchronous: it only reads the history index
		res := client.ReplayResult{DryRun: true, Items: []client.Delivery{}}
		err := s.deps.Queue.Each(q, func(d history.Delivery) error {
			res.Items = append(res.Items, deliveryView(d))
			return nil
		})
		if err != nil {
			return err
		}
		res.Count = len(res.Items)
		writeJSON(w, http.StatusOK, res)
		return nil
	}
	st, joined, err := s.deps.Queue.StartReplay(r.Context(), q, req.Rate)
	switch {
	case errors.Is(err, dispatcher.ErrQueueStopped):
		return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "webhookd is stopping; replay on another replica")
	case err != nil:
		return requeueError(err)
	}
	if !joined {
		s.log.Info().Str("replay_id", st.ID).Str("subscription_id", req.Subscription).Int("planned", st.Planned).
			Float64("rate", req.Rate).Msg("replay started")
	}
	v := s.replayView(st)
	v.Joined = joined
	writeJSON(w, http.StatusAccepted, v)
	return nil
}

func (s *Server) replayView(st dispatcher.ReplayStatus) client.Replay {
	return client.Replay{
		ID: st.ID, Replica: s.cfg.Replica, Subscription: st.SubscriptionID, Since: st.Since, Until: st.Until,
		Rate: st.Rate, Planned: st.Planned, Sent: st.Sent, Skipped: st.Skipped, Failed: st.Failed,
		Done: st.Done, Error: st.Err, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
	}
}

func (s *Server) getReplay(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "replay")
	if err != nil {
		return err
	}
	st, ok := s.deps.Queue.Replay(id)
	if !ok || !s.ownsSubscription(r, st.SubscriptionID) {
		return apiError(http.StatusNotFound, client.CodeNotFound,
			"replay %q not found on replica %s: a replay is known only to the replica that runs it, and not after its restart", id, s.cfg.Replica)
	}
	writeJSON(w, http.StatusOK, s.replayView(st))
	return nil
}
