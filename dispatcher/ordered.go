package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

const (
	// orderedBatch is the most jobs one pull of a partition asks for.
	orderedBatch = 256
	// orderedTick is how often a partition looks again at heads that wait
	// for time (a retry, a paused subscription, a full endpoint) or for
	// the horizon.
	orderedTick = 20 * time.Millisecond
	// orderedHoldRecheck is how often the head of a paused or disabled
	// subscription's key checks whether it was resumed.
	orderedHoldRecheck = time.Second
	// ackFloorFresh is how long the router's ack floor, once read, serves
	// every partition. The routed log moves the horizon on between reads;
	// the ack floor only closes its gaps (see routedLog).
	ackFloorFresh = 250 * time.Millisecond
	// idleRelease is how long a partition this replica owns may hold
	// nothing before the replica releases it (unpins itself), so that
	// the partitions spread over the replicas pulling them.
	idleRelease = 5 * time.Second
	// shareCheck is how often a replica compares the partitions it owns
	// with its share, and how often a replica at its share looks whether
	// it may pull another partition.
	shareCheck = time.Second
)

// ordered owns the partitions of ORDERED that this replica is the pinned
// client of (see the package doc, "Ordered deliveries").
type ordered struct {
	d *Dispatcher
	// slots bounds the heads' attempts in flight on this replica, across
	// partitions: Config.Workers, as many as the DELIVERIES pool.
	slots  capacity
	router natsjs.Consumer
	stream natsjs.Stream
	parts  []*partition
	// running counts the heads' attempts and the partitions' loops.
	running sync.WaitGroup

	floorMu  sync.Mutex
	ackFloor uint64
	floorAt  time.Time

	// waiting are the heads put off for want of a slot or of room at
	// their endpoint, woken when an ordered attempt ends.
	waitMu  sync.Mutex
	waiting map[*entry]time.Time // the due each was put off to
}

// keyID is one subscription's key.
type keyID struct{ sub, key string }

// partition is one partition of ORDERED as its owner sees it: the jobs it
// holds, in a FIFO queue per key, sorted by the events' EVENTS sequence.
type partition struct {
	o    *ordered
	n    int
	cons natsjs.Consumer
	log  zerolog.Logger
	wake chan struct{}

	mu   sync.Mutex
	keys map[keyID][]*entry // sorted by job.EventSeq; never empty
	ids  map[string]*entry  // by delivery id
	seqs map[uint64]bool    // stream sequences of the messages held
	// pin is the id the server pinned this replica with; a change means
	// the partition went elsewhere meanwhile.
	pin string
	// synced: every message pending on the consumer was held here when
	// the consumer had made base deliveries and this replica had received
	// got; got counts the deliveries received. horizon is the highest
	// EVENTS sequence a head may have to start (see sync).
	synced   bool
	got      uint64
	base     uint64
	baseGot  uint64
	horizon  uint64
	lastSync time.Time
	stopped  bool
	// busy is when the partition last held a job.
	busy time.Time
}

// entry is one delivery of a key: its job message, or (msg nil) the place
// of the next attempt's job, published and on its way.
type entry struct {
	p       *partition
	id      keyID
	job     delivery.Job
	msg     natsjs.Msg
	seq     uint64 // msg's ORDERED sequence
	running bool
	due     time.Time // not before
	gone    bool      // no longer in the partition's queues
	// await is the attempt number of the job that takes this entry's
	// place (msg nil), and next a later attempt's job that arrived while
	// this one ran (after a crash, both may be pending).
	await   int
	next    natsjs.Msg
	nextJob delivery.Job
	nextSeq uint64
}

// newOrdered binds the partitions' consumers.
func newOrdered(ctx context.Context, d *Dispatcher, router natsjs.Consumer) (*ordered, error) {
	str, err := d.deps.JS.Stream(ctx, jetstream.StreamOrdered)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: bind stream %s: %w", jetstream.StreamOrdered, err)
	}
	o := &ordered{d: d, router: router, stream: str, slots: newCapacity(d.cfg.Workers)}
	for i := range jetstream.OrderedPartitions {
		c, err := d.deps.JS.Consumer(ctx, jetstream.StreamOrdered, jetstream.OrderedConsumer(i))
		if err != nil {
			return nil, fmt.Errorf("dispatcher: bind ordered consumer %d: %w", i, err)
		}
		o.parts = append(o.parts, &partition{
			o: o, n: i, cons: c, wake: make(chan struct{}, 1),
			log:  d.log.With().Int("partition", i).Logger(),
			keys: map[keyID][]*entry{}, ids: map[string]*entry{}, seqs: map[uint64]bool{},
		})
	}
	return o, nil
}

// run pulls and schedules every partition until ctx ends; then it hands
// back the jobs not started, and returns once the running heads settled.
func (o *ordered) run(ctx, work context.Context) {
	for _, p := range o.parts {
		o.running.Add(2)
		go func() { defer o.running.Done(); p.pull(ctx) }()
		go func() { defer o.running.Done(); p.schedule(ctx, work) }()
	}
	o.running.Add(1)
	go func() { defer o.running.Done(); o.balance(ctx) }()
	o.running.Wait()
}

// waitCapacity notes head e as put off, until due, for want of capacity.
func (o *ordered) waitCapacity(e *entry, due time.Time) {
	o.waitMu.Lock()
	defer o.waitMu.Unlock()
	if o.waiting == nil {
		o.waiting = map[*entry]time.Time{}
	}
	o.waiting[e] = due
}

// freed makes the heads put off for want of capacity due now, and wakes
// their partitions: an ordered attempt ended, so a slot is free, and maybe
// room at its endpoint (a head whose endpoint is still full or whose
// breaker is open is put off again). A head that started meanwhile, or
// whose due changed since (a retry's backoff), is left alone.
func (o *ordered) freed() {
	o.waitMu.Lock()
	waiting := o.waiting
	o.waiting = nil
	o.waitMu.Unlock()
	for e, due := range waiting {
		p := e.p
		p.mu.Lock()
		if !e.gone && !e.running && e.msg != nil && e.due.Equal(due) {
			e.due = time.Time{}
		}
		p.mu.Unlock()
		p.poke()
	}
}

// share is how many partitions this replica may own: the partitions
// divided by the replicas running (heard of through the routed log),
// rounded up.
func (o *ordered) share() int {
	n := o.d.routedLog.live()
	return (len(o.parts) + n - 1) / n
}

// owned counts the partitions this replica is pinned to.
func (o *ordered) owned() int {
	n := 0
	for _, p := range o.parts {
		if p.pinned() {
			n++
		}
	}
	return n
}

// balance reads the routed floor every shareCheck, so the routed log is
// pruned by the router's ack floor even when no head waits, and hands
// partitions over while this replica
// owns more than its share (it was alone when it took them, or pulled
// several at once): those holding the fewest jobs, handed back as at a
// graceful stop, so that replicas below their share get them. A replica
// at its share pulls no other partition (see pull).
func (o *ordered) balance(ctx context.Context) {
	tick := time.NewTicker(shareCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := o.routerFloor(fctx); err != nil && ctx.Err() == nil {
			o.d.log.Debug().Err(err).Msg("reading the router's ack floor failed")
		}
		cancel()
		share := o.share()
		type held struct {
			p    *partition
			jobs int
		}
		var owned []held
		for _, p := range o.parts {
			p.mu.Lock()
			if p.pin != "" {
				owned = append(owned, held{p, len(p.seqs)})
			}
			p.mu.Unlock()
		}
		if len(owned) <= share {
			continue
		}
		slices.SortFunc(owned, func(a, b held) int { return cmp.Compare(a.jobs, b.jobs) })
		for _, h := range owned[:len(owned)-share] {
			h.p.log.Info().Int("held", h.jobs).Int("share", share).Msg("handing an ordered partition over: this replica owns more than its share")
			h.p.reset("")
			h.p.release(ctx)
		}
	}
}

// pinned reports whether this replica owns the partition.
func (p *partition) pinned() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pin != ""
}

// routerFloor returns the routed floor in EVENTS: every event at or below
// it is routed, so its ordered jobs are stored. It is the routed log's
// (see routedLog), which starts from the router's ack floor, read at most
// every ackFloorFresh.
func (o *ordered) routerFloor(ctx context.Context) (uint64, error) {
	o.floorMu.Lock()
	defer o.floorMu.Unlock()
	if time.Since(o.floorAt) >= ackFloorFresh {
		ci, err := o.router.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("router consumer info: %w", err)
		}
		o.ackFloor, o.floorAt = ci.AckFloor.Stream, time.Now()
	}
	return o.d.routedLog.floor(o.ackFloor), nil
}

// poke wakes the partition's scheduler.
func (p *partition) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// pull fetches the partition's jobs as its pinned client, until ctx ends.
// While another replica is pinned, the server answers no pull of ours.
// The server pins the oldest pull request waiting when a partition's
// first job comes: each request waits a random time around fetchWait, so
// the replicas' requests take turns at the head of the queue, and the
// partitions spread over them.
func (p *partition) pull(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		if !p.pinned() && p.o.owned() >= p.o.share() {
			// At its share: leave this partition to the other replicas.
			select {
			case <-ctx.Done():
			case <-time.After(shareCheck/2 + rand.N(shareCheck/2)):
			}
			continue
		}
		wait := fetchWait/2 + rand.N(fetchWait)
		b, err := p.cons.Fetch(orderedBatch, natsjs.FetchMaxWait(wait), natsjs.FetchPriorityGroup(jetstream.OrderedGroup))
		if err == nil {
			for m := range b.Messages() {
				p.add(ctx, m)
			}
			err = b.Error()
		}
		switch {
		case err == nil, errors.Is(err, natsjs.ErrNoMessages), errors.Is(err, context.DeadlineExceeded):
			failures = 0
			continue
		case errors.Is(err, natsjs.ErrPinIDMismatch):
			p.log.Info().Msg("ordered partition no longer pinned to this replica; handing back its jobs")
			p.reset("")
			continue
		}
		failures++
		if failures == 1 || failures%30 == 0 {
			p.log.Warn().Err(err).Int("failures", failures).Msg("pulling ordered jobs failed; retrying")
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 2*time.Second)):
		}
	}
}

// add takes one pulled job into its key's queue.
func (p *partition) add(ctx context.Context, m natsjs.Msg) {
	f := p.o.d.funnel
	md, err := m.Metadata()
	if err != nil {
		f.term(m, "ordered job without metadata")
		return
	}
	job, err := delivery.DecodeJob(m.Headers(), m.Data())
	if err == nil && !job.Ordered {
		err = errors.New("no ordering key")
	}
	if err != nil {
		p.log.Error().Err(err).Msg("undecodable ordered job; terminating")
		f.term(m, "undecodable ordered job")
		return
	}
	seq := md.Sequence.Stream
	p.mu.Lock()
	defer p.poke()
	defer p.mu.Unlock()
	if ctx.Err() != nil || p.stopped {
		f.nak(m, 0)
		return
	}
	if pin := m.Headers().Get("Nats-Pin-Id"); pin != "" && pin != p.pin {
		if p.pin != "" {
			p.resetLocked(pin)
		}
		p.pin = pin
	}
	p.got++
	e := p.ids[job.ID]
	switch {
	case e == nil:
		e = &entry{p: p, id: keyID{job.SubscriptionID, job.OrderingKey}, job: job, msg: m, seq: seq, due: job.NotBefore}
		q := p.keys[e.id]
		i, _ := slices.BinarySearchFunc(q, job.EventSeq, func(x *entry, s uint64) int { return cmp.Compare(x.job.EventSeq, s) })
		if i == 0 && len(q) > 0 && (q[0].running || q[0].msg == nil) {
			// An older event's job after its key moved on (a repeated
			// fan-out, a duplicate): it waits behind the head under way.
			i = 1
		}
		p.keys[e.id] = slices.Insert(q, i, e)
		p.ids[job.ID] = e
		p.seqs[seq] = true
	case seq == e.seq || seq == e.nextSeq:
		// Redelivered (its AckWait ran out): the same message.
		if seq == e.seq && !e.running {
			e.msg = m
		}
	case e.msg == nil && job.Attempt >= e.await:
		e.job, e.msg, e.seq, e.due, e.await = job, m, seq, job.NotBefore, 0
		p.seqs[seq] = true
	case job.Attempt > e.job.Attempt && e.running && e.next == nil:
		// A later attempt's job while this one runs: a replica died after
		// queueing it, before settling its own. It takes over once this
		// attempt is settled.
		e.next, e.nextJob, e.nextSeq = m, job, seq
		p.seqs[seq] = true
	case job.Attempt > e.job.Attempt && !e.running && e.msg != nil:
		// Its attempt was recorded before this job was queued: the old one
		// is done.
		delete(p.seqs, e.seq)
		f.ack(e.msg)
		e.job, e.msg, e.seq, e.due = job, m, seq, job.NotBefore
		p.seqs[seq] = true
	default:
		// An earlier attempt's job whose successor is held, or a second
		// copy: the delivery goes on from the job held.
		f.ack(m)
	}
}

// reset hands back every job not running (nak'ed for the partition's new
// owner at once) and forgets them: the server pinned another client, so
// this replica may start nothing more in the partition until it syncs
// again. Running attempts finish and settle.
func (p *partition) reset(pin string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetLocked(pin)
}

func (p *partition) resetLocked(pin string) {
	f := p.o.d.funnel
	for _, q := range p.keys {
		for _, e := range q {
			e.gone = true
			if !e.running && e.msg != nil {
				f.nak(e.msg, 0)
			}
			if e.next != nil {
				f.nak(e.next, 0)
				e.next = nil
			}
		}
	}
	p.keys, p.ids, p.seqs = map[keyID][]*entry{}, map[string]*entry{}, map[uint64]bool{}
	p.synced, p.horizon, p.pin = false, 0, pin
}

// schedule starts the heads that may start, keeps the held jobs in
// progress, and hands everything back when ctx ends.
func (p *partition) schedule(ctx, work context.Context) {
	ackWait := p.o.d.cfg.AckWait
	keep := time.NewTicker(ackWait / 3)
	defer keep.Stop()
	tick := time.NewTicker(orderedTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			p.mu.Lock()
			p.stopped = true
			owned := p.pin != ""
			p.resetLocked("")
			p.mu.Unlock()
			if owned {
				p.release(context.WithoutCancel(ctx))
			}
			return
		case <-keep.C:
			p.keepAlive()
			p.releaseIfIdle(ctx)
		case <-tick.C:
		case <-p.wake:
		}
		p.startHeads(ctx, work)
	}
}

// releaseIfIdle unpins this replica from the partition when it has held
// nothing for idleRelease: another replica pulling it (or this one again)
// is pinned by the server when the next job comes. Without it, the
// replica that started first would own every partition for good.
func (p *partition) releaseIfIdle(ctx context.Context) {
	p.mu.Lock()
	now := time.Now()
	if len(p.keys) > 0 || len(p.seqs) > 0 || p.busy.IsZero() {
		p.busy = now
	}
	release := p.pin != "" && now.Sub(p.busy) >= idleRelease
	if release {
		p.resetLocked("")
		p.busy = time.Time{}
	}
	p.mu.Unlock()
	if !release {
		return
	}
	p.release(ctx)
}

// release unpins this replica from the partition, so the server pins
// another pulling replica at its next job, not only after PinnedTTL: when
// the partition is idle, and when this replica stops (its jobs were just
// handed back).
func (p *partition) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := p.o.stream.UnpinConsumer(ctx, jetstream.OrderedConsumer(p.n), jetstream.OrderedGroup); err != nil {
		p.log.Debug().Err(err).Msg("releasing an ordered partition failed; it moves after its pinned TTL")
	}
}

// keepAlive sends InProgress for every job held and not running (a running
// one is kept by its attempt).
func (p *partition) keepAlive() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range p.keys {
		for _, e := range q {
			if e.msg != nil && !e.running {
				p.o.d.funnel.progress(e.msg)
			}
			if e.next != nil {
				p.o.d.funnel.progress(e.next)
			}
		}
	}
}

// startHeads starts each key's head that is due, within the horizon and
// admitted by its endpoint. If a head waits for the horizon, it syncs
// first (at most every orderedTick).
func (p *partition) startHeads(ctx, work context.Context) {
	heads, blocked := p.due()
	if blocked && time.Since(p.lastSync) >= orderedTick {
		p.lastSync = time.Now()
		if err := p.sync(ctx); err != nil {
			if ctx.Err() == nil {
				p.log.Warn().Err(err).Msg("syncing an ordered partition failed; retrying")
			}
		} else {
			heads, _ = p.due()
		}
	}
	for _, e := range heads {
		p.start(work, e)
	}
}

// due returns the heads due now within the horizon, and whether a head
// waits for the horizon.
func (p *partition) due() (heads []*entry, blocked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for _, q := range p.keys {
		e := q[0]
		switch {
		case e.running || e.msg == nil || now.Before(e.due):
		case !p.synced || e.job.EventSeq > p.horizon:
			blocked = true
		default:
			heads = append(heads, e)
		}
	}
	return heads, blocked
}

// sync moves the horizon: the highest EVENTS sequence whose job may start
// as its key's head. It reads the routed floor F first (routerFloor), then
// the partition's consumer, unless F did not move. Every event at or below
// F is routed, so its ordered job was stored before the consumer was read. If the consumer
// then had nothing undelivered, and every message it had delivered and not
// settled is held here, every unsettled job of an event at or below F is in
// this replica's queues, in its key's order: a head at or below F+1 has no
// older job of its key anywhere else. The second condition is checked by
// count (NumAckPending equals the jobs held) when the partition is new to
// this replica, and afterwards by counting deliveries: as many reached this
// replica since then as the consumer made (its delivery sequence), so none
// went to another.
func (p *partition) sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	floor, err := p.o.routerFloor(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	stale := p.synced && floor+1 <= p.horizon
	p.mu.Unlock()
	if stale {
		return nil // the floor did not move: reading the consumer gains nothing
	}
	ci, err := p.cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("ordered consumer %d info: %w", p.n, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ci.NumPending > 0 {
		return nil
	}
	switch {
	case ci.NumAckPending == len(p.seqs):
		p.synced, p.base, p.baseGot = true, ci.Delivered.Consumer, p.got
	case p.synced && ci.Delivered.Consumer-p.base == p.got-p.baseGot:
		// Every delivery since then reached this replica.
	default:
		return nil
	}
	p.horizon = max(p.horizon, floor+1)
	return nil
}

// start starts head e: held while its subscription is paused or disabled,
// put off while its endpoint is full or its breaker open, cancelled when
// the subscription is gone; else its attempt runs in a goroutine of its
// own and is settled as any job's.
func (p *partition) start(work context.Context, e *entry) {
	d := p.o.d
	job := e.job
	log := d.log.With().Str("delivery_id", job.ID).Str("event_id", job.EventID).Str("event_type", job.Event).
		Str("subscription_id", job.SubscriptionID).Int("attempt", job.Attempt).Uint64("event_seq", job.EventSeq).Logger()
	sub, ok := d.deps.Subscriptions.Get(job.SubscriptionID)
	if !ok {
		var err error
		sub, err = d.deps.Subscriptions.Fetch(work, job.SubscriptionID)
		if errors.Is(err, subscriptions.ErrNotFound) {
			s := d.verdict(job, subscriptions.Subscription{ID: job.SubscriptionID}, delivery.StatusCancelled, "subscription deleted", nil)
			p.launch(work, e, func(c carrier) { d.settle(work, c, job, s, log) })
			return
		}
		if err != nil {
			p.putOff(e, retryAfterOwnFailure)
			return
		}
	}
	if !sub.Active || d.deps.Endpoints.Gone(endpointOf(sub)) {
		p.putOff(e, orderedHoldRecheck) // the key waits for the resume
		return
	}
	select {
	case <-p.o.slots:
	default:
		// Every slot of this replica is busy: the next freed one, or tick.
		p.o.waitCapacity(e, p.putOff(e, 0))
		return
	}
	slot, wait, _ := d.deps.Endpoints.Acquire(endpointOf(sub), 0, nil)
	if slot == nil {
		p.o.slots.release()
		d.deferred.Add(1)
		p.o.waitCapacity(e, p.putOff(e, wait)) // woken early when an ordered attempt ends
		return
	}
	if !p.launch(work, e, func(c carrier) {
		defer p.o.freed()
		defer p.o.slots.release()
		settling := false
		defer d.settleOnPanic(c, &settling, log)
		s, next := d.run(work, c, job, time.Now(), sub, slot, log)
		settling = true
		d.settle(work, c, job, s, log)
		for next != nil {
			next = next()
		}
	}) {
		p.o.slots.release()
		for next := slot.Cancel(); next != nil; {
			next = next()
		}
	}
}

// launch marks e running and runs fn with its carrier in a goroutine; false
// when e may not start any more (handed back meanwhile).
func (p *partition) launch(work context.Context, e *entry, fn func(carrier)) bool {
	p.mu.Lock()
	if e.gone || e.running {
		p.mu.Unlock()
		return false
	}
	e.running = true
	c := carrier{m: e.msg, ord: e}
	p.mu.Unlock()
	p.o.running.Add(1)
	go func() {
		defer p.o.running.Done()
		fn(c)
	}()
	return true
}

// putOff makes e due after wait, and returns when.
func (p *partition) putOff(e *entry, wait time.Duration) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.due = time.Now().Add(max(wait, orderedTick))
	return e.due
}

// settledOrdered applies a settlement to head e: ack and term settle its
// message and let the key's next job be the head (unless next, the number
// of the attempt whose job was just queued, takes its place); nak keeps it
// the head, due again after delay, without handing it back to the server
// (a nak'ed message could be redelivered to another replica, and in any
// case the key must not move on). After a stop, or once the partition went
// to another replica, nak hands it back.
func (d *Dispatcher) settledOrdered(e *entry, act action, delay time.Duration, why string, next int) {
	p := e.p
	p.mu.Lock()
	defer p.poke()
	defer p.mu.Unlock()
	e.running = false
	m := e.msg
	if act == nak {
		if e.gone || p.stopped {
			d.funnel.nak(m, 0)
			return
		}
		e.due = time.Now().Add(max(delay, orderedTick))
		return
	}
	if act == term {
		d.funnel.term(m, why)
	} else {
		d.funnel.ack(m)
	}
	if e.gone {
		return
	}
	delete(p.seqs, e.seq)
	switch {
	case e.next != nil && (next == 0 || e.nextJob.Attempt >= next):
		e.job, e.msg, e.seq, e.due = e.nextJob, e.next, e.nextSeq, e.nextJob.NotBefore
		e.next, e.nextJob, e.nextSeq = nil, delivery.Job{}, 0
	case next > 0 && act == ack:
		e.msg, e.seq, e.await = nil, 0, next
	default:
		if e.next != nil { // an older attempt's job than the one queued: obsolete
			delete(p.seqs, e.nextSeq)
			d.funnel.ack(e.next)
		}
		q := p.keys[e.id]
		if i := slices.Index(q, e); i >= 0 {
			q = slices.Delete(q, i, i+1)
		}
		if len(q) == 0 {
			delete(p.keys, e.id)
		} else {
			p.keys[e.id] = q
		}
		delete(p.ids, e.job.ID)
		e.gone = true
	}
}

// OrderedKeys returns, for subscription subID, how many of its keys have
// deliveries waiting on this replica, and the head delivery of the n
// longest keys, longest first.
func (d *Dispatcher) OrderedKeys(subID string, n int) client.OrderedKeys {
	out := client.OrderedKeys{Longest: []client.OrderedKey{}}
	o := d.ordered.Load()
	if o == nil {
		return out
	}
	for _, p := range o.parts {
		p.mu.Lock()
		for id, q := range p.keys {
			if id.sub != subID {
				continue
			}
			out.Waiting++
			h := q[0]
			out.Longest = append(out.Longest, client.OrderedKey{
				Key: id.key, Deliveries: len(q), HeadID: h.job.ID, HeadEventID: h.job.EventID,
				HeadAttempt: max(h.job.Attempt, h.await), HeadDue: h.due.UTC(), HeadRunning: h.running, HeadCreated: h.job.CreatedAt,
			})
		}
		p.mu.Unlock()
	}
	slices.SortFunc(out.Longest, func(a, b client.OrderedKey) int {
		return cmp.Or(cmp.Compare(b.Deliveries, a.Deliveries), cmp.Compare(a.Key, b.Key))
	})
	out.Longest = out.Longest[:min(n, len(out.Longest))]
	return out
}

// OrderedPartitions returns how many partitions of ORDERED this replica
// owns now.
func (d *Dispatcher) OrderedPartitions() int {
	o := d.ordered.Load()
	if o == nil {
		return 0
	}
	return o.owned()
}

// OrderedKeysWaiting returns, per subscription, how many of its keys have
// deliveries waiting on this replica.
func (d *Dispatcher) OrderedKeysWaiting() map[string]int {
	out := map[string]int{}
	o := d.ordered.Load()
	if o == nil {
		return out
	}
	for _, p := range o.parts {
		p.mu.Lock()
		for id := range p.keys {
			out[id.sub]++
		}
		p.mu.Unlock()
	}
	return out
}
