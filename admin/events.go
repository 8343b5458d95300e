package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/internal/tracing"
	"github.com/robotlab/webhookd/jetstream"
)

func (s *Server) publish(w http.ResponseWriter, r *http.Request) error {
	var req client.PublishRequest
	if err := decode(r, int64(s.cfg.MaxEventBytes)+4<<10, &req); err != nil {
		return err
	}
	if !s.catalog[req.Event] {
		return invalid("event: %q is not in the catalog (GET /v1/event-types)", req.Event)
	}
	if strings.HasPrefix(req.Event, "webhook.") {
		// As for robots on NATS: webhookd's own events are not forged.
		return invalid("event: %q is sent by webhookd itself and cannot be published (a test event: POST /v1/subscriptions/{id}/ping)", req.Event)
	}
	if err := delivery.CheckData(req.Data); err != nil {
		return invalid("data: %s", strings.TrimPrefix(err.Error(), "delivery: "))
	}
	if len(req.Data) > s.cfg.MaxEventBytes {
		return apiError(http.StatusRequestEntityTooLarge, client.CodeTooLarge, "data: %d bytes, at most %d", len(req.Data), s.cfg.MaxEventBytes)
	}
	if len(req.ID) > delivery.MaxEventIDBytes {
		return invalid("id: at most %d bytes", delivery.MaxEventIDBytes)
	}
	m := nats.NewMsg(jetstream.EventSubject(req.Event))
	m.Data = req.Data
	span := s.deps.Tracer.Publish(r.Header.Get(tracing.Header), req.Event, req.ID)
	if tp := span.Traceparent(); tp != "" {
		m.Header.Set(tracing.Header, tp)
	}
	var opts []natsjs.PublishOpt
	if req.ID != "" {
		opts = append(opts, natsjs.WithMsgID(req.ID))
	}
	ack, err := s.deps.JS.PublishMsg(r.Context(), m, opts...)
	if err != nil {
		span.End(err.Error())
		if errors.Is(err, nats.ErrMaxPayload) {
			return apiError(http.StatusRequestEntityTooLarge, client.CodeTooLarge, "event larger than the NATS payload limit")
		}
		return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "publish: %v", err)
	}
	id := req.ID
	if id == "" {
		id = delivery.EventIDFromSequence(s.cfg.EventIDSalt, ack.Sequence)
	}
	span.Published(id, ack.Sequence)
	writeJSON(w, http.StatusAccepted, client.Published{ID: id, Event: req.Event, Sequence: ack.Sequence, Duplicate: ack.Duplicate})
	return nil
}

func (s *Server) eventTypes(w http.ResponseWriter, _ *http.Request) error {
	items := make([]client.EventType, 0, len(s.catalog))
	for t := range s.catalog {
		et := client.EventType{Type: t, Schema: s.cfg.Schemas.Schema(t)}
		if !strings.HasPrefix(t, "webhook.") { // webhookd's own: not published
			et.Sample = s.cfg.Schemas.Sample(t)
		}
		items = append(items, et)
	}
	slices.SortFunc(items, func(a, b client.EventType) int { return strings.Compare(a.Type, b.Type) })
	names := make([]string, len(items))
	for i, et := range items {
		names[i] = et.Type
	}
	writeJSON(w, http.StatusOK, client.EventTypeList{Items: names, Types: items})
	return nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	st := client.Status{Replica: s.cfg.Replica, Streams: []client.StreamStatus{}, Consumers: []client.ConsumerStatus{}, Replicas: []string{}}
	for _, name := range []string{jetstream.StreamEvents, jetstream.StreamDeliveries, jetstream.StreamAudit} {
		str, err := s.deps.JS.Stream(ctx, name)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "stream %s: %v", name, err)
		}
		info, err := str.Info(ctx)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "stream %s: %v", name, err)
		}
		st.Streams = append(st.Streams, client.StreamStatus{Name: name, Messages: info.State.Msgs, Bytes: info.State.Bytes})
		if name == jetstream.StreamAudit {
			names := str.ConsumerNames(ctx)
			for n := range names.Name() {
				if replica, ok := strings.CutPrefix(n, "audit-"); ok {
					st.Replicas = append(st.Replicas, replica)
				}
			}
			if err := names.Err(); err != nil {
				return fmt.Errorf("list audit consumers: %w", err)
			}
			slices.Sort(st.Replicas)
		}
	}
	for stream, consumer := range map[string]string{jetstream.StreamEvents: jetstream.ConsumerRouter, jetstream.StreamDeliveries: jetstream.ConsumerWorkers} {
		c, err := s.deps.JS.Consumer(ctx, stream, consumer)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "consumer %s: %v", consumer, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "consumer %s: %v", consumer, err)
		}
		st.Consumers = append(st.Consumers, client.ConsumerStatus{Stream: stream, Name: consumer,
			Pending: info.NumPending, InFlight: info.NumAckPending, Redelivered: info.NumRedelivered})
	}
	slices.SortFunc(st.Consumers, func(a, b client.ConsumerStatus) int { return strings.Compare(a.Stream, b.Stream) })
	if s.deps.Counters != nil {
		st.Counters = s.deps.Counters()
	}
	st.Endpoints = []client.EndpointStatus{}
	if s.deps.Endpoints != nil {
		for id, h := range s.deps.Endpoints.All() {
			st.Endpoints = append(st.Endpoints, client.EndpointStatus{SubscriptionID: id, EndpointHealth: endpointView(h)})
		}
		slices.SortFunc(st.Endpoints, func(a, b client.EndpointStatus) int { return strings.Compare(a.SubscriptionID, b.SubscriptionID) })
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func endpointView(h endpoint.Health) client.EndpointHealth {
	return client.EndpointHealth{
		Breaker: h.Breaker, ConsecutiveFailures: h.ConsecutiveFailures, InFlight: h.InFlight,
		LastStatusCode: h.LastStatusCode, LastReason: h.LastReason, OpenUntil: h.OpenUntil,
	}
}
