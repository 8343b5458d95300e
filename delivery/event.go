package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Event is one published event as receivers see it.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"event"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// ErrNotObject is returned by CheckData for a body that is not a JSON object.
var ErrNotObject = errors.New("delivery: event data is not a JSON object")

// CheckData returns an error wrapping ErrNotObject unless data is one JSON
// object (whitespace around it allowed).
func CheckData(data []byte) error {
	d := bytes.TrimSpace(data)
	if len(d) == 0 {
		return fmt.Errorf("%w: empty body", ErrNotObject)
	}
	if d[0] != '{' {
		return fmt.Errorf("%w: starts with %q", ErrNotObject, truncate(string(d), 16))
	}
	if !json.Valid(d) {
		return fmt.Errorf("%w: invalid JSON", ErrNotObject)
	}
	return nil
}

// Payload returns the exact body POSTed to receivers:
// {"id","event","timestamp","data"} with the timestamp in RFC 3339 UTC.
func (e Event) Payload() ([]byte, error) {
	e.Timestamp = e.Timestamp.UTC().Truncate(time.Second)
	var buf bytes.Buffer
	if err := json.Compact(&buf, e.Data); err != nil {
		return nil, fmt.Errorf("delivery: compact data: %w", err)
	}
	e.Data = buf.Bytes()
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("delivery: encode payload: %w", err)
	}
	return b, nil
}

// namespace is the UUIDv5 namespace of ids derived by webhookd.
var namespace = uuid.MustParse("5b2f6f0e-8d0c-4c84-9a57-3a4c1a9e2f10")

// EventIDFromSequence derives the id of an event published without a
// Nats-Msg-Id from its EVENTS stream sequence, so a redelivered event keeps
// its id.
func EventIDFromSequence(seq uint64) string {
	return uuid.NewSHA1(namespace, fmt.Appendf(nil, "events/%d", seq)).String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
