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
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/jetstream"
)

// logTimeout bounds one read of the message log.
const logTimeout = 30 * time.Second

// eventLog returns the reader of EVENTS, with the router's ids.
func (s *Server) eventLog() *jetstream.EventLog {
	salt := s.cfg.EventIDSalt
	return jetstream.NewEventLog(s.deps.JS, func(seq uint64) string { return delivery.EventIDFromSequence(salt, seq) },
		delivery.MaxEventIDBytes)
}

// checkEventType refuses what is not a literal subject suffix: wildcards,
// spaces, empty tokens.
func checkEventType(t string) error {
	if len(t) > maxFilter {
		return invalid("type: at most %d bytes", maxFilter)
	}
	for tok := range strings.SplitSeq(t, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n*>") || !utf8.ValidString(tok) {
			return invalid("type: %q is not an event type (task.completed); wildcards are not taken here", t)
		}
	}
	return nil
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "type", "since", "limit", "after":
		default:
			return invalid("%s: unknown query parameter", k)
		}
	}
	lq := jetstream.ListQuery{Type: q.Get("type"), Limit: 50}
	if lq.Type != "" {
		if err := checkEventType(lq.Type); err != nil {
			return err
		}
	}
	var err error
	if lq.Since, err = parseTime("since", q.Get("since")); err != nil {
		return err
	}
	if v := q.Get("after"); v != "" {
		if lq.After, err = strconv.ParseUint(v, 10, 64); err != nil {
			return invalid("after: %q is not an event sequence (the seq of the last event listed)", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > jetstream.MaxListEvents {
			return invalid("limit: %q must be a number from 1 to %d", v, jetstream.MaxListEvents)
		}
		lq.Limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), logTimeout)
	defer cancel()
	log := s.eventLog()
	evs, err := log.List(ctx, lq)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "read EVENTS: %v", err)
	}
	floor, err := log.RoutedUpTo(ctx)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "%v", err)
	}
	items := make([]client.Event, len(evs))
	for i, ev := range evs {
		if items[i], _, err = s.eventView(ev, floor); err != nil {
			return err
		}
	}
	next := ""
	if len(evs) == lq.Limit {
		next = strconv.FormatUint(evs[len(evs)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, client.List[client.Event]{Items: items, NextCursor: next})
	return nil
}

// eventView is what became of ev, from the deliveries the history holds
// for it: those whose id the router derived from this very event (an id a
// robot used again after the duplicate window is another event).
func (s *Server) eventView(ev jetstream.LoggedEvent, routedUpTo uint64) (client.Event, []history.Delivery, error) {
	all, err := s.eventDeliveries(ev.ID)
	if err != nil {
		return client.Event{}, nil, err
	}
	v := client.Event{ID: ev.ID, Type: ev.Type, Seq: ev.Seq, Timestamp: ev.Timestamp, Size: ev.Size}
	var mine []history.Delivery
	for _, d := range all {
		if d.ID != delivery.JobID(ev.ID, d.SubscriptionID, ev.Seq, ev.Timestamp) {
			continue
		}
		mine = append(mine, d)
		if d.Status == delivery.StatusRejected {
			v.Status, v.Reason = client.EventRejected, d.Reason
			continue
		}
		v.DeliveryCount++
	}
	switch {
	case v.Status == client.EventRejected:
	case v.DeliveryCount > 0:
		v.Status = client.EventRouted
	case ev.Seq > routedUpTo:
		v.Status = client.EventUnrouted
	case len(s.deps.Subs.Match(ev.Type)) == 0:
		v.Status = client.EventNoSubscriber
	default:
		v.Status = client.EventRouted
	}
	return v, mine, nil
}

// eventDeliveries returns the deliveries the history holds for an event id.
func (s *Server) eventDeliveries(id string) ([]history.Delivery, error) {
	ds, _, err := s.deps.Store.List(history.Query{EventID: id, Limit: 1000})
	if err != nil {
		return nil, fmt.Errorf("deliveries of event %q: %w", id, err)
	}
	return ds, nil
}

// deliveryTime returns the time a delivery id carries: when its event was
// published, to the millisecond (delivery.JobID's UUIDv7 shape). Ids of
// earlier releases carry none.
func deliveryTime(id string) (time.Time, bool) {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		return time.Time{}, false
	}
	var ms int64
	for _, b := range u[:6] {
		ms = ms<<8 | int64(b)
	}
	return time.UnixMilli(ms).UTC(), true
}

// isPing reports whether an event type is webhookd's own test event, which
// is sent to one endpoint and never stored in EVENTS.
func isPing(eventType string) bool { return eventType == EventPing }

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id == "" || len(id) > delivery.MaxEventIDBytes || !utf8.ValidString(id) {
		return apiError(http.StatusNotFound, client.CodeNotFound, "event not found: an event id is 1 to %d bytes of UTF-8", delivery.MaxEventIDBytes)
	}
	q := r.URL.Query()
	for k := range q {
		if k != "since" {
			return invalid("%s: unknown query parameter", k)
		}
	}
	since, err := parseTime("since", q.Get("since"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), logTimeout)
	defer cancel()
	all, err := s.eventDeliveries(id)
	if err != nil {
		return err
	}
	for _, d := range all {
		if isPing(d.Event) {
			return apiError(http.StatusNotFound, client.CodeNotFound,
				"event %q is a test ping: it went to one endpoint and is not kept in EVENTS (webhookctl deliveries get %s)", id, d.ID)
		}
	}
	log := s.eventLog()
	ev, scanned, err := s.findEvent(ctx, log, id, all, since)
	switch {
	case errors.Is(err, jetstream.ErrEventNotFound) && len(all) > 0:
		writeJSON(w, http.StatusOK, s.agedOutEvent(ctx, log, id, all))
		return nil
	case errors.Is(err, jetstream.ErrEventNotFound) && !since.IsZero():
		return apiError(http.StatusNotFound, client.CodeNotFound, "event %q not found: no delivery has it, and none of the %d events stored since %s has it",
			id, scanned, since.UTC().Format(time.RFC3339))
	case errors.Is(err, jetstream.ErrEventNotFound):
		return apiError(http.StatusNotFound, client.CodeNotFound, "event %q not found: no delivery has it, and none of the %d newest events EVENTS holds has it (to search from a time: since=TIME, webhookctl events get --since)",
			id, scanned)
	case err != nil:
		return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "read EVENTS: %v", err)
	}
	floor, err := log.RoutedUpTo(ctx)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "%v", err)
	}
	v, mine, err := s.eventView(ev, floor)
	if err != nil {
		return err
	}
	out := client.EventDetail{Event: v, Deliveries: make([]client.Delivery, len(mine))}
	for i, d := range mine {
		out.Deliveries[i] = deliveryView(d)
	}
	if delivery.CheckData(ev.Data) == nil {
		out.Payload = envelope(ev)
	} else {
		out.RawData = strings.ToValidUTF8(string(ev.Data), "\uFFFD")
	}
	switch v.Status {
	case client.EventRejected:
		out.Note = "rejected: " + v.Reason
	case client.EventUnrouted:
		out.Note = "not routed yet"
	case client.EventNoSubscriber:
		out.Note = "no subscriber: no delivery was made, and no subscription matches " + v.Type + " now"
	case client.EventRouted:
		if v.DeliveryCount == 0 {
			out.Note = "no delivery recorded yet: its deliveries are queued or in flight, or its subscriptions came after it was routed"
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// findEvent looks for the event with id in EVENTS, in the cheapest way
// that applies: near the time its deliveries' ids carry (a few message
// gets); by deriving the ids of the sequences held, when the id is a UUID
// (a SHA-1 per sequence, at most jetstream.MaxDeriveEvents); else by
// reading the headers of the newest jetstream.MaxScanEvents events, or of
// those stored since the time given. It returns how many events the scan
// read.
func (s *Server) findEvent(ctx context.Context, log *jetstream.EventLog, id string, ds []history.Delivery, since time.Time) (jetstream.LoggedEvent, int, error) {
	tried := map[string]bool{}
	for _, d := range ds {
		t, ok := deliveryTime(d.ID)
		key := d.Event + "@" + t.String()
		if !ok || tried[key] {
			continue
		}
		tried[key] = true
		ev, err := log.Near(ctx, id, d.Event, t)
		if !errors.Is(err, jetstream.ErrEventNotFound) {
			return ev, 0, err
		}
	}
	if len(ds) > 0 && since.IsZero() {
		return jetstream.LoggedEvent{}, 0, jetstream.ErrEventNotFound // its deliveries say when it was: gone
	}
	if uuid.Validate(id) == nil {
		ev, err := log.Derived(ctx, id)
		if !errors.Is(err, jetstream.ErrEventNotFound) {
			return ev, 0, err
		}
	}
	return log.Scan(ctx, id, since)
}

// agedOutEvent is an event EVENTS no longer holds, as its deliveries tell it.
func (s *Server) agedOutEvent(ctx context.Context, log *jetstream.EventLog, id string, ds []history.Delivery) client.EventDetail {
	d := ds[0]
	t, _ := deliveryTime(d.ID)
	v := client.EventDetail{Event: client.Event{ID: id, Type: d.Event, Timestamp: t, Status: client.EventRouted},
		Deliveries: make([]client.Delivery, len(ds))}
	for i, d := range ds {
		v.Deliveries[i] = deliveryView(d)
		if d.Status == delivery.StatusRejected {
			v.Status, v.Reason = client.EventRejected, d.Reason
			continue
		}
		v.DeliveryCount++
	}
	v.Note = s.goneNote(ctx, log, t)
	return v
}

// goneNote says why EVENTS no longer holds an event published at t (zero:
// not known).
func (s *Server) goneNote(ctx context.Context, log *jetstream.EventLog, t time.Time) string {
	retention := fmt.Sprintf("--event-retention (%s)", s.cfg.EventRetention)
	if t.IsZero() {
		return "payload no longer retained: EVENTS keeps events for " + retention
	}
	if s.cfg.EventRetention >= 0 && t.Before(s.now().Add(-s.cfg.EventRetention)) {
		return "payload no longer retained: older than " + retention
	}
	if _, _, first, err := log.Bounds(ctx); err == nil && (first.IsZero() || t.Before(first)) {
		return "payload no longer retained: EVENTS dropped its oldest routed events to stay under --event-retention-bytes"
	}
	return "payload not found in EVENTS"
}

// envelope is the body a delivery of ev POSTs.
func envelope(ev jetstream.LoggedEvent) json.RawMessage {
	return delivery.Job{EventID: ev.ID, Event: ev.Type, EventTime: ev.Timestamp, Data: ev.Data}.Envelope()
}

// loggedPayload returns the body POSTed for d, read from the event EVENTS
// keeps, or a note that says why there is none.
func (s *Server) loggedPayload(ctx context.Context, d history.Delivery) (json.RawMessage, string) {
	if isPing(d.Event) {
		return nil, "a test ping's payload is not kept"
	}
	t, ok := deliveryTime(d.ID)
	if !ok {
		return nil, "no payload: this delivery's id, from an earlier release, does not tell when its event was published"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	log := s.eventLog()
	ev, err := log.Near(ctx, d.EventID, d.Event, t)
	if errors.Is(err, jetstream.ErrEventNotFound) {
		return nil, s.goneNote(ctx, log, t)
	}
	if err != nil {
		return nil, "the event could not be read from EVENTS: " + err.Error()
	}
	return s.sentBody(d.SubscriptionID, delivery.Job{EventID: ev.ID, Event: ev.Type, EventTime: ev.Timestamp, Data: ev.Data})
}
