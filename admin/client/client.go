// Package client is the Go client of webhookd's admin HTTP API, and the wire
// types of its requests and answers. webhookctl is built on it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Subscription is the API's subscription object. Secret is set only in the
// answers of create and rotate-secret.
type Subscription struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Description string    `json:"description"`
	Timeout     string    `json:"timeout"`
	Active      bool      `json:"active"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Secret      string    `json:"secret,omitempty"`
	// MaxInFlight caps the attempts in flight to the endpoint; 0 means the
	// server's default.
	MaxInFlight int `json:"max_in_flight"`
	// DisabledReason and DisabledAt are set when the dispatcher disabled the
	// subscription ("endpoint_gone", "failing"); resume clears them.
	DisabledReason string    `json:"disabled_reason,omitempty"`
	DisabledAt     time.Time `json:"disabled_at,omitzero"`
	// FailingSince is when the current run of failed attempts began (read-only).
	FailingSince time.Time `json:"failing_since,omitzero"`
	// Health is the endpoint as the answering replica sees it: its circuit
	// breaker, failures in a row, attempts in flight (read-only).
	Health *EndpointHealth `json:"health,omitempty"`
	// Headers are the custom headers sent with every request, by name; the
	// values are never shown (RedactedValue).
	Headers map[string]string `json:"headers,omitempty"`
	// RetryPolicy is the subscription's own retry schedule ("5s,1m,10m" or
	// "exp:INITIAL:MAX:RETRIES[:JITTER]"); empty means the server's default.
	RetryPolicy string `json:"retry_policy,omitempty"`
	// Filter, Transform and OrderingKey are the subscription's CEL
	// expressions (empty: none); see SubscriptionInput.
	Filter      string `json:"filter,omitempty"`
	Transform   string `json:"transform,omitempty"`
	OrderingKey string `json:"ordering_key,omitempty"`
	// PreviousSecretExpiresAt is when the grace period of the last secret
	// rotation ends: until then the previous secret signs too. Zero when
	// only the current secret signs.
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
	// Stats is the subscription's delivery health from the attempts of
	// every replica (read-only).
	Stats *DeliveryStats `json:"stats,omitempty"`
	// Labels are short key=value tags; "owner" names the team whose
	// tokens may see and manage the subscription.
	Labels map[string]string `json:"labels,omitempty"`
	// OrderedKeys is the backlog of an ordered subscription's keys on the
	// answering replica, in the answer of get only (read-only).
	OrderedKeys *OrderedKeys `json:"ordered_keys,omitempty"`
	// Listen marks the ephemeral subscription of a `webhookctl listen`
	// (POST /v1/listeners): it has no URL and makes no deliveries; its
	// listener streams them. ExpiresAt is when it is deleted unless its
	// stream, while connected, moves it on.
	Listen    bool      `json:"listen,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// OrderedKeys is an ordered subscription's backlog on one replica: how
// many keys have deliveries waiting there, and the head delivery of the
// longest keys (at most ten, longest first). The other replicas own other
// keys: ask each.
type OrderedKeys struct {
	Waiting int          `json:"waiting"`
	Longest []OrderedKey `json:"longest"`
}

// OrderedKey is one key's backlog: its deliveries waiting (the head
// included) and its head delivery: attempt, when it is due, whether its
// attempt is running.
type OrderedKey struct {
	Key         string    `json:"key"`
	Deliveries  int       `json:"deliveries"`
	HeadID      string    `json:"head_delivery_id"`
	HeadEventID string    `json:"head_event_id"`
	HeadAttempt int       `json:"head_attempt"`
	HeadDue     time.Time `json:"head_due,omitzero"`
	HeadRunning bool      `json:"head_running"`
	HeadCreated time.Time `json:"head_created_at"`
}

// DeliveryStats is a subscription's delivery health from the delivery
// history, across every replica: attempts and success rate (0 to 1, absent
// without attempts) over the last hour (the current minute and the 59
// before) and the last 24 hours (the current hour and the 23 before), and
// the newest attempt.
type DeliveryStats struct {
	Attempts1h          int       `json:"attempts_1h"`
	SuccessRate1h       *float64  `json:"success_rate_1h,omitempty"`
	Attempts24h         int       `json:"attempts_24h"`
	SuccessRate24h      *float64  `json:"success_rate_24h,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	LastStatusCode      int       `json:"last_status_code,omitempty"`
	LastReason          string    `json:"last_reason,omitempty"`
	LastAttemptAt       time.Time `json:"last_attempt_at,omitzero"`
}

// RedactedValue stands for a custom header's value in every answer.
const RedactedValue = "[redacted]"

// State is "active", "paused" (by an operator) or "disabled" (by the
// dispatcher, see DisabledReason).
func (s Subscription) State() string {
	switch {
	case s.Active:
		return "active"
	case s.DisabledReason != "":
		return "disabled"
	default:
		return "paused"
	}
}

// SubscriptionInput creates a subscription.
type SubscriptionInput struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
	MaxInFlight int      `json:"max_in_flight,omitempty"` // 0 to 1000; 0 means the server's default
	// Headers are custom headers to send with every request (name → value).
	Headers map[string]string `json:"headers,omitempty"`
	// RetryPolicy overrides the server's retry schedule; empty: the default.
	RetryPolicy string `json:"retry_policy,omitempty"`
	// Filter is a CEL expression giving a bool: only events for which it
	// is true are delivered. Transform gives an object, sent as the body
	// instead of the envelope. OrderingKey gives a string: deliveries with
	// the same key start one at a time, in event order. Each sees event,
	// id, timestamp and data; empty means none.
	Filter      string `json:"filter,omitempty"`
	Transform   string `json:"transform,omitempty"`
	OrderingKey string `json:"ordering_key,omitempty"`
	// Labels tag the subscription; "owner" names its team. A team's
	// token gets owner=its team whatever it sends.
	Labels map[string]string `json:"labels,omitempty"`
}

// SubscriptionPatch changes the fields that are set.
type SubscriptionPatch struct {
	URL         *string   `json:"url,omitempty"`
	Events      *[]string `json:"events,omitempty"`
	Description *string   `json:"description,omitempty"`
	Timeout     *string   `json:"timeout,omitempty"`
	Active      *bool     `json:"active,omitempty"` // false pauses; true resumes, re-enabling a disabled subscription
	MaxInFlight *int      `json:"max_in_flight,omitempty"`
	// Headers sets the custom headers given; a null value removes one.
	// Headers not named are kept.
	Headers map[string]*string `json:"headers,omitempty"`
	// RetryPolicy sets the retry schedule; "" goes back to the default.
	RetryPolicy *string `json:"retry_policy,omitempty"`
	// Filter, Transform and OrderingKey set the expressions; "" clears one.
	Filter      *string `json:"filter,omitempty"`
	Transform   *string `json:"transform,omitempty"`
	OrderingKey *string `json:"ordering_key,omitempty"`
	// Labels sets the labels given; a null value removes one. Labels not
	// named are kept. A team's token cannot change or remove "owner".
	Labels map[string]*string `json:"labels,omitempty"`
}

// RotateRequest is the optional body of rotate-secret.
type RotateRequest struct {
	// Grace is how long the previous secret keeps signing, a Go duration
	// ("0s" ends it at once); empty means the server's --secret-grace.
	Grace string `json:"grace,omitempty"`
}

// PingResult is the outcome of a test ping (a signed webhook.ping event
// sent to one subscription's endpoint, once, never retried).
type PingResult struct {
	DeliveryID     string `json:"delivery_id"`
	EventID        string `json:"event_id"`
	SubscriptionID string `json:"subscription_id"`
	URL            string `json:"url"`
	// Outcome is "succeeded" (a 2xx) or "failed"; Reason says why.
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason"`
	StatusCode int    `json:"status_code,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
	// Response is the start of the response body (at most 1 KiB).
	Response string `json:"response,omitempty"`
}

// Attempt is one delivery attempt.
type Attempt struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	URL        string    `json:"url,omitempty"` // where this attempt went
	StatusCode int       `json:"status_code,omitempty"`
	DurationMS int64     `json:"duration_ms"`
	Reason     string    `json:"reason,omitempty"`
	Error      string    `json:"error,omitempty"`
	Response   string    `json:"response,omitempty"`
	Replica    string    `json:"replica,omitempty"`
	// RequestHeaders are the headers the attempt was sent with, signatures
	// redacted (GET /v1/deliveries/{id} only).
	RequestHeaders map[string]string `json:"request_headers,omitempty"`
}

// Delivery is the API's delivery object, attempts oldest first.
type Delivery struct {
	ID             string    `json:"id"`
	EventID        string    `json:"event_id"`
	Event          string    `json:"event"`
	SubscriptionID string    `json:"subscription_id"`
	URL            string    `json:"url"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason,omitempty"`
	Attempts       []Attempt `json:"attempts"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Payload is the body POSTed to the receiver ({"id","event",
	// "timestamp","data"}, or what the subscription's transform gives
	// now), shown by GET /v1/deliveries/{id} when the
	// event's job is kept: for deliveries that failed or were held (the
	// audit trail does not copy event data). PayloadNote says why it is
	// missing otherwise.
	Payload     json.RawMessage `json:"payload,omitempty"`
	PayloadNote string          `json:"payload_note,omitempty"`
}

// List is a page of items.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// DeliveryQuery filters GET /v1/deliveries. Event is an event id, Type an
// event type.
type DeliveryQuery struct {
	Subscription, Event, Type, Status string
	Since, Until                      time.Time
	Limit                             int
	Cursor                            string
}

// ReplayRequest asks for the failed deliveries of a subscription since a time
// to be sent again.
type ReplayRequest struct {
	Subscription string    `json:"subscription"`
	Since        time.Time `json:"since"`
	Until        time.Time `json:"until,omitzero"`
	DryRun       bool      `json:"dry_run,omitempty"`
	Rate         float64   `json:"rate,omitempty"` // deliveries per second
}

// ReplayResult answers a dry run: what a replay would send.
type ReplayResult struct {
	DryRun bool `json:"dry_run"`
	// Count is how many deliveries would be requeued.
	Count int `json:"count"`
	// Items lists them, oldest first.
	Items []Delivery `json:"items"`
}

// Replay is a replay running (or run) in the replica that answers
// POST /v1/deliveries/replay: its progress, as GET /v1/replays/{id} shows
// it. Replays live in that replica's memory; other replicas do not know them.
type Replay struct {
	ID           string    `json:"id"`
	Replica      string    `json:"replica"`
	Subscription string    `json:"subscription"`
	Since        time.Time `json:"since"`
	Until        time.Time `json:"until,omitzero"`
	Rate         float64   `json:"rate"` // deliveries per second
	// Planned is how many failed deliveries there were when it began.
	Planned int `json:"planned"`
	// Sent were queued again; Skipped could not be (no longer failed, kept
	// job expired, subscription deleted); Failed were not, because of an
	// error (see the server log).
	Sent    int `json:"sent"`
	Skipped int `json:"skipped"`
	Failed  int `json:"failed"`
	// Done is set once it has ended; Error says why it stopped early.
	Done       bool      `json:"done"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Joined is set in the answer to a request that found the same replay
	// (subscription and range) running, and joined it instead of starting
	// a second one.
	Joined bool `json:"joined,omitempty"`
}

// PublishRequest publishes an event over HTTP.
type PublishRequest struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	ID    string          `json:"id,omitempty"` // optional event id (deduplicated)
}

// Published answers a publish.
type Published struct {
	ID        string `json:"id"`
	Event     string `json:"event"`
	Sequence  uint64 `json:"sequence"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// EventTypeList is the answer of GET /v1/event-types: Items keeps the
// type names, as older releases answered, and Types adds each type's
// schema and sample.
type EventTypeList struct {
	Items []string    `json:"items"`
	Types []EventType `json:"types"`
}

// EventType is one type of the catalog, as GET /v1/event-types lists it.
type EventType struct {
	Type string `json:"type"`
	// Schema is the type's JSON Schema (--event-schemas); absent: none.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Sample is sample data of the type, for "events trigger": the
	// schema's examples[0], else the built-in sample; absent: none.
	Sample json.RawMessage `json:"sample,omitempty"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	Replica   string           `json:"replica"`
	Streams   []StreamStatus   `json:"streams"`
	Consumers []ConsumerStatus `json:"consumers"`
	Replicas  []string         `json:"replicas"`
	// Counters are this replica's since it started: routed, no_subscriber,
	// rejected, jobs, attempts, deferred, held.
	Counters map[string]uint64 `json:"counters"`
	// Endpoints lists, as this replica sees them, the subscriptions whose
	// endpoint has attempts in flight or is failing.
	Endpoints []EndpointStatus `json:"endpoints"`
}

// EndpointHealth is a subscription's endpoint as the answering replica
// sees it: its circuit breaker (closed, open, half_open), failures in a
// row, attempts in flight.
type EndpointHealth struct {
	Breaker             string    `json:"breaker"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	InFlight            int       `json:"in_flight"`
	LastStatusCode      int       `json:"last_status_code,omitempty"`
	LastReason          string    `json:"last_reason,omitempty"`
	OpenUntil           time.Time `json:"open_until,omitzero"`
}

// EndpointStatus is one line of Status.Endpoints.
type EndpointStatus struct {
	SubscriptionID string `json:"subscription_id"`
	EndpointHealth
}

// StreamStatus describes one stream.
type StreamStatus struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

// ConsumerStatus describes one shared consumer: Pending are not yet
// delivered, InFlight delivered and not yet settled (waiting retries included).
type ConsumerStatus struct {
	Stream      string `json:"stream"`
	Name        string `json:"name"`
	Pending     uint64 `json:"pending"`
	InFlight    int    `json:"in_flight"`
	Redelivered int    `json:"redelivered"`
}

// Error is an error answer of the API: {"error":{"code","message"}}. Two
// Errors match with errors.Is when their codes are equal.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message + " (" + e.Code + ")" }

// Is matches on Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Error codes.
const (
	CodeInvalid      = "invalid_request"
	CodeUnauthorized = "unauthorized"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTooLarge     = "payload_too_large"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
	// CodeTooManyRequests answers a client address that sent too many wrong
	// tokens lately (HTTP 429, with Retry-After).
	CodeTooManyRequests = "too_many_requests"
	// CodeForbidden answers a team token on a route for the operator's
	// token only (HTTP 403).
	CodeForbidden = "forbidden"
)

// Client talks to one webhookd replica.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for the server at base (e.g. http://127.0.0.1:8080).
func New(base, token string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want an http(s) URL such as http://127.0.0.1:8080", base)
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach webhookd at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		return c.answerError(resp.StatusCode, raw)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// answerError is the error of an answer with status (at least 300) and
// body raw: the API's *Error, or one naming the status.
func (c *Client) answerError(status int, raw []byte) *Error {
	var e struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != nil {
		e.Error.Status = status
		return e.Error
	}
	return &Error{Status: status, Code: CodeInternal, Message: fmt.Sprintf("HTTP %d from %s", status, c.base)}
}

// CreateSubscription creates a subscription; the answer carries its secret.
func (c *Client) CreateSubscription(ctx context.Context, in SubscriptionInput) (Subscription, error) {
	var s Subscription
	return s, c.do(ctx, http.MethodPost, "/v1/subscriptions", in, &s)
}

// ListSubscriptions lists every subscription.
func (c *Client) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	var l List[Subscription]
	return l.Items, c.do(ctx, http.MethodGet, "/v1/subscriptions", nil, &l)
}

// GetSubscription returns one subscription.
func (c *Client) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	var s Subscription
	return s, c.do(ctx, http.MethodGet, "/v1/subscriptions/"+url.PathEscape(id), nil, &s)
}

// UpdateSubscription changes the fields set in p.
func (c *Client) UpdateSubscription(ctx context.Context, id string, p SubscriptionPatch) (Subscription, error) {
	var s Subscription
	return s, c.do(ctx, http.MethodPatch, "/v1/subscriptions/"+url.PathEscape(id), p, &s)
}

// DeleteSubscription deletes a subscription.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/subscriptions/"+url.PathEscape(id), nil, nil)
}

// SubscriptionAction runs pause, resume or rotate-secret.
func (c *Client) SubscriptionAction(ctx context.Context, id, action string) (Subscription, error) {
	var s Subscription
	return s, c.do(ctx, http.MethodPost, "/v1/subscriptions/"+url.PathEscape(id)+"/"+action, nil, &s)
}

// RotateSecret issues a new secret; the answer carries it and when the
// previous one stops signing. A nil grace uses the server's default; 0 ends
// the grace period at once.
func (c *Client) RotateSecret(ctx context.Context, id string, grace *time.Duration) (Subscription, error) {
	var in any // no body: the server's default
	if grace != nil {
		in = RotateRequest{Grace: grace.String()}
	}
	var s Subscription
	return s, c.do(ctx, http.MethodPost, "/v1/subscriptions/"+url.PathEscape(id)+"/rotate-secret", in, &s)
}

// ExpireSecret ends a rotation's grace period now: only the current secret
// signs from then on.
func (c *Client) ExpireSecret(ctx context.Context, id string) (Subscription, error) {
	var s Subscription
	return s, c.do(ctx, http.MethodPost, "/v1/subscriptions/"+url.PathEscape(id)+"/expire-secret", nil, &s)
}

// Ping sends a signed webhook.ping event to the subscription's endpoint
// and returns the outcome. A receiver's failure is an outcome, not an error.
func (c *Client) Ping(ctx context.Context, id string) (PingResult, error) {
	var p PingResult
	return p, c.do(ctx, http.MethodPost, "/v1/subscriptions/"+url.PathEscape(id)+"/ping", nil, &p)
}

// ListDeliveries returns one page of deliveries, newest first.
func (c *Client) ListDeliveries(ctx context.Context, q DeliveryQuery) (List[Delivery], error) {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("subscription", q.Subscription)
	set("event", q.Event)
	set("type", q.Type)
	set("status", q.Status)
	set("cursor", q.Cursor)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	var l List[Delivery]
	return l, c.do(ctx, http.MethodGet, "/v1/deliveries?"+v.Encode(), nil, &l)
}

// GetDelivery returns one delivery with every attempt.
func (c *Client) GetDelivery(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	return d, c.do(ctx, http.MethodGet, "/v1/deliveries/"+url.PathEscape(id), nil, &d)
}

// Redeliver queues a delivery again, keeping its id.
func (c *Client) Redeliver(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	return d, c.do(ctx, http.MethodPost, "/v1/deliveries/"+url.PathEscape(id)+"/redeliver", nil, &d)
}

// PlanReplay lists the failed deliveries a replay of r would send (a dry run).
func (c *Client) PlanReplay(ctx context.Context, r ReplayRequest) (ReplayResult, error) {
	r.DryRun = true
	var res ReplayResult
	return res, c.do(ctx, http.MethodPost, "/v1/deliveries/replay", r, &res)
}

// StartReplay starts sending the failed deliveries r selects again, in the
// server at r.Rate; GetReplay follows its progress on the same replica.
func (c *Client) StartReplay(ctx context.Context, r ReplayRequest) (Replay, error) {
	r.DryRun = false
	var res Replay
	return res, c.do(ctx, http.MethodPost, "/v1/deliveries/replay", r, &res)
}

// GetReplay returns a replay's progress.
func (c *Client) GetReplay(ctx context.Context, id string) (Replay, error) {
	var res Replay
	return res, c.do(ctx, http.MethodGet, "/v1/replays/"+url.PathEscape(id), nil, &res)
}

// Publish publishes an event through the EVENTS stream.
func (c *Client) Publish(ctx context.Context, p PublishRequest) (Published, error) {
	var out Published
	return out, c.do(ctx, http.MethodPost, "/v1/events", p, &out)
}

// EventTypes lists the catalog, sorted by type.
func (c *Client) EventTypes(ctx context.Context) ([]EventType, error) {
	var l EventTypeList
	if err := c.do(ctx, http.MethodGet, "/v1/event-types", nil, &l); err != nil {
		return nil, err
	}
	if len(l.Types) == 0 { // a server from before schemas
		for _, t := range l.Items {
			l.Types = append(l.Types, EventType{Type: t})
		}
	}
	return l.Types, nil
}

// Status returns streams, consumers and replicas.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// ErrNotFound matches (errors.Is) an API answer with code not_found.
var ErrNotFound = &Error{Code: CodeNotFound}
