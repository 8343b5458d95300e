package subscriptions

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// Subscription is one HTTP endpoint and the event types it receives.
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
	// Secret signs every delivery: "whsec_" + base64 of random bytes.
	Secret string
	// PreviousSecrets stay valid until they expire (secret rotation).
	PreviousSecrets []PreviousSecret
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// PreviousSecret is a rotated-out secret still signing until ExpiresAt.
type PreviousSecret struct {
	Secret    string    `json:"secret"`
	ExpiresAt time.Time `json:"expires_at"`
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

// Validate checks the fields a caller sets: url, events and timeout.
func (s Subscription) Validate() error {
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%w: url %q: want an absolute http(s) URL with a host", ErrInvalid, s.URL)
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
	return nil
}

// wire is the stored JSON form (snake_case, timeout as a Go duration string).
type wire struct {
	ID              string           `json:"id"`
	URL             string           `json:"url"`
	Events          []string         `json:"events"`
	Description     string           `json:"description,omitempty"`
	Timeout         string           `json:"timeout,omitempty"`
	Active          bool             `json:"active"`
	Secret          string           `json:"secret"`
	PreviousSecrets []PreviousSecret `json:"previous_secrets,omitempty"`
	CreatedAt       time.Time        `json:"created_at"`
	UpdatedAt       time.Time        `json:"updated_at"`
}

// MarshalJSON encodes the stored form, secrets included: it is used for the
// KV record and the mirror, never for API answers.
func (s Subscription) MarshalJSON() ([]byte, error) {
	w := wire{s.ID, s.URL, s.Events, s.Description, "", s.Active, s.Secret, s.PreviousSecrets, s.CreatedAt, s.UpdatedAt}
	if s.Timeout > 0 {
		w.Timeout = s.Timeout.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes the stored form.
func (s *Subscription) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var timeout time.Duration
	if w.Timeout != "" {
		d, err := time.ParseDuration(w.Timeout)
		if err != nil {
			return fmt.Errorf("subscriptions: timeout %q: %w", w.Timeout, err)
		}
		timeout = d
	}
	*s = Subscription{ID: w.ID, URL: w.URL, Events: w.Events, Description: w.Description, Timeout: timeout, Active: w.Active,
		Secret: w.Secret, PreviousSecrets: w.PreviousSecrets, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
	return nil
}
