package delivery

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Policy is a retry schedule: which attempt is the last, and how long to wait
// after a failed attempt before the next. Attempts are numbered from 1.
// A Policy is safe for concurrent use.
type Policy struct {
	delays []time.Duration // list form

	initial, max time.Duration // exponential form
	retries      int
	jitter       float64

	mu  sync.Mutex
	rnd *rand.Rand
}

// Schedule returns a policy that retries once per delay, each counted from
// the previous failure: Schedule(5s, 10s, 15s) makes up to 4 attempts.
func Schedule(delays ...time.Duration) *Policy {
	return &Policy{delays: append([]time.Duration{}, delays...)}
}

// Exponential returns a policy of retries retries whose delay starts at
// initial and doubles up to max, each spread by ±jitter (0 to 1) using rnd.
// A nil rnd uses a randomly seeded source.
func Exponential(initial, max time.Duration, retries int, jitter float64, rnd *rand.Rand) *Policy {
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Policy{initial: initial, max: max, retries: retries, jitter: jitter, rnd: rnd}
}

// MaxAttempts is the number of attempts, first one included.
func (p *Policy) MaxAttempts() int {
	if p.delays != nil {
		return len(p.delays) + 1
	}
	return p.retries + 1
}

// Next returns the delay before attempt n+1 after attempt n failed, and
// false when attempt n was the last.
func (p *Policy) Next(n int) (time.Duration, bool) {
	if n < 1 || n >= p.MaxAttempts() {
		return 0, false
	}
	if p.delays != nil {
		return p.delays[n-1], true
	}
	d := p.initial
	for i := 1; i < n && d < p.max; i++ {
		d *= 2
	}
	d = min(d, p.max)
	if p.jitter > 0 {
		p.mu.Lock()
		f := 1 + p.jitter*(2*p.rnd.Float64()-1)
		p.mu.Unlock()
		d = time.Duration(float64(d) * f)
	}
	return d, true
}

// Decision is what to do with a job after an attempt.
type Decision struct {
	Status Status        // the delivery's status after the attempt
	After  time.Duration // delay before the next attempt, when Status is StatusRetrying
}

// Decide maps the result of attempt n to the delivery's next status:
// succeeded, retrying after the policy's delay (or the receiver's
// Retry-After, whichever is longer), or failed after the last attempt. A
// transform error (ReasonTransform) fails at once: retrying would fail the
// same way.
func (p *Policy) Decide(res Result, n int) Decision {
	if res.Outcome == OutcomeSucceeded {
		return Decision{Status: StatusSucceeded}
	}
	if res.Reason == ReasonTransform {
		return Decision{Status: StatusFailed}
	}
	if d, ok := p.Next(n); ok {
		return Decision{Status: StatusRetrying, After: max(d, res.RetryAfter)}
	}
	return Decision{Status: StatusFailed}
}
