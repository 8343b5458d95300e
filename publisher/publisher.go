package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// EventType is an event type of webhookd's catalog, e.g. "task.completed".
type EventType string

// The built-in catalog of event types.
const (
	RobotConnected    EventType = "robot.connected"
	RobotDisconnected EventType = "robot.disconnected"
	TaskCreated       EventType = "task.created"
	TaskCompleted     EventType = "task.completed"
	TaskFailed        EventType = "task.failed"
	AlertTriggered    EventType = "alert.triggered"
	MaintenanceDue    EventType = "maintenance.due"
)

// Catalog returns the built-in event types.
func Catalog() []EventType {
	return []EventType{RobotConnected, RobotDisconnected, TaskCreated, TaskCompleted, TaskFailed, AlertTriggered, MaintenanceDue}
}

// SubjectPrefix starts the subject of every event: events.<type>.
const SubjectPrefix = "events."

// MaxIDBytes bounds an event id; webhookd rejects longer ones.
const MaxIDBytes = 256

var (
	// ErrUnknownType is returned for an event type outside the catalog.
	ErrUnknownType = errors.New("publisher: event type not in the catalog")
	// ErrBadData is returned for data that is not one JSON object.
	ErrBadData = errors.New("publisher: data is not a JSON object")
	// ErrBadID is returned for an empty or too long event id.
	ErrBadID = errors.New("publisher: bad event id")
)

// Option configures a Publisher or an Async.
type Option func(*options) error

type options struct {
	types map[EventType]bool
}

// WithEventTypes accepts types beyond the built-in catalog: those the
// server was given with --event-types. Types are dot-separated tokens of
// letters, digits, '-' and '_'; webhook.* types are webhookd's own.
func WithEventTypes(types ...string) Option {
	return func(o *options) error {
		for _, t := range types {
			if err := checkTypeName(t); err != nil {
				return err
			}
			o.types[EventType(t)] = true
		}
		return nil
	}
}

func newOptions(opts []Option) (options, error) {
	o := options{types: map[EventType]bool{}}
	for _, t := range Catalog() {
		o.types[t] = true
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return options{}, err
		}
	}
	return o, nil
}

func checkTypeName(t string) error {
	if t == "" || strings.HasPrefix(t, "webhook.") {
		return fmt.Errorf("%w: %q", ErrUnknownType, t)
	}
	for _, tok := range strings.Split(t, ".") {
		if tok == "" {
			return fmt.Errorf("%w: %q has an empty token", ErrUnknownType, t)
		}
		for _, r := range tok {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("%w: %q has the character %q", ErrUnknownType, t, r)
			}
		}
	}
	return nil
}

// PublishOption sets something about one event.
type PublishOption func(*event)

// WithID sets the event id (the Nats-Msg-Id header and the payload's "id"):
// publishing the same id again is deduplicated. At most MaxIDBytes.
func WithID(id string) PublishOption {
	return func(e *event) { e.id, e.idSet = id, true }
}

// NewID returns a new random event id (a UUID), for a caller that retries.
func NewID() string { return uuid.NewString() }

type event struct {
	id    string
	idSet bool
}

// Ack is the stream's acknowledgement of one event.
type Ack struct {
	// ID is the event id: the one given with WithID, or the generated one.
	ID string
	// Sequence is the event's sequence in the EVENTS stream.
	Sequence uint64
	// Duplicate is true when an event with this id was already stored: this
	// publish changed nothing.
	Duplicate bool
}

// Error is a failed publish of one event; its ID is the id to publish it
// again with (WithID), so that the retry is deduplicated.
type Error struct {
	ID   string
	Type EventType
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("publisher: publish %s (id %s): %v", e.Type, e.ID, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether err is a failure that publishing again with the
// same id may cure (a timeout, no stream reachable, a lost connection),
// rather than bad input or a refusal by the stream.
func Retryable(err error) bool {
	if errors.Is(err, ErrUnknownType) || errors.Is(err, ErrBadData) || errors.Is(err, ErrBadID) {
		return false
	}
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) {
		return false // the stream refused it (too large, stream full, …)
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, natsjs.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, natsjs.ErrAsyncPublishTimeout)
}

// Publisher publishes events and waits for each acknowledgement.
type Publisher struct {
	js   natsjs.JetStream
	opts options
}

// New returns a Publisher on nc. It returns an error wrapping ErrUnknownType
// for a bad WithEventTypes name.
func New(nc *nats.Conn, opts ...Option) (*Publisher, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	js, err := natsjs.New(nc)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	return &Publisher{js: js, opts: o}, nil
}

// Publish publishes one event and waits for the stream's acknowledgement,
// until ctx is done. data is the event's data: a []byte or json.RawMessage
// holding one JSON object, sent as is, or any other value, encoded with
// encoding/json (it must encode to an object).
//
// Bad input returns an error wrapping ErrUnknownType, ErrBadData or ErrBadID
// and sends nothing. Any other failure is an *Error carrying the event id to
// retry with; Retryable tells whether a retry may help.
func (p *Publisher) Publish(ctx context.Context, eventType EventType, data any, opts ...PublishOption) (Ack, error) {
	m, id, err := p.opts.message(eventType, data, opts)
	if err != nil {
		return Ack{}, err
	}
	ack, err := p.js.PublishMsg(ctx, m)
	if err != nil {
		return Ack{}, &Error{ID: id, Type: eventType, Err: err}
	}
	return Ack{ID: id, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// message checks one event and builds its NATS message.
func (o options) message(eventType EventType, data any, opts []PublishOption) (*nats.Msg, string, error) {
	if !o.types[eventType] {
		return nil, "", fmt.Errorf("%w: %q (add server-side types with WithEventTypes)", ErrUnknownType, eventType)
	}
	var e event
	for _, opt := range opts {
		opt(&e)
	}
	if !e.idSet {
		e.id = NewID()
	}
	if e.id == "" || len(e.id) > MaxIDBytes {
		return nil, "", fmt.Errorf("%w: %d bytes, want 1 to %d", ErrBadID, len(e.id), MaxIDBytes)
	}
	body, err := encode(data)
	if err != nil {
		return nil, "", err
	}
	m := nats.NewMsg(SubjectPrefix + string(eventType))
	m.Data = body
	m.Header.Set(natsjs.MsgIDHeader, e.id)
	return m, e.id, nil
}

func encode(data any) ([]byte, error) {
	var b []byte
	switch d := data.(type) {
	case []byte:
		b = d
	case json.RawMessage:
		b = d
	default:
		var err error
		if b, err = json.Marshal(data); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadData, err)
		}
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return nil, fmt.Errorf("%w: want one JSON object such as {\"task_id\":\"T1\"}", ErrBadData)
	}
	return b, nil
}
