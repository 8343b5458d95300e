package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// ListenerInput creates a listen subscription (POST /v1/listeners): the
// ephemeral subscription of `webhookctl listen`.
type ListenerInput struct {
	Events []string `json:"events"`
	// Filter is a CEL expression over the event, as a subscription's filter.
	Filter      string `json:"filter,omitempty"`
	Description string `json:"description,omitempty"`
}

// ListenReady opens a listener's stream: the subscription streamed, and
// when it expires unless the stream goes on.
type ListenReady struct {
	SubscriptionID string    `json:"subscription_id"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// ListenEvent is one delivery of a listen subscription, as a real delivery
// would send it: the exact body (base64 in JSON) and the headers, both
// signature schemes included, signed with the listen subscription's secret.
type ListenEvent struct {
	DeliveryID string      `json:"delivery_id"`
	EventID    string      `json:"event_id"`
	Event      string      `json:"event"`
	Headers    http.Header `json:"headers"`
	Body       []byte      `json:"body"`
}

// ListenDropped says how many deliveries the server dropped since the
// last event because the listener did not keep up.
type ListenDropped struct {
	Dropped int64 `json:"dropped"`
}

// ListenHandler receives a listener's stream. Any func may be nil.
type ListenHandler struct {
	// Ready is called once the stream is connected: deliveries from then
	// on are streamed.
	Ready func(ListenReady)
	// Event is called with each delivery, one at a time; while it runs the
	// stream is not read, and the server drops what does not fit its
	// buffer. An error ends Listen with it.
	Event func(ListenEvent) error
	// Dropped is called when the server dropped n deliveries.
	Dropped func(n int64)
}

// ErrListenerGone is returned by Listen when the listen subscription was
// deleted while streaming (it expired, or someone deleted it).
var ErrListenerGone = errors.New("client: the listen subscription was deleted")

// ErrStreamEnded is returned by Listen when the server ended the stream
// (it is shutting down, or the connection broke): the subscription lives
// on until it expires, so listening again soon, to any replica, resumes.
var ErrStreamEnded = errors.New("client: the server ended the stream")

// CreateListener creates a listen subscription; the answer carries its
// secret and expiry. Stream it with Listen before it expires.
func (c *Client) CreateListener(ctx context.Context, in ListenerInput) (Subscription, error) {
	var s Subscription
	return s, c.do(ctx, http.MethodPost, "/v1/listeners", in, &s)
}

// Listen streams the deliveries of the listen subscription id (GET
// /v1/listeners/{id}/events, Server-Sent Events) to h until ctx is done
// (ctx's error), the subscription is deleted (ErrListenerGone), the server
// ends the stream (ErrStreamEnded) or h.Event fails. While connected, the
// server keeps the subscription from expiring. An answer other than a
// stream is the API's *Error.
func (c *Client) Listen(ctx context.Context, id string, h ListenHandler) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/listeners/"+url.PathEscape(id)+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// No client timeout: the stream lasts as long as the listener.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("cannot reach webhookd at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return c.answerError(resp.StatusCode, raw)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return fmt.Errorf("listen: answer of type %q, want text/event-stream", mt)
	}
	var stop error // why the handler or the server ended the stream
	err = readSSE(resp.Body, func(ev sseEvent) error {
		stop = dispatchSSE(ev, h)
		return stop
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case stop != nil:
		return stop
	case err != nil:
		return fmt.Errorf("%w: %v", ErrStreamEnded, err)
	}
	return ErrStreamEnded
}

// dispatchSSE hands one event of a listener's stream to h.
func dispatchSSE(ev sseEvent, h ListenHandler) error {
	switch ev.Name {
	case "ready":
		var r ListenReady
		if err := json.Unmarshal(ev.Data, &r); err != nil {
			return fmt.Errorf("listen: decode ready event: %w", err)
		}
		if h.Ready != nil {
			h.Ready(r)
		}
	case "delivery":
		var d ListenEvent
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return fmt.Errorf("listen: decode delivery: %w", err)
		}
		if h.Event != nil {
			return h.Event(d)
		}
	case "dropped":
		var d ListenDropped
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return fmt.Errorf("listen: decode dropped event: %w", err)
		}
		if h.Dropped != nil {
			h.Dropped(d.Dropped)
		}
	case "gone":
		return ErrListenerGone
	}
	return nil // an event of a newer server: ignored
}
