package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/robotlab/webhookd/delivery/signature"
)

// Header names of a delivery.
const (
	HeaderSignature    = "X-Webhook-Signature"
	HeaderEvent        = "X-Webhook-Event"
	HeaderSubscription = "X-Webhook-ID"
	HeaderDelivery     = "X-Webhook-Delivery"
	HeaderAttempt      = "X-Webhook-Attempt"
	HeaderStdID        = "webhook-id"
	HeaderStdTimestamp = "webhook-timestamp"
	HeaderStdSignature = "webhook-signature"
)

// Defaults of Config.
const (
	DefaultTolerance    = 5 * time.Minute
	DefaultMaxBodyBytes = 16 << 20
)

var (
	// ErrMissingHeader is returned when a header the check needs is absent.
	ErrMissingHeader = errors.New("receiver: missing header")
	// ErrTimestamp is returned when webhook-timestamp is not unix seconds or
	// is further from now than the tolerance.
	ErrTimestamp = errors.New("receiver: timestamp outside the tolerance")
	// ErrSignature is returned when no signature matches any secret: the
	// body was altered, or it was signed with another secret.
	ErrSignature = errors.New("receiver: signature does not match")
	// ErrBody is returned for a body that cannot be read (or is larger than
	// MaxBodyBytes) or is not a webhookd payload.
	ErrBody = errors.New("receiver: bad body")
)

// Scheme chooses which signature a Verifier checks.
type Scheme int

const (
	// SchemeEither checks the Standard Webhooks headers when
	// webhook-signature is present, else X-Webhook-Signature.
	SchemeEither Scheme = iota
	// SchemeStandard checks only the Standard Webhooks headers, including
	// the timestamp: replays older than the tolerance are refused.
	SchemeStandard
	// SchemeXWebhook checks only X-Webhook-Signature (no timestamp).
	SchemeXWebhook
)

// Config configures a Verifier.
type Config struct {
	// Secrets are the subscription's live secrets ("whsec_..."); a delivery
	// verifies when any matches. List two during a rotation. Required.
	Secrets []string
	// Scheme is the signature checked; SchemeEither by default.
	Scheme Scheme
	// Tolerance is how far webhook-timestamp may be from now; 5 minutes by
	// default.
	Tolerance time.Duration
	// MaxBodyBytes bounds the body read; 16 MiB by default (webhookd's event
	// size limit is 1 MiB unless raised).
	MaxBodyBytes int64
	// OnReject, if set, is called with each rejected request and the reason
	// (for logging), before the error answer is written.
	OnReject func(r *http.Request, err error)
	// Now returns the current time; time.Now by default.
	Now func() time.Time
}

// Event is a verified delivery: the payload and the delivery's headers.
type Event struct {
	// ID is the event id (the publisher's Nats-Msg-Id, or derived).
	ID string `json:"id"`
	// Type is the event type, e.g. "task.completed".
	Type string `json:"event"`
	// Timestamp is when the event was published.
	Timestamp time.Time `json:"timestamp"`
	// Data is the event's data, byte for byte as published.
	Data json.RawMessage `json:"data"`
	// DeliveryID is stable across retries: dedupe on it.
	DeliveryID string `json:"-"`
	// SubscriptionID is the subscription the delivery is for.
	SubscriptionID string `json:"-"`
	// Attempt is 1 for the first attempt, 2 for the first retry, …
	Attempt int `json:"-"`
}

// Verifier checks deliveries against a subscription's secrets. It is safe
// for concurrent use.
type Verifier struct {
	cfg Config
}

// New returns a Verifier. It fails when no secret is given or one is not a
// "whsec_" secret.
func New(cfg Config) (*Verifier, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("receiver: Config.Secrets: at least one secret is required")
	}
	for i, s := range cfg.Secrets {
		if _, err := signature.DecodeSecret(s); err != nil {
			return nil, fmt.Errorf("receiver: Config.Secrets[%d]: %w", i, err)
		}
	}
	if cfg.Scheme < SchemeEither || cfg.Scheme > SchemeXWebhook {
		return nil, fmt.Errorf("receiver: Config.Scheme: unknown scheme %d", cfg.Scheme)
	}
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Secrets = append([]string(nil), cfg.Secrets...)
	return &Verifier{cfg: cfg}, nil
}

// Verify checks the signature of a delivery with headers h and raw body and
// returns its decoded event. Errors wrap ErrMissingHeader, ErrTimestamp,
// ErrSignature or ErrBody.
func (v *Verifier) Verify(h http.Header, body []byte) (Event, error) {
	var err error
	switch {
	case v.cfg.Scheme == SchemeStandard,
		v.cfg.Scheme == SchemeEither && h.Get(HeaderStdSignature) != "":
		err = v.verifyStandard(h, body)
	case v.cfg.Scheme == SchemeXWebhook || h.Get(HeaderSignature) != "":
		err = v.verifyXWebhook(h, body)
	default:
		err = fmt.Errorf("%w: %s (or %s)", ErrMissingHeader, HeaderStdSignature, HeaderSignature)
	}
	if err != nil {
		return Event{}, err
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return Event{}, fmt.Errorf("%w: not a webhookd payload: %w", ErrBody, err)
	}
	ev.DeliveryID = h.Get(HeaderDelivery)
	if ev.DeliveryID == "" {
		ev.DeliveryID = h.Get(HeaderStdID)
	}
	ev.SubscriptionID = h.Get(HeaderSubscription)
	ev.Attempt, _ = strconv.Atoi(h.Get(HeaderAttempt))
	return ev, nil
}

func (v *Verifier) verifyStandard(h http.Header, body []byte) error {
	for _, name := range []string{HeaderStdID, HeaderStdTimestamp, HeaderStdSignature} {
		if h.Get(name) == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, name)
		}
	}
	id, ts, sigs := h.Get(HeaderStdID), h.Get(HeaderStdTimestamp), h.Get(HeaderStdSignature)
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not unix seconds", ErrTimestamp, HeaderStdTimestamp, ts)
	}
	now := v.cfg.Now()
	if age := now.Sub(time.Unix(unix, 0)); age > v.cfg.Tolerance || age < -v.cfg.Tolerance {
		return fmt.Errorf("%w: signed %s from now, tolerance %s", ErrTimestamp, age.Round(time.Second), v.cfg.Tolerance)
	}
	for _, s := range v.cfg.Secrets {
		if signature.VerifyStandard(s, id, ts, sigs, body, now, v.cfg.Tolerance) == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrSignature, HeaderStdSignature)
}

func (v *Verifier) verifyXWebhook(h http.Header, body []byte) error {
	sig := h.Get(HeaderSignature)
	if sig == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	}
	for _, s := range v.cfg.Secrets {
		if signature.Verify(s, body, sig) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrSignature, HeaderSignature)
}

type ctxKey struct{}

// EventFrom returns the verified event the middleware put in ctx.
func EventFrom(ctx context.Context) (Event, bool) {
	ev, ok := ctx.Value(ctxKey{}).(Event)
	return ev, ok
}

// Middleware verifies each request before next sees it. A request that
// does not verify is answered 401 (400 or 413 for a bad body) with the
// reason as text, and next is not called. next gets the event through
// EventFrom(r.Context()) and can still read the raw body from r.Body.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, v.cfg.MaxBodyBytes))
		status := http.StatusUnauthorized
		var ev Event
		if err != nil {
			status, err = http.StatusBadRequest, fmt.Errorf("%w: %w", ErrBody, err)
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				status = http.StatusRequestEntityTooLarge
			}
		} else if ev, err = v.Verify(r.Header, body); errors.Is(err, ErrBody) {
			status = http.StatusBadRequest
		}
		if err != nil {
			if v.cfg.OnReject != nil {
				v.cfg.OnReject(r, err)
			}
			http.Error(w, err.Error(), status)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, ev)))
	})
}
