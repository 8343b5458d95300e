package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/robotlab/webhookd/delivery"
)

// Record is one audit record: an attempt, or a verdict without an attempt
// (rejected, cancelled, paused, pending after a requeue). Records are keyed
// by (DeliveryID, Attempt or Status), so applying one twice is harmless.
// Records stay small whatever the event's size: they never copy the event
// data (see JobSeq), and their free-text fields are bounded (Bound).
type Record struct {
	DeliveryID     string          `json:"delivery_id"`
	EventID        string          `json:"event_id"`
	Event          string          `json:"event"`
	SubscriptionID string          `json:"subscription_id,omitempty"`
	URL            string          `json:"url,omitempty"`
	Status         delivery.Status `json:"status"` // the delivery's status after this record
	Reason         string          `json:"reason,omitempty"`
	At             time.Time       `json:"at"`
	Replica        string          `json:"replica,omitempty"`
	// Attempt is set on attempt records.
	Attempt *AttemptInfo `json:"attempt,omitempty"`
	// JobSeq is the AUDIT stream sequence of the job kept with a record
	// after which the delivery leaves the queue unsent (failed, paused), so
	// it can be sent again (Recorder.Publish's keep).
	JobSeq uint64 `json:"job_seq,omitempty"`
	// CreatedAt is when the delivery was created (the job's creation time).
	CreatedAt time.Time `json:"created_at"`
}

// AttemptInfo is one HTTP attempt as the audit trail keeps it.
type AttemptInfo struct {
	Attempt     int              `json:"attempt"`
	MaxAttempts int              `json:"max_attempts"`
	At          time.Time        `json:"at"`
	URL         string           `json:"url,omitempty"` // where this attempt went
	StatusCode  int              `json:"status_code,omitempty"`
	DurationMS  int64            `json:"duration_ms"`
	Outcome     delivery.Outcome `json:"outcome"`
	Reason      string           `json:"reason"`
	Error       string           `json:"error,omitempty"`
	Response    string           `json:"response,omitempty"` // first 1 KiB of the body
	NextRetryMS int64            `json:"next_retry_ms,omitempty"`
	Replica     string           `json:"replica,omitempty"`
}

// NewAttemptInfo returns attempt r as the audit trail keeps it: attempt n of
// maxAttempts, made to url.
func NewAttemptInfo(r delivery.Result, n, maxAttempts int, url string) *AttemptInfo {
	a := &AttemptInfo{
		Attempt: n, MaxAttempts: maxAttempts, At: r.Start.UTC(), URL: url, StatusCode: r.StatusCode,
		DurationMS: r.Duration.Milliseconds(), Outcome: r.Outcome, Reason: r.Reason, Response: string(r.Response),
	}
	if r.Err != nil {
		a.Error = r.Err.Error()
	}
	return a
}

// maxText bounds the free-text fields of a record (reasons, errors).
const maxText = 512

// Bound cuts the record's free-text fields to their limits, so a hostile
// receiver or event cannot make a record large.
func (r *Record) Bound() {
	r.Reason = truncate(r.Reason, maxText)
	r.URL = truncate(r.URL, 4<<10)
	if a := r.Attempt; a != nil {
		a.Reason = truncate(a.Reason, maxText)
		a.Error = truncate(a.Error, maxText)
		a.Response = truncate(a.Response, delivery.ResponseKeep)
		a.URL = truncate(a.URL, 4<<10)
	}
}

// Redacted stands in for a signature in RequestHeaders.
const Redacted = "[redacted]"

// RequestHeaders returns the headers attempt a of delivery d was sent with.
// They are derived from the delivery and the attempt (its number and start
// time) rather than stored, so records stay small; the signatures are
// Redacted. The User-Agent, a setting of the replica, is left out.
func RequestHeaders(d Delivery, a AttemptInfo) map[string]string {
	return map[string]string{
		"Content-Type":                   "application/json",
		delivery.HeaderSignature:         Redacted,
		delivery.HeaderEvent:             d.Event,
		delivery.HeaderSubscription:      d.SubscriptionID,
		delivery.HeaderDelivery:          d.ID,
		delivery.HeaderAttempt:           strconv.Itoa(a.Attempt),
		delivery.HeaderStandardID:        d.ID,
		delivery.HeaderStandardTimestamp: strconv.FormatInt(a.At.Unix(), 10),
		delivery.HeaderStandardSignature: Redacted,
	}
}

// truncate cuts s to at most n bytes at a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// DecodeRecords appends to recs the records of one AUDIT message, given its
// headers and body: one record (format 1, no HeaderAudit) or a batch
// (format 2, one record per line). A line it cannot decode is left out and
// reported in the error, after the others are appended; a message of a
// format it does not know adds nothing.
func DecodeRecords(recs []Record, h nats.Header, data []byte) ([]Record, error) {
	switch v := h.Get(HeaderAudit); v {
	case "":
		var rec Record
		if err := json.Unmarshal(data, &rec); err != nil {
			return recs, fmt.Errorf("decode record: %w", err)
		}
		if rec.DeliveryID == "" {
			return recs, errors.New("decode record: no delivery id")
		}
		return append(recs, rec), nil
	case strconv.Itoa(FormatBatch):
	default:
		return recs, fmt.Errorf("record format %q: this build reads formats 1 and %d", truncate(v, 16), FormatBatch)
	}
	var errs []error
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			errs = append(errs, fmt.Errorf("decode a batch's record: %w", err))
			continue
		}
		if rec.DeliveryID == "" {
			errs = append(errs, errors.New("decode a batch's record: no delivery id"))
			continue
		}
		recs = append(recs, rec)
	}
	return recs, errors.Join(errs...)
}
