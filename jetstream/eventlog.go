package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// The bounds of EventLog's reads.
const (
	// MaxListEvents bounds one page of EventLog.List.
	MaxListEvents = 1000
	// maxWalk bounds the events of one type that EventLog.Near reads
	// from the time it is given.
	maxWalk = 1000
	// MaxScanEvents bounds the headers EventLog.Scan reads.
	MaxScanEvents = 100_000
	// MaxDeriveEvents bounds the sequences EventLog.Derived tries.
	MaxDeriveEvents = 1_000_000
	// logConsumerIdle is how long the server keeps an ordered consumer
	// of a read that ended without deleting it (a crash, a lost link).
	logConsumerIdle = 30 * time.Second
)

// LoggedEvent is one event EVENTS holds: the message log.
type LoggedEvent struct {
	// ID is the event's id as the router gives it: its Nats-Msg-Id (or the
	// id the migration kept), or derived from its sequence.
	ID   string
	Type string
	Seq  uint64
	// Timestamp is when it was published (EventTime); Stored when EVENTS
	// stored it, which --event-retention counts from.
	Timestamp, Stored time.Time
	// Size is the data's length in bytes.
	Size int
	// Data is the event data (nil in List's answers, which read headers
	// only).
	Data []byte
}

// ErrEventNotFound is returned when EVENTS holds no event for a lookup.
var ErrEventNotFound = errors.New("jetstream: event not found in EVENTS")

// EventLog reads the events EVENTS keeps (see Purger): pages of them by
// time or sequence, one by sequence, one by id. It reads with direct
// message gets and with ordered consumers (ephemeral, in memory, deleted
// when the read ends), never with a durable consumer.
type EventLog struct {
	js natsjs.JetStream
	// derive is the id of an event published without one
	// (delivery.EventIDFromSequence with EVENTS's salt).
	derive func(seq uint64) string
	// maxIDBytes is the longest id the router keeps; an event with a longer
	// one is known by its derived id (delivery.MaxEventIDBytes).
	maxIDBytes int
}

// NewEventLog returns the log of EVENTS over js. derive gives the id of an
// event published without one from its sequence; ids longer than
// maxIDBytes are replaced by the derived one, as the router does.
func NewEventLog(js natsjs.JetStream, derive func(seq uint64) string, maxIDBytes int) *EventLog {
	return &EventLog{js: js, derive: derive, maxIDBytes: maxIDBytes}
}

// idOf returns the id the router gives the event at seq with headers h.
func (l *EventLog) idOf(h nats.Header, seq uint64) string {
	id := EventIDHeader(h)
	if id == "" || len(id) > l.maxIDBytes {
		return l.derive(seq)
	}
	return id
}

// ListQuery selects a page of EventLog.List.
type ListQuery struct {
	// Type keeps the events of one type (a literal subject suffix).
	Type string
	// After starts after this sequence; else Since starts at the first
	// event stored at or after it; else the page starts at the oldest
	// event held.
	After uint64
	Since time.Time
	// Limit is the page size, 1 to MaxListEvents (0: 50).
	Limit int
}

// List returns a page of events, oldest first (by sequence), without
// their data. It reads headers only, through one ordered consumer that
// starts where the query says and is deleted afterwards: one consumer
// creation and one pull of at most Limit messages.
func (l *EventLog) List(ctx context.Context, q ListQuery) ([]LoggedEvent, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, MaxListEvents)
	cfg := natsjs.OrderedConsumerConfig{FilterSubjects: []string{EventsPrefix + ">"}, HeadersOnly: true,
		InactiveThreshold: logConsumerIdle}
	if q.Type != "" {
		cfg.FilterSubjects = []string{EventSubject(q.Type)}
	}
	switch {
	case q.After > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = natsjs.DeliverByStartSequencePolicy, q.After+1
	case !q.Since.IsZero():
		since := q.Since.UTC()
		cfg.DeliverPolicy, cfg.OptStartTime = natsjs.DeliverByStartTimePolicy, &since
	default:
		cfg.DeliverPolicy = natsjs.DeliverAllPolicy
	}
	var out []LoggedEvent
	err := l.read(ctx, cfg, limit, func(m natsjs.Msg, md *natsjs.MsgMetadata) bool {
		size, _ := strconv.Atoi(m.Headers().Get(nats.MsgSize))
		out = append(out, l.event(m.Subject(), m.Headers(), md.Sequence.Stream, md.Timestamp, nil, size))
		return len(out) < limit
	})
	return out, err
}

// event builds a LoggedEvent.
func (l *EventLog) event(subject string, h nats.Header, seq uint64, stored time.Time, data []byte, size int) LoggedEvent {
	return LoggedEvent{ID: l.idOf(h, seq), Type: EventType(subject), Seq: seq, Timestamp: EventTime(h, stored),
		Stored: stored, Size: size, Data: data}
}

// read pulls from an ordered consumer of EVENTS made with cfg, in pulls of
// at most batch messages that return at once with what is there, handing
// each message to fn until fn returns false or no message is left. It
// deletes the consumer when done.
func (l *EventLog) read(ctx context.Context, cfg natsjs.OrderedConsumerConfig, batch int, fn func(natsjs.Msg, *natsjs.MsgMetadata) bool) error {
	oc, err := l.js.OrderedConsumer(ctx, StreamEvents, cfg)
	if err != nil {
		return fmt.Errorf("jetstream: read %s: %w", StreamEvents, err)
	}
	defer func() {
		if info := oc.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = l.js.DeleteConsumer(dctx, StreamEvents, info.Name) // else it goes after logConsumerIdle
			cancel()
		}
	}()
	for {
		msgs, err := oc.FetchNoWait(batch)
		if err != nil {
			return fmt.Errorf("jetstream: read %s: %w", StreamEvents, err)
		}
		n, more := 0, true
		for m := range messages(ctx, msgs) {
			n++
			md, err := m.Metadata()
			if err != nil || !more {
				continue // drain the batch so the next pull may start
			}
			more = fn(m, md)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("jetstream: read %s: %w", StreamEvents, err)
		}
		if err := msgs.Error(); err != nil {
			return fmt.Errorf("jetstream: read %s: %w", StreamEvents, err)
		}
		if !more || n < batch {
			return nil
		}
	}
}

// messages yields a batch's messages until it ends or ctx is done.
func messages(ctx context.Context, b natsjs.MessageBatch) func(func(natsjs.Msg) bool) {
	return func(yield func(natsjs.Msg) bool) {
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-b.Messages():
				if !ok || !yield(m) {
					return
				}
			}
		}
	}
}

// Get returns the event at seq, with its data.
func (l *EventLog) Get(ctx context.Context, seq uint64) (LoggedEvent, error) {
	return l.get(ctx, msgGetRequest{Seq: seq})
}

// msgGetRequest is the body of $JS.API.STREAM.MSG.GET: a sequence, or the
// first message stored at or after a time, optionally the next one on a
// subject from there.
type msgGetRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
}

// get makes one message get on EVENTS; ErrEventNotFound when there is no
// such message.
func (l *EventLog) get(ctx context.Context, req msgGetRequest) (LoggedEvent, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return LoggedEvent{}, fmt.Errorf("jetstream: encode message request: %w", err)
	}
	msg, err := l.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+StreamEvents, body)
	if err != nil {
		return LoggedEvent{}, fmt.Errorf("jetstream: get from %s: %w", StreamEvents, err)
	}
	var resp struct {
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
		Error *struct {
			ErrCode int    `json:"err_code"`
			Desc    string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return LoggedEvent{}, fmt.Errorf("jetstream: get from %s: decode: %w", StreamEvents, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == int(natsjs.JSErrCodeMessageNotFound):
		return LoggedEvent{}, ErrEventNotFound
	case resp.Error != nil:
		return LoggedEvent{}, fmt.Errorf("jetstream: get from %s: %s (%d)", StreamEvents, resp.Error.Desc, resp.Error.ErrCode)
	case resp.Message == nil:
		return LoggedEvent{}, fmt.Errorf("jetstream: get from %s: empty answer", StreamEvents)
	}
	m := resp.Message
	h := nats.Header{}
	if len(m.Header) > 0 {
		if h, err = nats.DecodeHeadersMsg(m.Header); err != nil {
			return LoggedEvent{}, fmt.Errorf("jetstream: get from %s: headers of %d: %w", StreamEvents, m.Seq, err)
		}
	}
	return l.event(m.Subject, h, m.Seq, m.Time, m.Data, len(m.Data)), nil
}

// Near finds the event id of type typ published at t, to the millisecond
// (the time a delivery id carries, delivery.JobID): it reads the events of
// that type from the first one stored at t, at most maxWalk of them, until
// one is published after t's millisecond. ErrEventNotFound when EVENTS no
// longer holds it (or never did).
func (l *EventLog) Near(ctx context.Context, id, typ string, t time.Time) (LoggedEvent, error) {
	from := t.UTC().Truncate(time.Millisecond)
	end := from.Add(time.Millisecond)
	req := msgGetRequest{NextFor: EventSubject(typ), StartTime: &from}
	for range maxWalk {
		ev, err := l.get(ctx, req)
		if err != nil {
			return LoggedEvent{}, err
		}
		if ev.ID == id {
			return ev, nil
		}
		if !ev.Timestamp.Before(end) {
			break
		}
		req = msgGetRequest{NextFor: EventSubject(typ), Seq: ev.Seq + 1}
	}
	return LoggedEvent{}, ErrEventNotFound
}

// Derived finds the event whose id is derived from its sequence and equals
// id: it derives the id of each sequence EVENTS holds, newest first, at
// most MaxDeriveEvents of them (a SHA-1 each, no read), then reads the one
// that matches. ErrEventNotFound when none does, or the event at that
// sequence carries an id of its own.
func (l *EventLog) Derived(ctx context.Context, id string) (LoggedEvent, error) {
	first, last, _, err := l.Bounds(ctx)
	if err != nil {
		return LoggedEvent{}, err
	}
	for seq, n := last, 0; seq >= first && seq > 0 && n < MaxDeriveEvents; seq, n = seq-1, n+1 {
		if n%4096 == 0 && ctx.Err() != nil {
			return LoggedEvent{}, fmt.Errorf("jetstream: find event %q: %w", id, ctx.Err())
		}
		if l.derive(seq) != id {
			continue
		}
		ev, err := l.Get(ctx, seq)
		if err == nil && ev.ID != id {
			err = ErrEventNotFound // it has an id of its own
		}
		return ev, err
	}
	return LoggedEvent{}, ErrEventNotFound
}

// Scan finds the event with id by reading the headers of the events
// stored since the given time (zero: of the newest MaxScanEvents events),
// at most MaxScanEvents of them, through one ordered consumer. It returns
// ErrEventNotFound, and how many events it read, when none has that id.
func (l *EventLog) Scan(ctx context.Context, id string, since time.Time) (LoggedEvent, int, error) {
	cfg := natsjs.OrderedConsumerConfig{FilterSubjects: []string{EventsPrefix + ">"}, HeadersOnly: true,
		InactiveThreshold: logConsumerIdle}
	if !since.IsZero() {
		since = since.UTC()
		cfg.DeliverPolicy, cfg.OptStartTime = natsjs.DeliverByStartTimePolicy, &since
	} else {
		first, last, _, err := l.Bounds(ctx)
		if err != nil {
			return LoggedEvent{}, 0, err
		}
		start := first
		if last >= MaxScanEvents && last-MaxScanEvents+1 > first {
			start = last - MaxScanEvents + 1
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = natsjs.DeliverByStartSequencePolicy, max(start, 1)
	}
	read, found := 0, uint64(0)
	err := l.read(ctx, cfg, MaxListEvents, func(m natsjs.Msg, md *natsjs.MsgMetadata) bool {
		read++
		if l.idOf(m.Headers(), md.Sequence.Stream) == id {
			found = md.Sequence.Stream
			return false
		}
		return read < MaxScanEvents
	})
	if err != nil {
		return LoggedEvent{}, read, err
	}
	if found == 0 {
		return LoggedEvent{}, read, ErrEventNotFound
	}
	ev, err := l.Get(ctx, found)
	return ev, read, err
}

// Bounds returns the first and last sequences EVENTS holds and when its
// oldest event was stored (zero when it is empty).
func (l *EventLog) Bounds(ctx context.Context) (first, last uint64, firstTime time.Time, err error) {
	str, err := l.js.Stream(ctx, StreamEvents)
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("jetstream: stream %s info: %w", StreamEvents, err)
	}
	st := str.CachedInfo().State
	if st.Msgs == 0 {
		return st.FirstSeq, st.LastSeq, time.Time{}, nil
	}
	return st.FirstSeq, st.LastSeq, st.FirstTime, nil
}

// RoutedUpTo returns the router consumer's ack floor: every event at or
// below it is routed.
func (l *EventLog) RoutedUpTo(ctx context.Context) (uint64, error) {
	c, err := l.js.Consumer(ctx, StreamEvents, ConsumerRouter)
	if err != nil {
		return 0, fmt.Errorf("jetstream: consumer %s/%s info: %w", StreamEvents, ConsumerRouter, err)
	}
	return c.CachedInfo().AckFloor.Stream, nil
}
