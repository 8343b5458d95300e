package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Event is one event read from the EVENTS stream.
type Event struct {
	ID        string    // Nats-Msg-Id, or derived from Seq
	Type      string    // from the subject events.<type>
	Timestamp time.Time // when the stream stored it
	Seq       uint64    // EVENTS stream sequence
	Data      []byte    // the body, as published
}

// ErrNotObject is returned by CheckData for a body that is not a JSON object.
var ErrNotObject = errors.New("delivery: event data is not a JSON object")

// MaxDepth bounds the nesting of event data: receivers' JSON parsers have
// limits of their own (Go's 10 000, Python's recursion near 1 000), and
// the envelope adds a level.
const MaxDepth = 512

// CheckData returns an error wrapping ErrNotObject unless data is one JSON
// object in valid UTF-8 (white space around it allowed), nested at most
// MaxDepth deep.
func CheckData(data []byte) error {
	d := bytes.TrimSpace(data)
	if len(d) == 0 {
		return fmt.Errorf("%w: empty body", ErrNotObject)
	}
	if d[0] != '{' {
		return fmt.Errorf("%w: starts with %q", ErrNotObject, truncate(string(d), 16))
	}
	if !utf8.Valid(d) {
		return fmt.Errorf("%w: not valid UTF-8", ErrNotObject)
	}
	if !json.Valid(d) {
		return fmt.Errorf("%w: invalid JSON", ErrNotObject)
	}
	if depth(d) > MaxDepth {
		return fmt.Errorf("%w: nested deeper than %d levels", ErrNotObject, MaxDepth)
	}
	return nil
}

// depth returns the deepest nesting of objects and arrays in valid JSON.
func depth(d []byte) int {
	deepest, level, inString, escaped := 0, 0, false, false
	for _, c := range d {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			level++
			deepest = max(deepest, level)
		case c == '}' || c == ']':
			level--
		}
	}
	return deepest
}

// namespace is the UUIDv5 namespace of ids derived by webhookd.
var namespace = uuid.MustParse("5b2f6f0e-8d0c-4c84-9a57-3a4c1a9e2f10")

// MaxEventIDBytes bounds an event id (Nats-Msg-Id): the history is indexed
// by it, and an index key cannot be arbitrarily long.
const MaxEventIDBytes = 256

// EventIDFromSequence derives the id of an event published without a
// Nats-Msg-Id from its EVENTS stream sequence and salt, a value unique to
// that stream instance (jetstream.EventSalt): a redelivered event keeps its
// id, and two installs, or an EVENTS created anew, do not give the same id
// to their first events. An empty salt gives the ids of versions before
// the salt.
func EventIDFromSequence(salt string, seq uint64) string {
	if salt == "" {
		return uuid.NewSHA1(namespace, fmt.Appendf(nil, "events/%d", seq)).String()
	}
	return uuid.NewSHA1(namespace, fmt.Appendf(nil, "events/%s/%d", salt, seq)).String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
