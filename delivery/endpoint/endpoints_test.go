package endpoint

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func failed(code int, reason string) delivery.Result {
	return delivery.Result{Outcome: delivery.OutcomeFailed, StatusCode: code, Reason: reason}
}

var ok = delivery.Result{Outcome: delivery.OutcomeSucceeded, StatusCode: 200, Reason: delivery.ReasonSucceeded}

// acquire asks for a slot without queueing.
func acquire(e *Endpoints, ep Endpoint, tries uint64) (*Slot, time.Duration) {
	s, wait, _ := e.Acquire(ep, tries, nil)
	return s, wait
}

// verdict releases s with r and returns the verdict.
func verdict(s *Slot, r delivery.Result) Verdict {
	v, _ := s.Done(r)
	return v
}

func newTestEndpoints(t *testing.T, cfg Config) (*Endpoints, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	e := NewEndpoints(cfg, zerolog.New(zerolog.NewTestWriter(t)))
	e.now = c.now
	return e, c
}

func TestEndpointCapDefersWithoutCounting(t *testing.T) {
	t.Parallel()
	e, clk := newTestEndpoints(t, Config{MaxInFlight: 2, BusyDelay: time.Second})
	ep := Endpoint{SubscriptionID: "s1", URL: "https://user:pw@hooks.example.com/x?token=t"}
	a, _ := acquire(e, ep, 0)
	b, _ := acquire(e, ep, 0)
	require.NotNil(t, a)
	require.NotNil(t, b)
	full, wait := acquire(e, ep, 0)
	require.Nil(t, full, "the third attempt waits")
	require.LessOrEqual(t, wait, 8*time.Millisecond, "slots just taken: a short wait")
	_, wait = acquire(e, ep, 5)
	require.GreaterOrEqual(t, wait, 40*time.Millisecond, "a job that keeps finding it full waits longer each time")
	clk.advance(400 * time.Millisecond)
	_, wait = acquire(e, ep, 0)
	require.GreaterOrEqual(t, wait, 200*time.Millisecond, "the slots are held long: wait about as long")
	require.LessOrEqual(t, wait, 600*time.Millisecond)
	clk.advance(time.Hour)
	_, wait = acquire(e, ep, 0)
	require.LessOrEqual(t, wait, 1500*time.Millisecond, "at most BusyDelay, ±50%")
	other, _ := acquire(e, Endpoint{SubscriptionID: "s2"}, 0)
	require.NotNil(t, other, "another subscription has its own cap")
	own, _ := acquire(e, Endpoint{SubscriptionID: "s1", MaxInFlight: 3}, 0)
	require.NotNil(t, own, "a subscription's own cap wins over the default")
	require.Equal(t, 3, e.Health("s1").InFlight)
	_ = own.Cancel()
	_ = verdict(a, ok)
	c, _ := acquire(e, ep, 0)
	require.NotNil(t, c, "a freed slot is taken again")
	_ = b.Cancel()
	_ = c.Cancel()
	_ = verdict(other, ok)
	require.Zero(t, e.Health("s1").InFlight)
	require.Equal(t, "hooks.example.com", delivery.Host(ep.URL), "logs carry the host only, never credentials, path or query")
}

func TestBreakerOpensProbesOnceAndCloses(t *testing.T) {
	t.Parallel()
	e, clk := newTestEndpoints(t, Config{BreakerFailures: 3, BreakerCooldown: 10 * time.Second})
	ep := Endpoint{SubscriptionID: "s1"}
	fail := func(r delivery.Result) Verdict {
		s, _ := acquire(e, ep, 0)
		require.NotNil(t, s)
		return verdict(s, r)
	}
	fail(failed(0, delivery.ReasonTimeout))
	fail(failed(404, "http_404")) // the receiver is up: a 4xx does not count for the breaker
	fail(failed(0, delivery.ReasonConnectionRefused))
	require.Equal(t, BreakerClosed, e.Health("s1").Breaker)
	v := fail(failed(503, "http_503"))
	h := e.Health("s1")
	require.Equal(t, BreakerOpen, h.Breaker, "three breaker failures in a row")
	require.Equal(t, 4, h.ConsecutiveFailures)
	require.Equal(t, 503, h.LastStatusCode)
	require.True(t, v.FailingSinceChanged, "opening persists when the failures began")
	require.Equal(t, clk.t, v.FailingSince)

	s, wait := acquire(e, ep, 0)
	require.Nil(t, s, "open: jobs wait and are not attempted")
	require.GreaterOrEqual(t, wait, 10*time.Second, "the rest of the cool-down")
	require.LessOrEqual(t, wait, 11500*time.Millisecond, "plus up to 15% jitter")

	clk.advance(10 * time.Second)
	probe, _ := acquire(e, ep, 0)
	require.NotNil(t, probe, "after the cool-down one probe goes through")
	require.Equal(t, BreakerHalfOpen, e.Health("s1").Breaker)
	second, _ := acquire(e, ep, 0)
	require.Nil(t, second, "only one probe at a time")
	_ = verdict(probe, failed(0, delivery.ReasonTimeout))
	require.Equal(t, BreakerOpen, e.Health("s1").Breaker, "a failed probe opens it again")
	blocked, _ := acquire(e, ep, 0)
	require.Nil(t, blocked, "for a whole new cool-down")

	clk.advance(10 * time.Second)
	probe, _ = acquire(e, ep, 0)
	require.NotNil(t, probe)
	v = verdict(probe, ok)
	require.True(t, v.FailingSinceChanged, "the first success clears the persisted start")
	require.True(t, v.FailingSince.IsZero())
	h = e.Health("s1")
	require.Equal(t, BreakerClosed, h.Breaker)
	require.Zero(t, h.ConsecutiveFailures)
	again, _ := acquire(e, ep, 0)
	require.NotNil(t, again)
	_ = again.Cancel()
}

func TestGoneAndFailingTooLongDisable(t *testing.T) {
	t.Parallel()
	e, clk := newTestEndpoints(t, Config{DisableAfter: time.Hour})
	s, _ := acquire(e, Endpoint{SubscriptionID: "gone"}, 0)
	require.Equal(t, DisabledGone, verdict(s, failed(410, "http_410")).Disable)

	// A restart: the run of failures began before it (persisted).
	began := clk.t.Add(-50 * time.Minute)
	ep := Endpoint{SubscriptionID: "flaky", FailingSince: began}
	s, _ = acquire(e, ep, 0)
	v := verdict(s, failed(500, "http_500"))
	require.Empty(t, v.Disable)
	require.Equal(t, began, v.FailingSince, "the clock did not restart")
	clk.advance(10 * time.Minute)
	s, _ = acquire(e, ep, 0)
	require.Equal(t, DisabledFailing, verdict(s, failed(0, delivery.ReasonTimeout)).Disable, "an hour without a success")

	s, _ = acquire(e, Endpoint{SubscriptionID: "fine"}, 0)
	require.Empty(t, verdict(s, ok).Disable)
}

func TestJobsWaitInMemoryForABusyEndpoint(t *testing.T) {
	t.Parallel()
	e, _ := newTestEndpoints(t, Config{MaxInFlight: 1, MaxQueued: 1, BreakerFailures: 1, BreakerCooldown: time.Minute})
	ep := Endpoint{SubscriptionID: "s1"}
	first, _ := acquire(e, ep, 1)
	require.NotNil(t, first)

	var ran []string
	expired := make(chan time.Duration, 4)
	queue := func(name string, maxWait time.Duration) bool {
		_, _, queued := e.Acquire(ep, 1, &Queued{
			MaxWait: maxWait,
			Run: func(s *Slot) Handoff {
				ran = append(ran, name)
				_, next := s.Done(ok)
				return next
			},
			Expire: func(wait time.Duration) { expired <- wait },
		})
		return queued
	}
	require.True(t, queue("a", time.Minute))
	require.False(t, queue("b", time.Minute), "at most MaxQueued jobs wait")

	_, next := first.Done(ok)
	require.NotNil(t, next, "the freed slot goes to the waiting job")
	for next != nil {
		next = next()
	}
	require.Equal(t, []string{"a"}, ran)
	require.Zero(t, e.Health("s1").InFlight)

	// A job that gets no slot in time goes back.
	busy, _ := acquire(e, ep, 1)
	require.True(t, queue("c", 10*time.Millisecond))
	select {
	case <-expired:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting job never expired")
	}
	// The breaker opening puts back every waiting job: none runs past it.
	require.True(t, queue("d", time.Minute))
	_, next = busy.Done(failed(503, "http_503"))
	require.Nil(t, next)
	require.GreaterOrEqual(t, <-expired, 50*time.Second, "back after the cool-down")
	require.Equal(t, []string{"a"}, ran)

	// Shutdown puts back waiting jobs at once and queues no more.
	e2, _ := newTestEndpoints(t, Config{MaxInFlight: 1})
	held, _ := acquire(e2, ep, 1)
	_, _, queued := e2.Acquire(ep, 1, &Queued{MaxWait: time.Minute, Run: func(*Slot) Handoff { return nil }, Expire: func(w time.Duration) { expired <- w }})
	require.True(t, queued)
	e2.Flush()
	require.Zero(t, <-expired)
	_, _, queued = e2.Acquire(ep, 1, &Queued{MaxWait: time.Minute})
	require.False(t, queued)
	_ = held.Cancel()
}

// fireWhileLocked makes the timer of ep's only waiting job fire while the
// test holds e.mu, so its expiry is blocked on the lock exactly when
// whoever holds it takes the job off the list (a slot's release, the
// breaker opening, Flush). It returns the locked state and a channel
// closed once the timer's expiry has run. The caller unlocks e.mu.
func fireWhileLocked(t *testing.T, e *Endpoints, ep Endpoint) (*endpoint, chan struct{}) {
	t.Helper()
	e.mu.Lock()
	st := e.eps[ep.SubscriptionID]
	require.Len(t, st.waiters, 1)
	w := st.waiters[0]
	require.True(t, w.timer.Stop())
	fired, done := make(chan struct{}), make(chan struct{})
	w.timer = time.AfterFunc(0, func() { close(fired); e.expire(ep, w); close(done) })
	<-fired // its expiry now waits for e.mu
	return st, done
}

// A waiting job whose timer fires just as it is taken off the list is run
// or put back, never dropped: dropped, its message stays unsettled until
// JetStream's AckWait runs out.
func TestWaitingJobIsNotDroppedWhenItsTimerFiresAtHandoff(t *testing.T) {
	t.Parallel()
	ep := Endpoint{SubscriptionID: "s1"}
	type settled struct {
		ran, expired chan struct{}
	}
	queue := func(e *Endpoints) settled {
		s := settled{ran: make(chan struct{}, 2), expired: make(chan struct{}, 2)}
		_, _, queued := e.Acquire(ep, 1, &Queued{
			MaxWait: time.Hour,
			Run: func(slot *Slot) Handoff {
				s.ran <- struct{}{}
				return slot.Cancel()
			},
			Expire: func(time.Duration) { s.expired <- struct{}{} },
		})
		require.True(t, queued)
		return s
	}
	once := func(t *testing.T, s settled) {
		t.Helper()
		require.Equal(t, 1, len(s.ran)+len(s.expired), "the waiting job is settled exactly once")
	}

	t.Run("slot freed", func(t *testing.T) {
		e, _ := newTestEndpoints(t, Config{MaxInFlight: 1})
		busy, _ := acquire(e, ep, 1)
		s := queue(e)
		st, done := fireWhileLocked(t, e, ep)
		busy.release(st, e.now())
		h, gone := e.handoff(st, ep, e.now())
		e.mu.Unlock()
		e.expireAll(st, gone)
		for h != nil {
			h = h()
		}
		<-done
		once(t, s)
	})
	t.Run("breaker opened", func(t *testing.T) {
		e, _ := newTestEndpoints(t, Config{MaxInFlight: 1, BreakerFailures: 1})
		busy, _ := acquire(e, ep, 1)
		s := queue(e)
		st, done := fireWhileLocked(t, e, ep)
		busy.release(st, e.now())
		st.state, st.openUntil = BreakerOpen, e.now().Add(time.Minute)
		h, gone := e.handoff(st, ep, e.now())
		e.mu.Unlock()
		require.Nil(t, h)
		e.expireAll(st, gone)
		<-done
		once(t, s)
	})
	t.Run("flushed", func(t *testing.T) {
		e, _ := newTestEndpoints(t, Config{MaxInFlight: 1})
		busy, _ := acquire(e, ep, 1)
		s := queue(e)
		_, done := fireWhileLocked(t, e, ep)
		gone := e.flushLocked()
		e.mu.Unlock()
		e.expireGone(gone)
		<-done
		once(t, s)
		_ = busy.Cancel()
	})
}

func TestGoneStopsNewAttemptsUntilReenabled(t *testing.T) {
	t.Parallel()
	e, clk := newTestEndpoints(t, Config{MaxInFlight: 8})
	changed := clk.t.Add(-time.Hour)
	ep := Endpoint{SubscriptionID: "s1", Updated: changed}
	a, _ := acquire(e, ep, 1)
	b, _ := acquire(e, ep, 1) // in flight when the 410 comes: cannot be recalled
	require.False(t, e.Gone(ep))
	require.Equal(t, DisabledGone, verdict(a, failed(410, "http_410")).Disable)
	require.True(t, e.Gone(ep), "no new attempt after a 410, even before the subscription reads as disabled")
	_ = verdict(b, failed(410, "http_410"))

	clk.advance(time.Minute)
	reenabled := Endpoint{SubscriptionID: "s1", Updated: clk.t}
	require.False(t, e.Gone(reenabled), "re-enabled since the 410")
	require.False(t, e.Gone(ep), "and it stays cleared")
}

// Only as many jobs wait in memory as the endpoint should get through
// within their MaxWait, at its cap and its attempts' pace; the rest go back
// for about as long as the jobs ahead of them need.
func TestQueueHoldsWhatTheEndpointGetsThroughInTime(t *testing.T) {
	t.Parallel()
	e, c := newTestEndpoints(t, Config{MaxInFlight: 2, MaxQueued: 100, BusyDelay: time.Minute})
	ep := Endpoint{SubscriptionID: "s1"}
	// Attempts of 100ms, two at a time: 20 jobs a second.
	x, _ := acquire(e, ep, 1)
	y, _ := acquire(e, ep, 1)
	c.advance(100 * time.Millisecond)
	verdict(x, ok)
	x, _ = acquire(e, ep, 1)
	verdict(y, ok)
	y, _ = acquire(e, ep, 1)
	require.NotNil(t, y)
	queued := 0
	for {
		_, wait, in := e.Acquire(ep, 1, &Queued{MaxWait: time.Second, Run: func(*Slot) Handoff { return nil }, Expire: func(time.Duration) {}})
		if !in {
			// The 21st job would wait 1.05s: it comes back in about that.
			require.InDelta(t, float64(1050*time.Millisecond), float64(wait), float64(525*time.Millisecond)+1)
			break
		}
		queued++
	}
	require.Equal(t, 20, queued, "a second's worth of jobs waits")
	_ = x

	// A hanging endpoint has no average yet: its attempt in flight for 5s
	// says a job queued behind it would wait 5s, so none does.
	hangs := Endpoint{SubscriptionID: "hangs", MaxInFlight: 1}
	h, _ := acquire(e, hangs, 1)
	require.NotNil(t, h)
	c.advance(5 * time.Second)
	_, wait, in := e.Acquire(hangs, 1, &Queued{MaxWait: time.Second})
	require.False(t, in, "no job waits behind an attempt that hangs")
	require.GreaterOrEqual(t, wait, 2500*time.Millisecond, "it comes back when the attempt may be through")
}

// The pace at which waiting jobs are let in is measured only while jobs
// wait: an hour without any, before a burst, does not make the endpoint
// look slow, so the burst's jobs still wait in memory.
func TestQueuePaceIgnoresIdleSpells(t *testing.T) {
	t.Parallel()
	e, c := newTestEndpoints(t, Config{MaxInFlight: 1, MaxQueued: 100, BreakerFailures: 100})
	ep := Endpoint{SubscriptionID: "s1"}
	run := func(s *Slot) Handoff { c.advance(10 * time.Millisecond); _, n := s.Done(ok); return n }
	queue := func() bool {
		_, _, in := e.Acquire(ep, 1, &Queued{MaxWait: time.Second, Run: run, Expire: func(time.Duration) {}})
		return in
	}
	s, _ := acquire(e, ep, 1)
	c.advance(10 * time.Millisecond)
	verdict(s, failed(500, "http_500")) // a failure: its state is kept while idle
	c.advance(time.Hour)

	s, _ = acquire(e, ep, 1)
	require.True(t, queue())
	c.advance(10 * time.Millisecond)
	_, next := s.Done(ok) // lets the waiting job in
	require.NotNil(t, next)
	require.True(t, queue(), "a job behind one 10 ms attempt waits in memory")
	for next != nil {
		next = next()
	}
}
