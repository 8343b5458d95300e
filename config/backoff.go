package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Backoff is a retry schedule in one of two forms.
//
// The list form "5s,10s,15s" retries once per entry, each delay counted from
// the previous failure; its length is the number of retries.
//
// The exponential form "exp:INITIAL:MAX:RETRIES[:JITTER]", e.g.
// "exp:5s:1h:12:0.2", doubles the delay from INITIAL up to MAX for RETRIES
// retries, and spreads each delay by ±JITTER (a fraction from 0 to 1).
type Backoff struct {
	Delays []time.Duration // list form; nil for the exponential form

	Initial time.Duration // exponential form
	Max     time.Duration
	Retries int
	Jitter  float64
}

// maxRetries bounds either form so a typo cannot create an endless schedule.
const maxRetries = 100

// ParseBackoff parses the list or exponential form described on Backoff.
func ParseBackoff(s string) (Backoff, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "exp:"); ok {
		return parseExponential(rest)
	}
	if s == "" {
		return Backoff{Delays: []time.Duration{}}, nil // no retries
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxRetries {
		return Backoff{}, fmt.Errorf("%d retries: at most %d", len(parts), maxRetries)
	}
	b := Backoff{Delays: make([]time.Duration, 0, len(parts))}
	for _, p := range parts {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return Backoff{}, fmt.Errorf("delay %q: %w", p, err)
		}
		if d <= 0 {
			return Backoff{}, fmt.Errorf("delay %q: must be positive", p)
		}
		b.Delays = append(b.Delays, d)
	}
	return b, nil
}

func parseExponential(s string) (Backoff, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 3 || len(parts) > 4 {
		return Backoff{}, errors.New(`want "exp:INITIAL:MAX:RETRIES[:JITTER]", e.g. "exp:5s:1h:12:0.2"`)
	}
	var b Backoff
	var err error
	if b.Initial, err = time.ParseDuration(parts[0]); err != nil || b.Initial <= 0 {
		return Backoff{}, fmt.Errorf("initial delay %q: must be a positive duration", parts[0])
	}
	if b.Max, err = time.ParseDuration(parts[1]); err != nil || b.Max < b.Initial {
		return Backoff{}, fmt.Errorf("max delay %q: must be a duration of at least %s", parts[1], b.Initial)
	}
	if b.Retries, err = strconv.Atoi(parts[2]); err != nil || b.Retries < 0 || b.Retries > maxRetries {
		return Backoff{}, fmt.Errorf("retries %q: must be a whole number from 0 to %d", parts[2], maxRetries)
	}
	if len(parts) == 4 {
		if b.Jitter, err = strconv.ParseFloat(parts[3], 64); err != nil || !(b.Jitter >= 0 && b.Jitter <= 1) {
			return Backoff{}, fmt.Errorf("jitter %q: must be a number from 0 to 1", parts[3])
		}
	}
	return b, nil
}

// Exponential reports whether b is in the exponential form.
func (b Backoff) Exponential() bool { return b.Delays == nil }

// String returns b in the form ParseBackoff reads.
func (b Backoff) String() string {
	if !b.Exponential() {
		parts := make([]string, len(b.Delays))
		for i, d := range b.Delays {
			parts[i] = d.String()
		}
		return strings.Join(parts, ",")
	}
	s := fmt.Sprintf("exp:%s:%s:%d", b.Initial, b.Max, b.Retries)
	if b.Jitter > 0 {
		s += ":" + strconv.FormatFloat(b.Jitter, 'g', -1, 64)
	}
	return s
}

// Attempts is the number of attempts b allows: one plus its retries.
func (b Backoff) Attempts() int {
	if b.Exponential() {
		return b.Retries + 1
	}
	return len(b.Delays) + 1
}

// Longest is the longest time b can wait between a delivery's first attempt
// and its last: the sum of its delays, each at its cap and jitter's upper
// end. A receiver's Retry-After can stretch a retry further (up to 1h).
func (b Backoff) Longest() time.Duration {
	var total time.Duration
	if !b.Exponential() {
		for _, d := range b.Delays {
			total += d
		}
		return total
	}
	d := b.Initial
	for range b.Retries {
		total += time.Duration(float64(d) * (1 + b.Jitter))
		if d = 2 * d; d > b.Max {
			d = b.Max
		}
	}
	return total
}
