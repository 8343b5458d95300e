package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"golang.org/x/time/rate"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
)

const (
	maxReplay   = 10_000
	defaultRate = 10.0
	maxRate     = 1000.0
)

func deliveryView(d delivery.Delivery) client.Delivery {
	v := client.Delivery{
		ID: d.ID, EventID: d.EventID, Event: d.Event, SubscriptionID: d.SubscriptionID, URL: d.URL,
		Status: string(d.Status), Reason: d.Reason, Attempts: make([]client.Attempt, len(d.Attempts)),
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
	for i, a := range d.Attempts {
		v.Attempts[i] = client.Attempt{Attempt: a.Attempt, At: a.At, StatusCode: a.StatusCode, DurationMS: a.DurationMS,
			Reason: a.Reason, Error: a.Error, Response: a.Response, Replica: a.Replica}
	}
	return v
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "subscription", "event", "status", "since", "until", "limit", "cursor":
		default:
			return invalid("%s: unknown query parameter", k)
		}
	}
	query := delivery.Query{SubscriptionID: q.Get("subscription"), EventID: q.Get("event"), Cursor: q.Get("cursor")}
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
	ds, next, err := s.deps.Store.List(query)
	if errors.Is(err, delivery.ErrBadCursor) {
		return invalid("cursor: not a cursor this server issued for these filters")
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
func (s *Server) delivery(r *http.Request) (delivery.Delivery, error) {
	id, err := pathID(r, "delivery")
	if err != nil {
		return delivery.Delivery{}, err
	}
	d, err := s.deps.Store.Get(id)
	if errors.Is(err, delivery.ErrNotFound) {
		return d, notFound("delivery", id)
	}
	return d, err
}

func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request) error {
	d, err := s.delivery(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deliveryView(d))
	return nil
}

func (s *Server) redeliver(w http.ResponseWriter, r *http.Request) error {
	d, err := s.delivery(r)
	if err != nil {
		return err
	}
	if err := s.requeue(r.Context(), d); err != nil {
		return err
	}
	if d, err = s.delivery(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, deliveryView(d))
	return nil
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request) error {
	var req client.ReplayRequest
	if err := decode(r, 4<<10, &req); err != nil {
		return err
	}
	if req.Subscription == "" {
		return invalid("subscription: required")
	}
	if _, ok := s.deps.Subs.Get(req.Subscription); !ok {
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
	ds, err := s.collect(delivery.Query{SubscriptionID: req.Subscription, Status: delivery.StatusFailed, Since: req.Since, Until: req.Until})
	if err != nil {
		return err
	}
	res := client.ReplayResult{DryRun: req.DryRun, Items: make([]client.Delivery, 0, len(ds))}
	if !req.DryRun {
		n, err := s.requeueAll(r.Context(), ds, req.Rate)
		s.log.Info().Err(err).Str("subscription_id", req.Subscription).Int("replayed", n).Int("failed", len(ds)).
			Msg("failed deliveries replayed")
		if err != nil {
			return err // the log says how far it got; replaying again resends only what is still failed
		}
	}
	for _, d := range ds {
		res.Items = append(res.Items, deliveryView(d))
	}
	res.Count = len(res.Items)
	writeJSON(w, http.StatusOK, res)
	return nil
}

// collect returns every delivery q selects, oldest first, at most maxReplay.
func (s *Server) collect(q delivery.Query) ([]delivery.Delivery, error) {
	q.Limit = 1000
	var all []delivery.Delivery
	for {
		page, next, err := s.deps.Store.List(q)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" || len(all) >= maxReplay {
			break
		}
		q.Cursor = next
	}
	if len(all) > maxReplay {
		all = all[:maxReplay]
	}
	slices.Reverse(all)
	return all, nil
}

// requeueAll requeues ds in order at perSecond and returns how many it
// requeued before an error or ctx's end.
func (s *Server) requeueAll(ctx context.Context, ds []delivery.Delivery, perSecond float64) (int, error) {
	lim := rate.NewLimiter(rate.Limit(perSecond), 1)
	for i, d := range ds {
		if err := lim.Wait(ctx); err != nil {
			return i, fmt.Errorf("requeue stopped: %w", err)
		}
		if err := s.requeue(ctx, d); err != nil {
			return i, err
		}
	}
	return len(ds), nil
}

// requeue records d as pending and publishes its kept job again: same
// delivery id, attempts continuing from the last one.
func (s *Server) requeue(ctx context.Context, d delivery.Delivery) error {
	if !d.Status.Final() && d.Status != delivery.StatusPaused {
		return apiError(http.StatusConflict, client.CodeConflict, "delivery %s is %s: it is still queued", d.ID, d.Status)
	}
	if d.Status == delivery.StatusRejected {
		return apiError(http.StatusConflict, client.CodeConflict, "delivery %s is a rejected event (%s): there is nothing to send", d.ID, d.Reason)
	}
	sub, ok := s.deps.Subs.Get(d.SubscriptionID)
	if !ok {
		return apiError(http.StatusConflict, client.CodeConflict, "subscription %s of delivery %s was deleted", d.SubscriptionID, d.ID)
	}
	job, err := s.deps.Store.Job(d.ID)
	if errors.Is(err, delivery.ErrNotFound) {
		return apiError(http.StatusConflict, client.CodeConflict, "delivery %s has no kept job to send", d.ID)
	}
	if err != nil {
		return err
	}
	last := 0
	for _, a := range d.Attempts {
		last = max(last, a.Attempt)
	}
	job.AttemptBase = last
	now := s.now().UTC()
	if err := s.deps.Recorder.Record(ctx, delivery.Record{
		DeliveryID: d.ID, EventID: d.EventID, Event: d.Event, SubscriptionID: d.SubscriptionID, URL: sub.URL,
		Status: delivery.StatusPending, Reason: "requeued by an operator", At: now, CreatedAt: d.CreatedAt,
	}); err != nil {
		return err
	}
	body, err := json.Marshal(job)
	if err != nil {
		return err
	}
	msgID := fmt.Sprintf("%s/requeue/%d", job.ID, now.UnixNano())
	if _, err := s.deps.JS.Publish(ctx, jetstream.DeliverySubject(sub.ID), body, natsjs.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish job %s: %w", job.ID, err)
	}
	return nil
}
