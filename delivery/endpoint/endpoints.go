package endpoint

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/delivery"
)

// Config configures Endpoints.
type Config struct {
	// MaxInFlight is the default cap on attempts in flight per subscription
	// (default 8); a subscription may set its own.
	MaxInFlight int
	// BreakerFailures is how many failures in a row open a subscription's
	// circuit breaker (default 5).
	BreakerFailures int
	// BreakerCooldown is how long an open breaker holds jobs back before it
	// lets one probe through (default 30s).
	BreakerCooldown time.Duration
	// DisableAfter disables a subscription that has failed without a single
	// success for this long (0: never).
	DisableAfter time.Duration
	// MaxHeldBack disables a subscription (reason DisabledBacklog) whose
	// open breaker held back more jobs than this in one cool-down: each of
	// them holds a slot of the consumer's shared MaxAckPending, so a dead
	// endpoint's growing backlog would otherwise stall every subscription.
	// Disabled, its deliveries are held out of the queue until an operator
	// re-enables it. 0: never.
	MaxHeldBack int
	// MaxQueued is how many jobs may wait in memory per endpoint for a slot
	// (default 256). Fewer wait when the endpoint's attempts are slow: a
	// job is queued only if the jobs ahead of it should be through within
	// its Queued.MaxWait, at the endpoint's average attempt time and cap.
	MaxQueued int
	// MaxQueuedBytes bounds the event data of the jobs waiting in memory,
	// across all endpoints (default 32 MiB).
	MaxQueuedBytes int
	// BusyDelay bounds how long a job waits when its endpoint is at its
	// cap (default 2s). The wait follows how long the endpoint's attempts
	// take (at least 5ms), spread ±50%: a fast endpoint's jobs come back
	// in milliseconds, a hanging one's in seconds.
	BusyDelay time.Duration
}

// Breaker states.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half_open"
)

// Disable reasons.
const (
	// DisabledGone: the receiver answered 410 Gone.
	DisabledGone = "endpoint_gone"
	// DisabledFailing: no success for Config.DisableAfter.
	DisabledFailing = "failing"
	// DisabledBacklog: its breaker held back more than
	// Config.MaxHeldBack jobs in one cool-down.
	DisabledBacklog = "backlog"
)

// Health is a subscription's endpoint as this replica sees it.
type Health struct {
	Breaker             string    `json:"breaker"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	InFlight            int       `json:"in_flight"`
	LastStatusCode      int       `json:"last_status_code,omitempty"`
	LastReason          string    `json:"last_reason,omitempty"`
	OpenUntil           time.Time `json:"open_until,omitzero"`
	FailingSince        time.Time `json:"failing_since,omitzero"`
}

// Endpoints tracks the health of every subscription's endpoint on this
// replica: attempts in flight against a per-subscription cap, and a circuit
// breaker. Neither is shared between replicas: with R replicas an endpoint
// sees at most R × its cap attempts at once, and up to R probes per
// cool-down. It is safe for concurrent use.
type Endpoints struct {
	cfg Config
	log zerolog.Logger
	now func() time.Time

	mu     sync.Mutex
	eps    map[string]*endpoint
	rnd    *rand.Rand
	closed bool // flushed: no job waits in memory any more
	queued int  // bytes of the jobs waiting in memory
}

type endpoint struct {
	waiters      []*waiter // jobs waiting in memory for a slot, oldest first
	inFlight     int
	slots        map[*Slot]struct{} // attempts in flight
	avg          time.Duration      // moving average of attempt durations
	gap          time.Duration      // moving average of the time between releases while jobs wait
	lastRelease  time.Time          // the last release while jobs waited; zero once none wait
	failures     int                // in a row, any failure
	breakerRun   int                // in a row, failures that count for the breaker
	state        string
	openUntil    time.Time
	probing      bool
	heldBack     int       // jobs held back by the open breaker since it last opened
	goneAt       time.Time // when the endpoint last answered 410 Gone
	lastStatus   int
	lastReason   string
	failingSince time.Time
}

// NewEndpoints returns an empty tracker.
func NewEndpoints(cfg Config, log zerolog.Logger) *Endpoints {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 8
	}
	if cfg.BreakerFailures <= 0 {
		cfg.BreakerFailures = 5
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = 30 * time.Second
	}
	if cfg.BusyDelay <= 0 {
		cfg.BusyDelay = 2 * time.Second
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 256
	}
	if cfg.MaxQueuedBytes <= 0 {
		cfg.MaxQueuedBytes = 32 << 20
	}
	return &Endpoints{
		cfg: cfg, log: log.With().Str("component", "endpoints").Logger(), now: time.Now,
		eps: map[string]*endpoint{}, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// Endpoint says which endpoint an attempt goes to.
type Endpoint struct {
	SubscriptionID string
	URL            string // only its host is logged
	// MaxInFlight is the subscription's own cap; 0 means the default.
	MaxInFlight int
	// FailingSince is the persisted start of the current run of failures,
	// so a restart does not reset the clock of DisableAfter.
	FailingSince time.Time
	// Updated is when the subscription last changed: a re-enabled one is
	// newer than its last 410.
	Updated time.Time
}

// Queued is how a job waits in memory for a slot of a full endpoint: the
// attempt that frees a slot hands it over (Done and Cancel return the
// Handoff), so a busy endpoint's slots stay busy without its jobs going
// back to JetStream and forth. At most Config.MaxQueued jobs wait per
// endpoint, and only as many as should get a slot within MaxWait; a job
// that gets no slot within MaxWait is expired instead.
type Queued struct {
	MaxWait time.Duration
	// Bytes is the size of the job's data, counted against
	// Config.MaxQueuedBytes while it waits.
	Bytes int
	// Run makes the job's attempt with the slot handed over and returns
	// what its own release hands over in turn.
	Run func(*Slot) Handoff
	// Expire puts the job back for wait; it runs on a timer's goroutine, or
	// in Flush.
	Expire func(wait time.Duration)
}

// Handoff runs a job that waited for the slot an attempt just freed, and
// returns the next one (or nil). Call it in a loop: for h != nil { h = h() }.
type Handoff func() Handoff

type waiter struct {
	q     *Queued
	tries uint64
	timer *time.Timer
}

// Slot is one attempt admitted by Acquire. Exactly one of Done or Cancel
// must be called.
type Slot struct {
	e     *Endpoints
	ep    Endpoint
	probe bool
	start time.Time
}

// Acquire admits an attempt to ep's endpoint, or says why not. When the
// endpoint is at its cap and q is given, the job is queued in memory
// (queued true: q.Run or q.Expire will be called). Otherwise it returns
// how long the job should wait: the endpoint is at its cap, or its breaker
// is open (the rest of the cool-down), or half-open with its one probe in
// flight. A job that waits makes no attempt and uses up no retry. tries is
// how often the job has been offered (JetStream's NumDelivered): a job that
// keeps finding its endpoint full waits longer each time.
func (e *Endpoints) Acquire(ep Endpoint, tries uint64, q *Queued) (slot *Slot, wait time.Duration, queued bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	s := e.get(ep)
	if s.failingSince.IsZero() && !ep.FailingSince.IsZero() {
		s.failingSince = ep.FailingSince
	}
	probe := false
	switch s.state {
	case BreakerOpen:
		if now.Before(s.openUntil) {
			s.heldBack++
			return nil, s.openUntil.Sub(now) + e.jitter(e.cfg.BreakerCooldown/10), false
		}
		s.state = BreakerHalfOpen
		e.log.Info().Str("subscription_id", ep.SubscriptionID).Str("host", delivery.Host(ep.URL)).Msg("circuit breaker half-open: probing")
		fallthrough
	case BreakerHalfOpen:
		if s.probing {
			return nil, e.jitter(max(e.cfg.BusyDelay, e.cfg.BreakerCooldown/10)), false
		}
		s.probing, probe = true, true
	}
	limit := e.limit(ep)
	if !probe && s.inFlight >= limit {
		ahead := e.drainTime(s, ep, len(s.waiters)+1, now)
		if q != nil && !e.closed && len(s.waiters) < e.cfg.MaxQueued && ahead <= q.MaxWait &&
			e.queued+q.Bytes <= e.cfg.MaxQueuedBytes {
			w := &waiter{q: q, tries: tries}
			w.timer = time.AfterFunc(q.MaxWait, func() { e.expire(ep, w) })
			s.waiters = append(s.waiters, w)
			e.queued += q.Bytes
			return nil, 0, true
		}
		// Back when the jobs ahead should be through: a fast endpoint's
		// backlog comes back once, not again and again.
		return nil, e.jitter(max(e.busyDelay(s, now, tries), min(ahead, e.cfg.BusyDelay))), false
	}
	return e.admit(s, ep, probe, now), 0, false
}

// drainTime estimates how long the k-th job waiting for a slot of s waits:
// k attempts, run its cap at a time, each as long as the endpoint's average
// or as its oldest attempt in flight has run so far (a hanging endpoint
// has no average yet); or k times the interval at which its waiting jobs
// were let in lately, if that is longer (it counts what a slot does
// besides the attempt).
func (e *Endpoints) drainTime(s *endpoint, ep Endpoint, k int, now time.Time) time.Duration {
	per := s.avg
	for slot := range s.slots {
		per = max(per, now.Sub(slot.start))
	}
	return time.Duration(k) * max(per/time.Duration(e.limit(ep)), s.gap)
}

func (e *Endpoints) limit(ep Endpoint) int {
	if ep.MaxInFlight > 0 {
		return ep.MaxInFlight
	}
	return e.cfg.MaxInFlight
}

func (e *Endpoints) admit(s *endpoint, ep Endpoint, probe bool, now time.Time) *Slot {
	s.inFlight++
	slot := &Slot{e: e, ep: ep, probe: probe, start: now}
	s.slots[slot] = struct{}{}
	return slot
}

// expire runs when a waiting job got no slot in time: unless it was handed
// a slot meanwhile, it is put back with the endpoint's busy delay.
func (e *Endpoints) expire(ep Endpoint, w *waiter) {
	e.mu.Lock()
	s := e.eps[ep.SubscriptionID]
	if s == nil {
		e.mu.Unlock()
		return // flushed
	}
	if !remove(s, w) {
		e.mu.Unlock()
		return // handed over or flushed
	}
	e.queued -= w.q.Bytes
	wait := e.jitter(e.busyDelay(s, e.now(), w.tries+1))
	e.mu.Unlock()
	w.q.Expire(wait)
}

func remove(s *endpoint, w *waiter) bool {
	for i, x := range s.waiters {
		if x == w {
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// handoff gives the oldest waiting job of s the slot just freed, if the
// breaker is closed; with the breaker open, the waiting jobs are returned
// to be expired. Called with e.mu held.
func (e *Endpoints) handoff(s *endpoint, ep Endpoint, now time.Time) (Handoff, []*waiter) {
	if s.state != BreakerClosed {
		gone := s.waiters
		s.waiters = nil
		for _, w := range gone {
			e.queued -= w.q.Bytes
		}
		return nil, gone
	}
	for len(s.waiters) > 0 && s.inFlight < e.limit(ep) {
		w := s.waiters[0]
		s.waiters = s.waiters[1:]
		e.queued -= w.q.Bytes
		// Taking w off the list under e.mu makes it ours: a timer that
		// fired meanwhile finds it gone and leaves it alone (expire).
		w.timer.Stop()
		slot := e.admit(s, ep, false, now)
		return func() Handoff { return w.q.Run(slot) }, nil
	}
	return nil, nil
}

// Flush puts back every job waiting in memory at once and queues no more
// (shutdown).
func (e *Endpoints) Flush() {
	e.mu.Lock()
	gone := e.flushLocked()
	e.mu.Unlock()
	e.expireGone(gone)
}

// flushLocked takes every waiting job off its list and stops queueing.
// Called with e.mu held.
func (e *Endpoints) flushLocked() []*waiter {
	e.closed = true
	var gone []*waiter
	for _, s := range e.eps {
		gone = append(gone, s.waiters...)
		s.waiters = nil
	}
	e.queued = 0
	return gone
}

// expireGone puts back at once jobs taken off their lists by Flush.
func (e *Endpoints) expireGone(gone []*waiter) {
	for _, w := range gone {
		w.timer.Stop()
		w.q.Expire(0)
	}
}

// minBusyDelay is the shortest wait for a slot.
const minBusyDelay = 5 * time.Millisecond

// busyDelay estimates when a slot of a full endpoint frees up: the longest
// of its attempts' average duration, the age of its oldest attempt in
// flight and minBusyDelay doubled for each earlier try (up to 100ms), within
// [minBusyDelay, BusyDelay].
func (e *Endpoints) busyDelay(s *endpoint, now time.Time, tries uint64) time.Duration {
	d := max(s.avg, min(minBusyDelay<<min(max(tries, 1)-1, 16), 100*time.Millisecond))
	for slot := range s.slots {
		d = max(d, now.Sub(slot.start))
	}
	return min(max(d, minBusyDelay), e.cfg.BusyDelay)
}

// release ends a slot's attempt: one fewer in flight, and its duration in
// the average.
func (s *Slot) release(st *endpoint, now time.Time) {
	st.inFlight--
	delete(st.slots, s)
	if s.probe {
		st.probing = false
	}
	if d := now.Sub(s.start); st.avg == 0 {
		st.avg = d
	} else {
		st.avg += (d - st.avg) / 5
	}
	// The interval between releases while jobs wait is the pace at which
	// they are let in; an idle spell before the queue formed is not.
	if len(st.waiters) == 0 {
		st.lastRelease = time.Time{}
	} else {
		if !st.lastRelease.IsZero() {
			st.gap += (now.Sub(st.lastRelease) - st.gap) / 16
		}
		st.lastRelease = now
	}
}

// jitter spreads d by ±50%.
func (e *Endpoints) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(e.rnd.Int64N(int64(d)+1))
}

func (e *Endpoints) get(ep Endpoint) *endpoint {
	s := e.eps[ep.SubscriptionID]
	if s == nil {
		s = &endpoint{state: BreakerClosed, slots: map[*Slot]struct{}{}}
		e.eps[ep.SubscriptionID] = s
	}
	return s
}

// Verdict is what an attempt's result means for its subscription.
type Verdict struct {
	// Disable is a reason to disable the subscription (DisabledGone,
	// DisabledFailing), or "".
	Disable string
	// FailingSince is the start of the current run of failures (zero after
	// a success), and FailingSinceChanged says whether the subscription's
	// persisted value should be updated: when the breaker opens, and on the
	// first success after it was set.
	FailingSince        time.Time
	FailingSinceChanged bool
}

// Cancel releases a slot whose attempt was cut off (shutdown): nothing is
// counted. It returns the job that waited for the slot, if any.
func (s *Slot) Cancel() Handoff {
	e := s.e
	e.mu.Lock()
	st, now := e.get(s.ep), e.now()
	s.release(st, now)
	h, gone := e.handoff(st, s.ep, now)
	e.mu.Unlock()
	e.expireAll(st, gone)
	return h
}

// expireAll puts back jobs that can no longer wait (the breaker opened).
func (e *Endpoints) expireAll(st *endpoint, gone []*waiter) {
	for _, w := range gone {
		// Taken off the list under e.mu, w is ours even if its timer fired.
		w.timer.Stop()
		e.mu.Lock()
		wait := e.jitter(e.busyDelay(st, e.now(), w.tries+1))
		if st.state == BreakerOpen {
			wait = st.openUntil.Sub(e.now()) + e.jitter(e.cfg.BreakerCooldown/10)
		}
		e.mu.Unlock()
		w.q.Expire(wait)
	}
}

// Done releases the slot and counts the attempt's result: a success closes
// the breaker and ends a run of failures; a run of BreakerFailures failures
// (or a failed probe) opens it for the cool-down. The Handoff runs the job
// that waited for the slot, if any: call it once the attempt is settled.
func (s *Slot) Done(res delivery.Result) (Verdict, Handoff) {
	e := s.e
	e.mu.Lock()
	v, st := s.done(res)
	h, gone := e.handoff(st, s.ep, e.now())
	if h == nil && len(gone) == 0 && st.inFlight == 0 && len(st.waiters) == 0 && st.state == BreakerClosed && st.failures == 0 {
		delete(e.eps, s.ep.SubscriptionID) // healthy is the default: keep the map small
	}
	e.mu.Unlock()
	e.expireAll(st, gone)
	return v, h
}

func (s *Slot) done(res delivery.Result) (Verdict, *endpoint) {
	e := s.e
	now := e.now()
	st := e.get(s.ep)
	s.release(st, now)
	st.lastStatus, st.lastReason = res.StatusCode, res.Reason
	log := e.log.With().Str("subscription_id", s.ep.SubscriptionID).Str("host", delivery.Host(s.ep.URL)).Logger()
	var v Verdict
	if res.Outcome == delivery.OutcomeSucceeded {
		if st.state != BreakerClosed {
			log.Info().Int("consecutive_failures", st.failures).Msg("circuit breaker closed")
		}
		v.FailingSinceChanged = !s.ep.FailingSince.IsZero() || st.state != BreakerClosed
		st.failures, st.breakerRun, st.state, st.failingSince = 0, 0, BreakerClosed, time.Time{}
		return v, st
	}
	st.failures++
	if st.failingSince.IsZero() {
		st.failingSince = res.Start
		if st.failingSince.IsZero() {
			st.failingSince = now
		}
	}
	v.FailingSince = st.failingSince
	if res.StatusCode == http.StatusGone {
		v.Disable, st.goneAt = DisabledGone, now
	} else if e.cfg.DisableAfter > 0 && now.Sub(st.failingSince) >= e.cfg.DisableAfter {
		v.Disable = DisabledFailing
	}
	if !countsForBreaker(res) {
		return v, st
	}
	st.breakerRun++
	if s.probe || (st.state == BreakerClosed && st.breakerRun >= e.cfg.BreakerFailures) {
		if st.state == BreakerClosed {
			v.FailingSinceChanged = s.ep.FailingSince.IsZero()
		}
		st.state, st.openUntil, st.heldBack = BreakerOpen, now.Add(e.cfg.BreakerCooldown), 0
		log.Warn().Int("consecutive_failures", st.failures).Str("reason", res.Reason).
			Dur("cooldown", e.cfg.BreakerCooldown).Msg("circuit breaker open")
	}
	return v, st
}

// countsForBreaker reports whether a failure says the endpoint is down or
// overloaded (timeouts, refused or broken connections, TLS and DNS errors,
// 5xx, 408, 429) rather than that it refused this one request.
func countsForBreaker(res delivery.Result) bool {
	switch {
	case res.StatusCode >= 500, res.StatusCode == http.StatusRequestTimeout, res.StatusCode == http.StatusTooManyRequests:
		return true
	case res.StatusCode != 0:
		return false
	}
	return res.Reason != delivery.ReasonBlockedTarget && res.Reason != delivery.ReasonBadRequest && res.Reason != delivery.ReasonCancelled
}

// Gone reports whether ep's endpoint answered 410 Gone since the
// subscription last changed: no new attempt should start, even before the
// subscription reads as disabled everywhere.
func (e *Endpoints) Gone(ep Endpoint) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.eps[ep.SubscriptionID]
	if st == nil || st.goneAt.IsZero() {
		return false
	}
	if ep.Updated.After(st.goneAt) { // re-enabled since
		st.goneAt = time.Time{}
		return false
	}
	return true
}

// Backlogged reports whether subscription subID's open breaker has held
// back more than MaxHeldBack jobs since it opened: the subscription should
// be disabled (DisabledBacklog) so its jobs leave the queue.
func (e *Endpoints) Backlogged(subID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.eps[subID]
	return e.cfg.MaxHeldBack > 0 && st != nil && st.state == BreakerOpen && st.heldBack > e.cfg.MaxHeldBack
}

// All returns the endpoints this replica tracks: those with attempts in
// flight or failing. An endpoint missing from it is healthy.
func (e *Endpoints) All() map[string]Health {
	e.mu.Lock()
	ids := make([]string, 0, len(e.eps))
	for id := range e.eps {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	out := make(map[string]Health, len(ids))
	for _, id := range ids {
		out[id] = e.Health(id)
	}
	return out
}

// Health returns what this replica knows of a subscription's endpoint.
func (e *Endpoints) Health(subID string) Health {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.eps[subID]
	if st == nil {
		return Health{Breaker: BreakerClosed}
	}
	h := Health{
		Breaker: st.state, ConsecutiveFailures: st.failures, InFlight: st.inFlight,
		LastStatusCode: st.lastStatus, LastReason: st.lastReason, FailingSince: st.failingSince,
	}
	if st.state == BreakerOpen {
		h.OpenUntil = st.openUntil
	}
	return h
}
