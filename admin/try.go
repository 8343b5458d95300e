package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

// trySampleID is the id a sample event has in POST /v1/subscriptions/try.
const trySampleID = "evt_try_sample"

// try evaluates a filter and a transform against a sample event with the
// server's compiler, as the router and the deliverer would, and sends
// nothing. Expressions the request leaves empty are the subscription's,
// when it names one. An expression that does not compile is an error in
// the answer (stage "compile"), not a failed request: the console shows
// each error at its position.
func (s *Server) try(w http.ResponseWriter, r *http.Request) error {
	var req client.TryRequest
	if err := decode(r, int64(s.cfg.MaxEventBytes)+3*expr.MaxSourceBytes+4<<10, &req); err != nil {
		return err
	}
	if !s.catalog[req.Event] {
		return invalid("event: %q is not in the catalog (GET /v1/event-types)", req.Event)
	}
	if err := delivery.CheckData(req.Data); err != nil {
		return invalid("data: %s", strings.TrimPrefix(err.Error(), "delivery: "))
	}
	if len(req.Data) > s.cfg.MaxEventBytes {
		return apiError(http.StatusRequestEntityTooLarge, client.CodeTooLarge, "data: %d bytes, at most %d", len(req.Data), s.cfg.MaxEventBytes)
	}
	if req.SubscriptionID != "" {
		sub, err := s.deps.Subs.Fetch(r.Context(), req.SubscriptionID)
		if errors.Is(err, subscriptions.ErrNotFound) || err == nil && !visible(r, sub) {
			return notFound("subscription", req.SubscriptionID) // another team's: as if absent
		}
		if err != nil {
			return err
		}
		req.Filter = cmp.Or(req.Filter, sub.Filter)
		req.Transform = cmp.Or(req.Transform, sub.Transform)
	}
	job := delivery.Job{ID: trySampleID, EventID: trySampleID, Event: req.Event, EventTime: s.now().UTC(), Data: req.Data}
	vars, err := expr.NewVars(expr.Event{Type: job.Event, ID: job.EventID, Timestamp: job.EventTime, Data: job.Data})
	if err != nil {
		return invalid("data: %v", err)
	}
	out := client.TryResult{Matched: true, Errors: []client.ExprError{}}
	if req.Filter != "" {
		out.Matched = false
		if prg, err := s.exprs.CompileUncached(expr.Filter, req.Filter); err != nil {
			out.Errors = append(out.Errors, exprError(expr.Filter, err, "compile"))
		} else if ok, err := prg.Match(vars); err != nil {
			out.Errors = append(out.Errors, exprError(expr.Filter, err, "evaluate"))
		} else {
			out.Matched = ok
		}
	}
	out.Body = json.RawMessage(job.Envelope())
	if req.Transform != "" {
		out.Body = json.RawMessage("null")
		if prg, err := s.exprs.CompileUncached(expr.Transform, req.Transform); err != nil {
			out.Errors = append(out.Errors, exprError(expr.Transform, err, "compile"))
		} else if body, err := prg.Body(vars, s.cfg.MaxEventBytes); err != nil {
			out.Errors = append(out.Errors, exprError(expr.Transform, err, "evaluate"))
		} else {
			out.Body = body
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// exprError describes err, an error of field's expression.
func exprError(field expr.Field, err error, stage string) client.ExprError {
	var e *expr.Error
	if errors.As(err, &e) {
		return client.ExprError{Field: string(e.Field), Line: e.Line, Column: e.Column, Message: e.Message, Stage: stage}
	}
	return client.ExprError{Field: string(field), Message: strings.TrimPrefix(err.Error(), string(field)+": "), Stage: stage}
}

// transformBody returns the body the transform src gives for job's event,
// as the deliverer would send it.
func (s *Server) transformBody(job delivery.Job, src string) ([]byte, error) {
	prg, err := s.exprs.Compile(expr.Transform, src)
	if err != nil {
		return nil, err
	}
	vars, err := expr.NewVars(expr.Event{Type: job.Event, ID: job.EventID, Timestamp: job.EventTime, Data: job.Data})
	if err != nil {
		return nil, fmt.Errorf("transform: %w", err)
	}
	return prg.Body(vars, s.cfg.MaxEventBytes)
}

// sentBody returns the body a delivery of job to subscription subID POSTs:
// the envelope, or what the subscription's current transform gives (what
// a redelivery would send), or a note that says why there is none.
func (s *Server) sentBody(subID string, job delivery.Job) (json.RawMessage, string) {
	body := job.Envelope()
	if sub, ok := s.deps.Subs.Get(subID); ok && sub.Transform != "" {
		var err error
		if body, err = s.transformBody(job, sub.Transform); err != nil {
			return nil, "the subscription's transform fails on this event: " + err.Error()
		}
	}
	if !json.Valid(body) {
		return nil, "the kept event data is not JSON"
	}
	return body, ""
}
