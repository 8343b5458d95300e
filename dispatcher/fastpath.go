package dispatcher

import (
	"context"
	"sync/atomic"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/subscriptions"
)

// capacity is the fast path's budget of first attempts in flight,
// Config.Workers tokens. A router waits for a token before it admits a
// branch to its endpoint, so while every token is taken the routers stop
// pulling events, and they pull no more at once than there are tokens
// free: a replica takes no more events than it can start, and leaves the
// rest to its peers. A branch
// that waits in an endpoint's memory queue holds no token (the queue has
// its own bounds), so a slow endpoint's backlog holds no router. Beside
// the fast path, the DELIVERIES pool has Config.Workers goroutines of its
// own: retries and spilled jobs always find workers.
type capacity chan struct{}

func newCapacity(workers int) capacity {
	c := make(capacity, workers)
	for range workers {
		c <- struct{}{}
	}
	return c
}

// acquire waits for a token; false when ctx ended first.
func (c capacity) acquire(ctx context.Context) bool {
	select {
	case <-c:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c capacity) release() { c <- struct{}{} }

// take waits for one token and takes up to n-1 more that are free at once;
// it returns how many it took (0 when ctx ended first). The router pool
// takes one for each event it pulls, and hands it to the event's first
// fast-path branch.
func (c capacity) take(ctx context.Context, n int) int {
	if !c.acquire(ctx) {
		return 0
	}
	got := 1
	for got < n {
		select {
		case <-c:
			got++
		default:
			return got
		}
	}
	return got
}

// give returns n tokens.
func (c capacity) give(n int) {
	for range n {
		c <- struct{}{}
	}
}

// fanout is one event on its way out. Each matching subscription is a
// branch; the event is settled once every branch is: acked when each has
// a confirmed record (success, retry queued, final verdict) or a stored
// job, nak'ed with a delay when any could get neither (then the event is
// routed again, and every branch of a redelivered event is spilled).
type fanout struct {
	m     natsjs.Msg
	tries uint64 // deliveries of the event so far
	ev    delivery.Event
	left  atomic.Int32 // branches not settled yet, plus one while routing
	bad   atomic.Bool  // a branch could not be settled
	stop  func()       // ends the event's keep-alive
	log   zerolog.Logger
}

// branchDone settles one branch: ok when it is durable.
func (d *Dispatcher) branchDone(f *fanout, ok bool) {
	if !ok {
		f.bad.Store(true)
	}
	if f.left.Add(-1) > 0 {
		return
	}
	f.stop()
	if f.bad.Load() {
		f.log.Warn().Uint64("tries", f.tries).Msg("fan-out failed; the event will be routed again")
		d.funnel.nak(f.m, ownFailureDelay(f.tries))
		return
	}
	d.routed.Add(1)
	d.deps.Observer.Event(f.ev.Type, ResultRouted)
	d.funnel.ack(f.m)
}

// fastPath tries to start job, the first attempt of sub's branch of f,
// in this process: it takes the token the event was pulled with, if still
// unused (*token), or waits for one until pull ends (the replica stops),
// then asks the endpoint's admission. It
// reports whether the attempt started in a goroutine of its own or waits
// in the endpoint's memory queue; if neither, the caller spills the job to
// DELIVERIES, due after wait (the endpoint is full or its breaker open).
func (d *Dispatcher) fastPath(ctx, pull context.Context, f *fanout, token *bool, job delivery.Job, sub subscriptions.Subscription) (started bool, wait time.Duration) {
	switch {
	case pull.Err() != nil:
		return false, 0 // stopping: hand the branch to DELIVERIES now
	case *token:
		*token = false
	case !d.cap.acquire(pull):
		return false, 0
	}
	f.left.Add(1)
	log := f.log.With().Str("delivery_id", job.ID).Str("subscription_id", sub.ID).Int("attempt", job.Attempt).Logger()
	c := carrier{m: f.m, fan: f}
	d.branches.Add(1) // for the queued branch's Run or Expire; given back below if not queued
	slot, wait, queued := d.deps.Endpoints.Acquire(endpointOf(sub), 0, &endpoint.Queued{
		MaxWait: d.cfg.AckWait / 3,
		Bytes:   len(job.Data),
		// Exactly one of Run and Expire is called, and Run waits for it.
		Run: func(slot *endpoint.Slot) endpoint.Handoff {
			defer d.branches.Done()
			return d.runQueued(ctx, c, job, time.Now(), slot, log)
		},
		// Expire runs in Flush at a stop, once per waiting branch: each
		// spill goes on in a goroutine of its own, so they overlap.
		Expire: func(wait time.Duration) {
			go func() {
				defer d.branches.Done()
				d.spillBranch(ctx, f, job, wait, log)
			}()
		},
	})
	if !queued {
		d.branches.Done()
	}
	if slot == nil {
		d.cap.release()
		if !queued {
			f.left.Add(-1)
		}
		return queued, wait
	}
	d.branches.Add(1)
	go func() {
		defer d.branches.Done()
		defer d.cap.release()
		settling := false
		defer d.settleOnPanic(c, &settling, log)
		s, next := d.run(ctx, c, job, time.Now(), sub, slot, log)
		settling = true
		d.settle(ctx, c, job, s, log)
		for next != nil {
			next = next()
		}
	}()
	return true, 0
}

// spillBranch stores job in DELIVERIES, due after wait, and settles its
// branch of f: a first attempt the fast path could not make (endpoint
// full, breaker open, cut off by shutdown) or whose record failed.
func (d *Dispatcher) spillBranch(ctx context.Context, f *fanout, job delivery.Job, wait time.Duration, log zerolog.Logger) {
	if wait > 0 {
		job.NotBefore = d.now().Add(wait).UTC()
	}
	err := d.spill(ctx, []delivery.Job{job})
	if err != nil {
		log.Warn().Err(err).Msg("spilling the delivery job failed")
	}
	d.branchDone(f, err == nil)
}
