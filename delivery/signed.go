package delivery

import (
	"net/http"
	"strconv"
	"time"

	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/subscriptions"
)

// setHeaders sets on h the headers an attempt of job to sub at t carries
// with body: Content-Type, sub's custom headers, and the wire contract's
// (both signature schemes, signed with sub's live secrets at t).
func setHeaders(h http.Header, job Job, sub subscriptions.Subscription, body []byte, t time.Time) error {
	secrets := sub.LiveSecrets(t)
	std, err := signature.SignStandard(secrets, job.ID, t, body)
	if err != nil {
		return err
	}
	h.Set("Content-Type", "application/json")
	for _, c := range sub.Headers { // validated: none of the headers below
		h.Set(c.Name, c.Value)
	}
	h.Set(HeaderSignature, signature.SignAll(secrets, body))
	h.Set(HeaderEvent, job.Event)
	h.Set(HeaderSubscription, sub.ID)
	h.Set(HeaderDelivery, job.ID)
	h.Set(HeaderAttempt, strconv.Itoa(job.Attempt))
	h.Set(HeaderStandardID, job.ID)
	h.Set(HeaderStandardTimestamp, strconv.FormatInt(t.Unix(), 10))
	h.Set(HeaderStandardSignature, std)
	return nil
}

// Signed is the request an attempt would send, for a listener (`webhookctl
// listen`) to print or forward: its exact body and headers (User-Agent
// aside), signed as a real delivery is. Its JSON form is what the admin
// API's listener stream carries (client.ListenEvent); Body is base64 there,
// so the bytes the signatures cover arrive unchanged.
type Signed struct {
	DeliveryID string      `json:"delivery_id"`
	EventID    string      `json:"event_id"`
	Event      string      `json:"event"`
	Headers    http.Header `json:"headers"`
	Body       []byte      `json:"body"`
}

// Sign returns the request job's attempt to sub at t would send. It fails
// only when one of sub's secrets is malformed.
func Sign(job Job, sub subscriptions.Subscription, t time.Time) (Signed, error) {
	body := job.Envelope()
	h := http.Header{}
	if err := setHeaders(h, job, sub, body, t); err != nil {
		return Signed{}, err
	}
	return Signed{DeliveryID: job.ID, EventID: job.EventID, Event: job.Event, Headers: h, Body: body}, nil
}
