package subscriptions

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"strconv"
	"time"
	"unicode"

	"github.com/robotlab/webhookd/subscriptions/expr"
)

// Limits of the fields a caller sets.
const (
	// MaxURLBytes bounds a subscription's URL.
	MaxURLBytes = 2048
	// MaxInFlightLimit bounds MaxInFlight.
	MaxInFlightLimit = 1000
	// maxReasonBytes bounds DisabledReason.
	maxReasonBytes = 128
)

// Subscription is one HTTP endpoint and the event types it receives.
//
// Its default JSON form (MarshalJSON) never carries the secrets; the store
// keeps them in a separate stored form, encrypted when a key is configured.
type Subscription struct {
	ID          string
	URL         string
	Events      []string // event types or patterns ("task.*", "robot.>")
	Description string
	// Timeout of one attempt; zero means the dispatcher's default.
	Timeout time.Duration
	// Active is false while the subscription is paused or disabled.
	Active bool
	// MaxInFlight caps the attempts in flight to this endpoint; zero means
	// the dispatcher's global default.
	MaxInFlight int
	// DisabledReason says why the dispatcher disabled the subscription
	// ("endpoint_gone", "failing"); empty unless disabled. A disabled
	// subscription is not active; Resume clears it.
	DisabledReason string
	// DisabledAt is when the dispatcher disabled it; zero unless disabled.
	DisabledAt time.Time
	// FailingSince is when the current run of failed attempts began; zero
	// while the endpoint is healthy.
	FailingSince time.Time
	// Headers are static headers added to every request (API keys and the
	// like), sorted by name. Like the secrets, they are not in the default
	// JSON form and are sealed at rest when a key is configured.
	Headers []Header
	// RetryPolicy overrides the dispatcher's retry schedule for this
	// subscription's deliveries, in config.ParseBackoff's form ("5s,1m",
	// "exp:5s:1h:12:0.2"); empty means the default. See Retry.
	RetryPolicy string
	// Filter, Transform and OrderingKey are CEL expressions over the event
	// (package expr): only events the filter gives true for are delivered;
	// the transform's object is sent instead of the envelope; deliveries
	// with the same ordering key start one at a time, in event order. Empty
	// means none. The admin API compiles them before it stores them.
	Filter      string
	Transform   string
	OrderingKey string
	// Labels are short key=value tags; OwnerLabel names the team that owns
	// the subscription (see ValidateLabels). Nil when there are none.
	Labels map[string]string
	// Secret signs every delivery: "whsec_" + base64 of random bytes.
	Secret string
	// PreviousSecrets stay valid until they expire (secret rotation).
	PreviousSecrets []PreviousSecret
	CreatedAt       time.Time
	UpdatedAt       time.Time
	// Listen marks an ephemeral subscription of `webhookctl listen`: it
	// has no URL, and the router makes no delivery for it but publishes
	// each signed request for the listener's stream (see listen.go).
	Listen bool
	// ExpiresAt is when a listen subscription that nobody refreshed is
	// deleted; zero for every other subscription.
	ExpiresAt time.Time
}

// PreviousSecret is a rotated-out secret still signing until ExpiresAt.
type PreviousSecret struct {
	Secret    string
	ExpiresAt time.Time
}

// MarshalJSON encodes only the expiry: secrets never leave through the
// default JSON form.
func (p PreviousSecret) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ExpiresAt time.Time `json:"expires_at"`
	}{p.ExpiresAt})
}

// Matches reports whether the subscription names eventType.
func (s Subscription) Matches(eventType string) bool {
	for _, p := range s.Events {
		if MatchPattern(p, eventType) {
			return true
		}
	}
	return false
}

// LiveSecrets returns the secrets that sign at now, newest first.
func (s Subscription) LiveSecrets(now time.Time) []string {
	out := []string{s.Secret}
	for _, p := range s.PreviousSecrets {
		if now.Before(p.ExpiresAt) {
			out = append(out, p.Secret)
		}
	}
	return out
}

// Disabled reports whether the dispatcher disabled the subscription (as
// opposed to an operator pausing it).
func (s Subscription) Disabled() bool { return s.DisabledReason != "" }

// Resume makes the subscription active again, whether it was paused or
// disabled, and forgets its failure run, so the endpoint starts afresh.
func (s *Subscription) Resume() {
	s.Active = true
	s.DisabledReason, s.DisabledAt, s.FailingSince = "", time.Time{}, time.Time{}
}

// Validate checks the fields a caller sets (url, events, timeout,
// max in flight, headers, retry policy, the expressions' sizes; the admin
// API compiles the expressions) and the consistency of the health fields. Its errors wrap
// ErrInvalid.
func (s Subscription) Validate() error {
	if err := s.validateKind(); err != nil {
		return err
	}
	if !s.Listen {
		if err := ValidateURL(s.URL); err != nil {
			return err
		}
	}
	if len(s.Events) == 0 {
		return fmt.Errorf("%w: events: want at least one event type or pattern", ErrInvalid)
	}
	for _, e := range s.Events {
		if !ValidPattern(e) {
			return fmt.Errorf("%w: events: %q is not an event type or pattern", ErrInvalid, e)
		}
	}
	if s.Timeout < 0 || s.Timeout > 5*time.Minute {
		return fmt.Errorf("%w: timeout %s: want 0 (default) to 5m", ErrInvalid, s.Timeout)
	}
	if s.MaxInFlight < 0 || s.MaxInFlight > MaxInFlightLimit {
		return fmt.Errorf("%w: max_in_flight %d: want 0 (default) to %d", ErrInvalid, s.MaxInFlight, MaxInFlightLimit)
	}
	if err := validateHeaders(s.Headers); err != nil {
		return err
	}
	if _, err := ParseRetryPolicy(s.RetryPolicy); err != nil {
		return err
	}
	for _, e := range []struct {
		field expr.Field
		src   string
	}{{expr.Filter, s.Filter}, {expr.Transform, s.Transform}, {expr.OrderingKey, s.OrderingKey}} {
		if len(e.src) > expr.MaxSourceBytes {
			return fmt.Errorf("%w: %s: %d bytes: want at most %d", ErrInvalid, e.field, len(e.src), expr.MaxSourceBytes)
		}
	}
	if err := ValidateLabels(s.Labels); err != nil {
		return err
	}
	if s.DisabledReason != "" {
		if err := validReason(s.DisabledReason); err != nil {
			return err
		}
		if s.Active {
			return fmt.Errorf("%w: disabled_reason %q on an active subscription: resume clears it", ErrInvalid, s.DisabledReason)
		}
	}
	return nil
}

// ValidateURL checks a subscription URL: at most MaxURLBytes, http or https,
// a host, a port from 1 to 65535 when one is given, and no user info
// (credentials in URLs end up in logs). Its errors wrap ErrInvalid and do not
// repeat user info.
func ValidateURL(raw string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: url: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if raw == "" {
		return bad("required")
	}
	if len(raw) > MaxURLBytes {
		return bad("%d bytes: want at most %d", len(raw), MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, user info included: keep only the cause.
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err
		}
		return bad("not a URL: %v", err)
	}
	if u.User != nil {
		return bad("must not carry user info (user:password@): credentials in URLs end up in logs; use a secret path or the signature")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad("scheme %q: want http or https", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return bad("%q: want an absolute URL with a host, like https://example.com/hook", raw)
	}
	// SplitHostPort fails when no port is given; "host:" gives an empty one.
	if _, p, err := net.SplitHostPort(u.Host); err == nil {
		n, perr := strconv.Atoi(p)
		if perr != nil || n < 1 || n > 65535 {
			return bad("port %q: want 1 to 65535", p)
		}
	}
	return nil
}

// validReason checks a disabled reason: a short printable word or phrase.
func validReason(r string) error {
	if r == "" || len(r) > maxReasonBytes {
		return fmt.Errorf("%w: disabled_reason: want 1 to %d bytes", ErrInvalid, maxReasonBytes)
	}
	for _, c := range r {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("%w: disabled_reason %q: want printable characters", ErrInvalid, r)
		}
	}
	return nil
}

// public is the default JSON form: every field but the secrets and the
// custom headers.
type public struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
	Active      bool     `json:"active"`
	MaxInFlight int      `json:"max_in_flight,omitempty"`
	RetryPolicy string   `json:"retry_policy,omitempty"`
	Filter      string   `json:"filter,omitempty"`
	Transform   string   `json:"transform,omitempty"`
	OrderingKey string   `json:"ordering_key,omitempty"`
	// Labels are absent from records written before labels existed.
	Labels         map[string]string `json:"labels,omitempty"`
	DisabledReason string            `json:"disabled_reason,omitempty"`
	DisabledAt     time.Time         `json:"disabled_at,omitzero"`
	FailingSince   time.Time         `json:"failing_since,omitzero"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	Listen         bool              `json:"listen,omitempty"`
	ExpiresAt      time.Time         `json:"expires_at,omitzero"`
}

// publicOf returns sub's fields but the secrets.
func publicOf(sub Subscription) public {
	p := public{
		ID: sub.ID, URL: sub.URL, Events: sub.Events, Description: sub.Description, Active: sub.Active,
		MaxInFlight: sub.MaxInFlight, RetryPolicy: sub.RetryPolicy, DisabledReason: sub.DisabledReason, DisabledAt: sub.DisabledAt,
		FailingSince: sub.FailingSince, CreatedAt: sub.CreatedAt, UpdatedAt: sub.UpdatedAt,
		Filter: sub.Filter, Transform: sub.Transform, OrderingKey: sub.OrderingKey,
		Labels: maps.Clone(sub.Labels),
		Listen: sub.Listen, ExpiresAt: sub.ExpiresAt,
	}
	if sub.Timeout > 0 {
		p.Timeout = sub.Timeout.String()
	}
	return p
}

// subscription returns the subscription p describes, without secrets.
func (p public) subscription() (Subscription, error) {
	timeout, err := parseTimeout(p.Timeout)
	if err != nil {
		return Subscription{}, err
	}
	return Subscription{
		ID: p.ID, URL: p.URL, Events: p.Events, Description: p.Description, Timeout: timeout, Active: p.Active,
		MaxInFlight: p.MaxInFlight, RetryPolicy: p.RetryPolicy, DisabledReason: p.DisabledReason, DisabledAt: p.DisabledAt,
		FailingSince: p.FailingSince, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
		Filter: p.Filter, Transform: p.Transform, OrderingKey: p.OrderingKey,
		Labels: p.Labels,
		Listen: p.Listen, ExpiresAt: p.ExpiresAt,
	}, nil
}

// MarshalJSON encodes the subscription without its secrets and custom
// headers, so logging or
// printing one as JSON cannot leak them. The store uses its own stored form.
func (s Subscription) MarshalJSON() ([]byte, error) {
	return json.Marshal(publicOf(s))
}

// UnmarshalJSON decodes the form MarshalJSON writes; the secrets stay empty.
func (s *Subscription) UnmarshalJSON(b []byte) error {
	var p public
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	sub, err := p.subscription()
	if err != nil {
		return err
	}
	*s = sub
	return nil
}

func parseTimeout(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("subscriptions: timeout %q: %w", v, err)
	}
	return d, nil
}
