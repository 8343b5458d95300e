package console

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/robotlab/webhookd/admin/client"
)

// eventsData is the message log page: a page of events, oldest first,
// from Since (or after the last one of the page before).
type eventsData struct {
	Type, Since string
	Catalog     []eventType
	Items       []client.Event
	// Next is the query of the next page; empty on the last.
	Next template.URL
}

// defaultEventsSince is where the message log starts when no time is
// given: the API lists oldest first.
const defaultEventsSince = "-1h"

func (h handlers) events(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	d := eventsData{Type: strings.TrimSpace(q.Get("type")), Since: strings.TrimSpace(q.Get("since"))}
	p.Title, p.Nav, p.Data = "Events", "events", &d
	var err error
	if d.Catalog, err = h.catalog(r); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	if d.Since == "" {
		d.Since = defaultEventsSince
	}
	since, err := formTime(h.c.now(), "since", d.Since)
	if err != nil {
		p.Error = err.Error()
		h.c.render(w, http.StatusBadRequest, "events", p)
		return
	}
	api := url.Values{"limit": {"50"}, "since": {since}}
	if d.Type != "" {
		api.Set("type", d.Type)
	}
	if after := q.Get("after"); after != "" {
		api.Del("since")
		api.Set("after", after)
	}
	var list client.List[client.Event]
	err = h.call(r.Context(), r, http.MethodGet, "/v1/events?"+api.Encode(), &list)
	var apiErr *client.Error
	if errors.As(err, &apiErr) && apiErr.Status < 500 {
		p.Error = apiErr.Message
		h.c.render(w, apiErr.Status, "events", p)
		return
	}
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	d.Items = list.Items
	if list.NextCursor != "" {
		next := url.Values{"after": {list.NextCursor}, "since": {d.Since}}
		if d.Type != "" {
			next.Set("type", d.Type)
		}
		d.Next = template.URL(next.Encode())
	}
	h.c.render(w, http.StatusOK, "events", p)
}

// eventData is an event's page.
type eventData struct {
	client.EventDetail
	// Body is the payload, indented.
	Body string
}

func (h handlers) event(w http.ResponseWriter, r *http.Request, p *page) {
	var ev client.EventDetail
	if err := h.call(r.Context(), r, http.MethodGet, "/v1/events/"+url.PathEscape(r.PathValue("id")), &ev); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	p.Title, p.Nav, p.Data = "Event "+ev.ID, "events", eventData{EventDetail: ev, Body: indented(ev.Payload)}
	h.c.render(w, http.StatusOK, "event", p)
}
