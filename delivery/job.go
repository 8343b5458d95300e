package delivery

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// Job is one attempt's worth of work: one event to be delivered to one
// subscription. It travels as a NATS message whose body is the event data
// exactly as the robot published it; everything else is in headers (see
// Msg), so nothing re-encodes the payload and a job is never larger than its
// event plus a few hundred bytes.
//
// A job carries its attempt number. A failed attempt that will be retried is
// settled by publishing the next attempt's job (Attempt+1, NotBefore set)
// and acking this one, so every replica knows the attempt count from the
// message alone, without reading any history.
type Job struct {
	// ID is the delivery id (JobID): the X-Webhook-Delivery header, stable
	// across retries and requeues.
	ID             string
	EventID        string
	Event          string
	EventTime      time.Time // when the event was published
	SubscriptionID string
	CreatedAt      time.Time // when the delivery was created (first fan-out)
	// Attempt is the number of the attempt this job makes, from 1.
	Attempt int
	// Base is the number of attempts made before an operator last requeued
	// the delivery: the retry policy counts Attempt-Base.
	Base int
	// NotBefore is when the attempt is due; zero means at once.
	NotBefore time.Time
	// Data is the event data, unchanged.
	Data []byte
	// TraceParent is the W3C traceparent of the span the event was routed
	// in, when tracing is on: every attempt's span is its child.
	TraceParent string
	// Ordered marks a job of a subscription with an ordering key: it goes
	// to the ORDERED stream, where one replica starts the deliveries of
	// each key one at a time, in the order of EventSeq.
	Ordered bool
	// OrderingKey is the key's value (with Ordered).
	OrderingKey string
	// EventSeq is the event's EVENTS stream sequence (with Ordered).
	EventSeq uint64
}

// Job message headers. Nats-Msg-Id is set by whoever publishes the job.
const (
	hdrDelivery     = "Webhook-Delivery"
	hdrEventID      = "Webhook-Event-Id"
	hdrEvent        = "Webhook-Event"
	hdrEventTime    = "Webhook-Event-Time"
	hdrSubscription = "Webhook-Subscription"
	hdrCreated      = "Webhook-Created"
	hdrAttempt      = "Webhook-Attempt"
	hdrBase         = "Webhook-Attempt-Base"
	hdrNotBefore    = "Webhook-Not-Before"
	hdrTraceParent  = "traceparent"
	hdrOrderingKey  = "Webhook-Ordering-Key"
	hdrEventSeq     = "Webhook-Event-Seq"
	// maxTraceParent bounds the traceparent a job carries (version 00 is
	// 55 bytes); a longer one is dropped, not refused.
	maxTraceParent = 256
)

// JobID derives the delivery id from the event id, the subscription id,
// the event's EVENTS stream sequence and the time the stream stored it. It
// has the shape of a UUIDv7: the stored time's milliseconds first, so ids
// sort as their events were stored and the history index grows at its end,
// then 74 bits of a SHA-1 of the rest. A repeated fan-out of the same stored
// event yields the same ids; an event id that a robot reuses after the
// stream's duplicate window is a new event and gets new deliveries.
func JobID(eventID, subID string, seq uint64, stored time.Time) string {
	h := sha1.Sum(append(namespace[:], eventID+"\x00"+subID+"\x00"+strconv.FormatUint(seq, 10)...))
	var id uuid.UUID
	ms := uint64(max(stored.UnixMilli(), 0))
	for i := range 6 {
		id[i] = byte(ms >> (40 - 8*i))
	}
	copy(id[6:], h[:10])
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // RFC 9562 variant
	return id.String()
}

// NewJob returns the first job that delivers ev to subscription subID.
func NewJob(ev Event, subID string, now time.Time) Job {
	return Job{
		ID: JobID(ev.ID, subID, ev.Seq, ev.Timestamp), EventID: ev.ID, Event: ev.Type, EventTime: ev.Timestamp.UTC(),
		SubscriptionID: subID, CreatedAt: now.UTC(), Attempt: 1, Data: ev.Data,
	}
}

// Retry returns the job of the next attempt, due at notBefore.
func (j Job) Retry(notBefore time.Time) Job {
	j.Attempt++
	j.NotBefore = notBefore.UTC()
	return j
}

// Requeued returns the job an operator's requeue publishes. After a failed
// delivery the next attempt follows the last one and the retry policy starts
// afresh; a held (paused) job had not made its attempt yet and continues
// where it stopped.
func (j Job) Requeued(failed bool) Job {
	if failed {
		j.Base = j.Attempt
		j.Attempt++
	}
	j.NotBefore = time.Time{}
	return j
}

// MsgID returns the Nats-Msg-Id under which this job is published, so a
// repeated publish of the same step is deduplicated: the first job uses the
// delivery id, later attempts "<id>/attempt/<n>".
func (j Job) MsgID() string {
	if j.Attempt == 1 {
		return j.ID
	}
	return j.ID + "/attempt/" + strconv.Itoa(j.Attempt)
}

// Msg encodes the job as a message on subject: the data as the body, the
// rest in headers.
func (j Job) Msg(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = j.Data
	h := m.Header
	h.Set(hdrDelivery, j.ID)
	h.Set(hdrEventID, j.EventID)
	h.Set(hdrEvent, j.Event)
	h.Set(hdrEventTime, j.EventTime.UTC().Format(time.RFC3339Nano))
	h.Set(hdrSubscription, j.SubscriptionID)
	h.Set(hdrCreated, j.CreatedAt.UTC().Format(time.RFC3339Nano))
	h.Set(hdrAttempt, strconv.Itoa(j.Attempt))
	if j.Base > 0 {
		h.Set(hdrBase, strconv.Itoa(j.Base))
	}
	if !j.NotBefore.IsZero() {
		h.Set(hdrNotBefore, j.NotBefore.UTC().Format(time.RFC3339Nano))
	}
	if j.TraceParent != "" {
		h.Set(hdrTraceParent, j.TraceParent)
	}
	if j.Ordered {
		h.Set(hdrOrderingKey, j.OrderingKey)
		h.Set(hdrEventSeq, strconv.FormatUint(j.EventSeq, 10))
	}
	return m
}

// ErrBadJob is wrapped by DecodeJob's errors.
var ErrBadJob = errors.New("delivery: bad job")

// maxAttempt bounds a job's attempt number: no policy comes near it, and
// a forged header cannot overflow the next attempt's number.
const maxAttempt = 100_000

// parseTime reads a job's time header: RFC 3339, within years 0 to 9999
// once in UTC, so the job's next attempt can write it back.
func parseTime(name, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: %w", ErrBadJob, name, err)
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("%w: %s %q: year out of range", ErrBadJob, name, v)
	}
	return t, nil
}

// DecodeJob parses a job message's headers and body.
func DecodeJob(h nats.Header, data []byte) (Job, error) {
	j := Job{
		ID: h.Get(hdrDelivery), EventID: h.Get(hdrEventID), Event: h.Get(hdrEvent),
		SubscriptionID: h.Get(hdrSubscription), Data: data,
	}
	if j.ID == "" || j.EventID == "" || j.Event == "" || j.SubscriptionID == "" {
		return Job{}, fmt.Errorf("%w: missing %s, %s, %s or %s header", ErrBadJob, hdrDelivery, hdrEventID, hdrEvent, hdrSubscription)
	}
	var err error
	if j.EventTime, err = parseTime(hdrEventTime, h.Get(hdrEventTime)); err != nil {
		return Job{}, err
	}
	if j.CreatedAt, err = parseTime(hdrCreated, h.Get(hdrCreated)); err != nil {
		return Job{}, err
	}
	if j.Attempt, err = strconv.Atoi(h.Get(hdrAttempt)); err != nil || j.Attempt < 1 || j.Attempt > maxAttempt {
		return Job{}, fmt.Errorf("%w: %s %q: want a number from 1 to %d", ErrBadJob, hdrAttempt, h.Get(hdrAttempt), maxAttempt)
	}
	if v := h.Get(hdrBase); v != "" {
		if j.Base, err = strconv.Atoi(v); err != nil || j.Base < 0 || j.Base >= j.Attempt {
			return Job{}, fmt.Errorf("%w: %s %q: want 0 to attempt-1", ErrBadJob, hdrBase, v)
		}
	}
	if v := h.Get(hdrNotBefore); v != "" {
		if j.NotBefore, err = parseTime(hdrNotBefore, v); err != nil {
			return Job{}, err
		}
	}
	if v := h.Get(hdrTraceParent); len(v) <= maxTraceParent {
		j.TraceParent = v
	}
	if v := h.Get(hdrEventSeq); v != "" {
		if j.EventSeq, err = strconv.ParseUint(v, 10, 64); err != nil || j.EventSeq == 0 {
			return Job{}, fmt.Errorf("%w: %s %q: want a stream sequence", ErrBadJob, hdrEventSeq, v)
		}
		j.Ordered, j.OrderingKey = true, h.Get(hdrOrderingKey)
	}
	return j, nil
}

// Envelope returns the exact body POSTed to receivers,
// {"id","event","timestamp","data"}, with the timestamp in RFC 3339 UTC
// (seconds) and the event data copied in unchanged (surrounding white space
// trimmed). The data was checked to be one JSON object when it was routed.
func (j Job) Envelope() []byte {
	data := bytes.TrimSpace(j.Data)
	id, _ := json.Marshal(j.EventID) // strings always encode
	typ, _ := json.Marshal(j.Event)
	ts := j.EventTime.UTC().Truncate(time.Second).Format(time.RFC3339)
	b := make([]byte, 0, len(data)+len(id)+len(typ)+len(ts)+48)
	b = append(b, `{"id":`...)
	b = append(b, id...)
	b = append(b, `,"event":`...)
	b = append(b, typ...)
	b = append(b, `,"timestamp":"`...)
	b = append(b, ts...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}')
}
