package delivery

import (
	"strconv"
	"time"
)

// Status is a delivery's state.
type Status string

// Delivery statuses. Pending, retrying and paused deliveries are still
// queued; the others are final until a manual redelivery.
const (
	StatusPending   Status = "pending"
	StatusRetrying  Status = "retrying"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusPaused    Status = "paused"
	StatusCancelled Status = "cancelled"
	// StatusRejected marks an event that was not routed (e.g. its body is
	// not a JSON object); it has no subscription.
	StatusRejected Status = "rejected"
)

// ParseStatus returns the status named s, and false for an unknown name.
func ParseStatus(s string) (Status, bool) {
	switch st := Status(s); st {
	case StatusPending, StatusRetrying, StatusSucceeded, StatusFailed, StatusPaused, StatusCancelled, StatusRejected:
		return st, true
	}
	return "", false
}

// Final reports whether no further attempt will be made without an operator.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusRejected:
		return true
	}
	return false
}

// Record is one audit record: an attempt, or a verdict without an attempt
// (rejected, cancelled, paused, pending after a requeue). Records are keyed
// by (DeliveryID, Attempt or Status), so applying one twice is harmless.
// Records stay small whatever the event's size: they never copy the event
// data (see JobSeq), and their free-text fields are bounded (Bound).
type Record struct {
	DeliveryID     string    `json:"delivery_id"`
	EventID        string    `json:"event_id"`
	Event          string    `json:"event"`
	SubscriptionID string    `json:"subscription_id,omitempty"`
	URL            string    `json:"url,omitempty"`
	Status         Status    `json:"status"` // the delivery's status after this record
	Reason         string    `json:"reason,omitempty"`
	At             time.Time `json:"at"`
	Replica        string    `json:"replica,omitempty"`
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
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	At          time.Time `json:"at"`
	URL         string    `json:"url,omitempty"` // where this attempt went
	StatusCode  int       `json:"status_code,omitempty"`
	DurationMS  int64     `json:"duration_ms"`
	Outcome     Outcome   `json:"outcome"`
	Reason      string    `json:"reason"`
	Error       string    `json:"error,omitempty"`
	Response    string    `json:"response,omitempty"` // first 1 KiB of the body
	NextRetryMS int64     `json:"next_retry_ms,omitempty"`
	Replica     string    `json:"replica,omitempty"`
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
		a.Response = truncate(a.Response, responseKeep)
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
		"Content-Type":          "application/json",
		HeaderSignature:         Redacted,
		HeaderEvent:             d.Event,
		HeaderSubscription:      d.SubscriptionID,
		HeaderDelivery:          d.ID,
		HeaderAttempt:           strconv.Itoa(a.Attempt),
		HeaderStandardID:        d.ID,
		HeaderStandardTimestamp: strconv.FormatInt(a.At.Unix(), 10),
		HeaderStandardSignature: Redacted,
	}
}
