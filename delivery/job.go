package delivery

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Job is one event to be delivered to one subscription: the DELIVERIES
// message body.
type Job struct {
	// ID is the delivery id: JobID(EventID, SubscriptionID). It is the job's
	// Nats-Msg-Id and the X-Webhook-Delivery header.
	ID             string          `json:"id"`
	EventID        string          `json:"event_id"`
	Event          string          `json:"event"`
	SubscriptionID string          `json:"subscription_id"`
	Payload        json.RawMessage `json:"payload"` // the exact body to POST
	CreatedAt      time.Time       `json:"created_at"`
	// AttemptBase is the number of attempts made before this job was
	// requeued by an operator (redeliver, replay, resume): attempt numbers
	// continue from it and the retry policy starts afresh.
	AttemptBase int `json:"attempt_base,omitempty"`
}

// JobID derives the delivery id from the event id and the subscription id
// (UUIDv5), so a repeated fan-out of the same event yields the same ids.
func JobID(eventID, subID string) string {
	return uuid.NewSHA1(namespace, []byte(eventID+"\x00"+subID)).String()
}

// NewJob returns the job that delivers ev to subscription subID.
func NewJob(ev Event, subID string, now time.Time) (Job, error) {
	p, err := ev.Payload()
	if err != nil {
		return Job{}, err
	}
	return Job{ID: JobID(ev.ID, subID), EventID: ev.ID, Event: ev.Type, SubscriptionID: subID, Payload: p, CreatedAt: now.UTC()}, nil
}

// DecodeJob parses a DELIVERIES message body.
func DecodeJob(b []byte) (Job, error) {
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return Job{}, fmt.Errorf("delivery: decode job: %w", err)
	}
	if j.ID == "" || j.SubscriptionID == "" || len(j.Payload) == 0 {
		return Job{}, fmt.Errorf("delivery: decode job: missing id, subscription_id or payload")
	}
	return j, nil
}
