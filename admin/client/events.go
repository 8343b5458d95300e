package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// What became of an event (Event.Status).
const (
	// EventRouted: fanned out; DeliveryCount deliveries are recorded.
	EventRouted = "routed"
	// EventUnrouted: not routed yet.
	EventUnrouted = "unrouted"
	// EventNoSubscriber: routed, no delivery made, no subscription
	// matches its type.
	EventNoSubscriber = "no_subscriber"
	// EventRejected: refused by the router; Reason says why.
	EventRejected = "rejected"
)

// Event is one event of the message log: an event EVENTS still holds
// (for --event-retention), whatever became of its deliveries.
type Event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Seq is its EVENTS sequence: GET /v1/events?after=SEQ lists the
	// events stored after it (0 when EVENTS no longer holds it).
	Seq       uint64    `json:"seq"`
	Timestamp time.Time `json:"timestamp"`
	// Size is the length of its data in bytes.
	Size int `json:"size"`
	// Status is routed, unrouted, no_subscriber or rejected.
	Status string `json:"status"`
	// Reason is why it was rejected.
	Reason string `json:"reason,omitempty"`
	// DeliveryCount is how many deliveries the history holds for it.
	DeliveryCount int `json:"delivery_count"`
}

// EventDetail is GET /v1/events/{id}: the event, the body its deliveries
// POST, and every delivery it produced.
type EventDetail struct {
	Event
	// Payload is the body POSTed to receivers ({"id","event","timestamp",
	// "data"}); RawData is the data as published when it is not a JSON
	// object (a rejected event). Both are empty once EVENTS no longer
	// holds the event; Note then says so.
	Payload json.RawMessage `json:"payload,omitempty"`
	RawData string          `json:"raw_data,omitempty"`
	// Note explains the status, or why there is no payload.
	Note string `json:"note,omitempty"`
	// Deliveries are the deliveries it produced, newest first.
	Deliveries []Delivery `json:"deliveries"`
}

// EventQuery selects a page of GET /v1/events: events of Type, stored
// after the sequence After, or else at or after Since; oldest first.
type EventQuery struct {
	Type  string
	Since time.Time
	After uint64
	Limit int
}

// ListEvents returns a page of the events EVENTS holds, oldest first.
func (c *Client) ListEvents(ctx context.Context, q EventQuery) (List[Event], error) {
	v := url.Values{}
	if q.Type != "" {
		v.Set("type", q.Type)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if q.After > 0 {
		v.Set("after", fmt.Sprint(q.After))
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	var l List[Event]
	return l, c.do(ctx, http.MethodGet, "/v1/events?"+v.Encode(), nil, &l)
}

// GetEvent returns an event with its payload and deliveries. since (zero:
// none) is where to search for an id that no delivery has, instead of the
// newest events.
func (c *Client) GetEvent(ctx context.Context, id string, since time.Time) (EventDetail, error) {
	path := "/v1/events/" + url.PathEscape(id)
	if !since.IsZero() {
		path += "?since=" + url.QueryEscape(since.Format(time.RFC3339Nano))
	}
	var e EventDetail
	return e, c.do(ctx, http.MethodGet, path, nil, &e)
}
