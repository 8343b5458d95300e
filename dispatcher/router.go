package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/internal/tracing"
	"github.com/robotlab/webhookd/jetstream"
)

// publishTimeout bounds waiting for the acknowledgements of one fan-out.
const publishTimeout = 10 * time.Second

// route fans one event out and settles it through its branches. The
// branches of subscriptions with an ordering key are stored in ORDERED
// first, before any other branch starts; then the event counts as routed
// for the ordered partitions (see routedLog). Each other
// matching subscription's first attempt goes straight to a worker in this
// process (the fast path) through the endpoint's admission (cap, breaker,
// memory queue); a branch that cannot go that way is spilled as a job to
// DELIVERIES: the endpoint is full or its breaker open, the subscription
// is paused or disabled, or the event is a redelivery (a replica died
// mid fan-out, so some branches may have run: they are all queued, and the
// jobs' message ids drop the ones queued before). The event is acked once
// every branch has a confirmed record or a stored job (see fanout). A bad
// event is recorded as rejected with its reason and never retried; a
// failure of ours (NATS unavailable, DELIVERIES full) naks it with a
// growing delay.
//
// A subscription whose filter does not let the event through is no branch
// at all: no job, no record; an event no subscription lets through is
// acked as without a subscriber. Filters apply here, at routing time, with
// the subscription's filter then: a redelivered event is filtered again
// (with the same filter, to the same branches), and a job already queued,
// a retry, a redelivery or a replay is delivered whatever the filter says
// now.
//
// The router pool pulled m with a token of the fast path's capacity, which
// route hands to the event's first fast-path branch, or gives back.
func (d *Dispatcher) route(ctx, pull context.Context, m natsjs.Msg) {
	token := true
	defer func() {
		if token {
			d.cap.release()
		}
	}()
	md, err := m.Metadata()
	if err != nil {
		d.log.Error().Err(err).Str("subject", m.Subject()).Msg("event without metadata; terminating")
		d.funnel.term(m, "event without metadata")
		return
	}
	ev := delivery.Event{
		ID:        jetstream.EventIDHeader(m.Headers()),
		Type:      jetstream.EventType(m.Subject()),
		Timestamp: jetstream.EventTime(m.Headers(), md.Timestamp),
		Seq:       md.Sequence.Stream,
		Data:      m.Data(),
	}
	if ev.ID == "" {
		ev.ID = delivery.EventIDFromSequence(d.cfg.EventIDSalt, ev.Seq)
	}
	if len(ev.ID) > delivery.MaxEventIDBytes {
		// Recorded under the derived id: the robot's is too long to index.
		reason := fmt.Sprintf("event id (Nats-Msg-Id %q) is %d bytes, over the limit of %d",
			truncate(ev.ID, 64), len(ev.ID), delivery.MaxEventIDBytes)
		ev.ID = delivery.EventIDFromSequence(d.cfg.EventIDSalt, ev.Seq)
		d.reject(ctx, m, ev, reason)
		return
	}
	log := d.log.With().Str("event_id", ev.ID).Str("event_type", ev.Type).Logger()
	span := d.deps.Tracer.Route(m.Headers().Get(tracing.Header), ev.Type, ev.ID, md.NumDelivered)
	defer span.End("")

	if reason := d.check(ev); reason != "" {
		span.Result("rejected", reason)
		d.reject(ctx, m, ev, reason)
		return
	}
	vars := &eventVars{ev: ev}
	subs := d.filtered(vars, d.deps.Subscriptions.Match(ev.Type), log)
	if len(subs) == 0 {
		span.Result("no_subscriber", "")
		d.noSubscriber.Add(1)
		d.deps.Observer.Event(ev.Type, ResultNoSubscriber)
		log.Debug().Msg("event has no subscriber")
		d.routedLog.add(ev.Seq)
		d.funnel.ack(m)
		return
	}
	if full, err := d.room.full(ctx); full || err != nil {
		// Keep the last tenth of DELIVERIES for retries of jobs already
		// queued; the event waits in EVENTS, which refuses new events
		// when it fills up in turn.
		log.Warn().Err(err).Msg("DELIVERIES is nearly full; fan-out waits")
		span.Result("retry", "DELIVERIES is nearly full")
		d.funnel.nak(m, ownFailureDelay(md.NumDelivered))
		return
	}
	now := d.now()
	traceParent := span.Traceparent()
	// The ordered branches first: their jobs are stored before any other
	// branch starts, and the event then counts as routed for the ordered
	// partitions' horizon (routedLog), whatever its other branches do.
	var ordered []delivery.Job
	unordered := subs[:0:0]
	for _, sub := range subs {
		if sub.OrderingKey != "" {
			if key, ok := d.orderingKey(sub, vars, log); ok {
				// Stored in ORDERED; its key's owner starts it in turn.
				job := delivery.NewJob(ev, sub.ID, now)
				job.TraceParent = traceParent
				job.Ordered, job.OrderingKey, job.EventSeq = true, key, ev.Seq
				ordered = append(ordered, job)
				continue
			}
		}
		unordered = append(unordered, sub)
	}
	if len(ordered) > 0 {
		if err := d.spill(ctx, ordered); err != nil {
			log.Warn().Err(err).Uint64("tries", md.NumDelivered).Msg("storing ordered delivery jobs failed")
			span.Result("retry", err.Error())
			d.funnel.nak(m, ownFailureDelay(md.NumDelivered))
			return
		}
	}
	d.routedLog.add(ev.Seq)
	f := &fanout{m: m, tries: md.NumDelivered, ev: ev, log: log}
	f.left.Store(1) // routing's own share, settled last
	f.stop = d.funnel.keepAlive(m, d.cfg.AckWait/3, d.cfg.AckWait/3)
	routed := false
	defer func() {
		// A panic while routing fails routing's share: the event is nak'ed
		// once the branches already started are settled.
		if p := recover(); p != nil && !routed {
			log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("routing an event panicked; it will be routed again")
			d.branchDone(f, false)
		}
	}()
	var spills []delivery.Job
	for _, sub := range unordered {
		if sub.Listen {
			d.listen(ev, sub, now)
			continue
		}
		job := delivery.NewJob(ev, sub.ID, now)
		job.TraceParent = traceParent
		if d.cfg.NoFastPath || md.NumDelivered > 1 || !sub.Active || d.deps.Endpoints.Gone(endpointOf(sub)) {
			spills = append(spills, job)
			continue
		}
		if started, wait := d.fastPath(ctx, pull, f, &token, job, sub); !started {
			if wait > 0 {
				job.NotBefore = now.Add(wait).UTC()
			}
			spills = append(spills, job)
		}
	}
	err = nil
	if len(spills) > 0 {
		if err = d.spill(ctx, spills); err != nil {
			log.Warn().Err(err).Uint64("tries", md.NumDelivered).Msg("spilling delivery jobs failed")
		}
	}
	routed = true
	if err != nil {
		span.Result("retry", err.Error())
	} else {
		span.Result("routed", "")
	}
	d.branchDone(f, err == nil)
}

// spill stores jobs in DELIVERIES. Jobs that can never be stored (larger
// than the server takes) fail their deliveries at once, with the reason.
// It waits at most publishTimeout, even after a stop cancelled ctx: a
// branch handed back at shutdown must still be stored.
func (d *Dispatcher) spill(ctx context.Context, jobs []delivery.Job) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	err := d.publishJobs(ctx, jobs)
	if err != nil && permanent(err) {
		err = d.failUnqueueable(ctx, jobs, err)
	}
	return err
}

// failUnqueueable records as failed the deliveries of jobs that cannot be
// queued (too large for the server), and returns an error only if a record
// could not be written.
func (d *Dispatcher) failUnqueueable(ctx context.Context, jobs []delivery.Job, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	for _, job := range jobs {
		sub, _ := d.deps.Subscriptions.Get(job.SubscriptionID)
		rec := d.record(job, sub, delivery.StatusFailed, "cannot queue its delivery job: "+cause.Error())
		if err := d.deps.Recorder.Publish(rctx, rec, nil); err != nil {
			return err
		}
		d.deps.Observer.Finished(rec.SubscriptionID, rec.Status)
	}
	return nil
}

// ownFailureDelay spaces the retries of a failure of ours: 1 s, doubling
// with each try, at most 30 s.
func ownFailureDelay(tries uint64) time.Duration {
	d := time.Second
	for i := uint64(1); i < tries && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// permanent reports whether a publish error will not go away by itself: the
// job is too large for the server or refused by the stream's limits on
// message size.
func permanent(err error) bool {
	var apiErr *natsjs.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == natsjs.JSErrCodeStreamMessageExceedsMaximum
}

// reject records the event as rejected with reason and acks it. If the
// record cannot be written the event is nak'ed, never acked.
func (d *Dispatcher) reject(ctx context.Context, m natsjs.Msg, ev delivery.Event, reason string) {
	rec := history.Record{
		DeliveryID: delivery.JobID(ev.ID, "", ev.Seq, ev.Timestamp), EventID: ev.ID, Event: ev.Type,
		Status: delivery.StatusRejected, Reason: reason, At: d.now().UTC(), CreatedAt: ev.Timestamp,
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	log := d.log.With().Str("event_id", ev.ID).Str("event_type", ev.Type).Logger()
	if err := d.deps.Recorder.Publish(rctx, rec, nil); err != nil {
		log.Error().Err(err).Msg("recording rejected event failed; will retry")
		d.funnel.nak(m, time.Second)
		return
	}
	d.rejected.Add(1)
	d.deps.Observer.Event(ev.Type, ResultRejected)
	d.deps.Observer.Finished("", delivery.StatusRejected)
	log.Warn().Str("reason", rec.Reason).Int("bytes", len(ev.Data)).Msg("event.rejected")
	d.routedLog.add(ev.Seq)
	d.funnel.ack(m)
}

// check returns why ev is rejected, or "".
func (d *Dispatcher) check(ev delivery.Event) string {
	if !d.catalog[ev.Type] {
		return fmt.Sprintf("unknown event type %q", truncate(ev.Type, 128))
	}
	if len(ev.Data) > d.cfg.MaxEventBytes {
		return fmt.Sprintf("event data is %d bytes, over the limit of %d", len(ev.Data), d.cfg.MaxEventBytes)
	}
	if err := delivery.CheckData(ev.Data); err != nil {
		return err.Error()
	}
	if d.deps.Schemas != nil {
		// Once per event, before the fan-out: not per subscription.
		return d.deps.Schemas.Validate(ev.Type, ev.Data)
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// publishJobs publishes jobs to DELIVERIES and waits for every
// acknowledgement, as long as ctx allows: its callers bound it (spill with
// publishTimeout, the next attempt's job with the settlement's
// recordTimeout).
func (d *Dispatcher) publishJobs(ctx context.Context, jobs []delivery.Job) error {
	futures := make([]natsjs.PubAckFuture, 0, len(jobs))
	for _, job := range jobs {
		subject := jetstream.DeliverySubject(job.SubscriptionID)
		if job.Ordered {
			subject = jetstream.OrderedSubject(jetstream.OrderedPartition(job.SubscriptionID, job.OrderingKey))
		}
		f, err := d.deps.JS.PublishMsgAsync(job.Msg(subject), natsjs.WithMsgID(job.MsgID()))
		if err != nil {
			return fmt.Errorf("publish job %s: %w", job.ID, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
			d.jobs.Add(1)
		case err := <-f.Err():
			return fmt.Errorf("publish job: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("publish job: %w", context.Cause(ctx))
		}
	}
	return nil
}

// room tells whether DELIVERIES has room for new jobs, from stream info
// read at most once a second. One router reads it while the others go on
// with the last answer, if it is at most roomStale old: a slow read (a
// stream leader on another server, a loaded machine) must not hold every
// router still. Without such an answer they wait for the read, and share
// its error if it fails; the next router after that reads again.
type room struct {
	read func(context.Context) (bool, error) // whether DELIVERIES is nearly full now

	mu      sync.Mutex
	checked time.Time // when isFull was read; zero: never
	isFull  bool      // the last answer
	reading *roomRead // the read in flight; nil: none
}

// roomRead is one read of the room; done is closed when it ends, and err
// is then its failure.
type roomRead struct {
	done chan struct{}
	err  error
}

const (
	// roomReserve is the share of DELIVERIES' byte limit kept for retries.
	roomReserve = 0.1
	// roomFresh is how long an answer stands; roomStale how long other
	// routers may go on with it while one reads a new one.
	roomFresh, roomStale = time.Second, 5 * time.Second
)

func newRoom(js natsjs.JetStream) *room {
	return &room{read: func(ctx context.Context) (bool, error) {
		s, err := js.Stream(ctx, jetstream.StreamDeliveries) // reads the stream's info
		if err != nil {
			return false, fmt.Errorf("stream %s info: %w", jetstream.StreamDeliveries, err)
		}
		info := s.CachedInfo()
		limit := info.Config.MaxBytes
		return limit > 0 && float64(info.State.Bytes) >= float64(limit)*(1-roomReserve), nil
	}}
}

func (r *room) full(ctx context.Context) (bool, error) {
	r.mu.Lock()
	age := time.Since(r.checked) // very long when never read
	if age < roomFresh || r.reading != nil && age < roomStale {
		full := r.isFull
		r.mu.Unlock()
		return full, nil
	}
	if rr := r.reading; rr != nil {
		r.mu.Unlock()
		select {
		case <-rr.done:
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
		if rr.err != nil {
			return false, rr.err
		}
		r.mu.Lock()
		full := r.isFull
		r.mu.Unlock()
		return full, nil
	}
	rr := &roomRead{done: make(chan struct{})}
	r.reading = rr
	r.mu.Unlock()
	return r.readNow(ctx, rr)
}

// readNow makes read rr, keeps its answer, and keeps nothing if it
// fails, so the next router reads again.
func (r *room) readNow(ctx context.Context, rr *roomRead) (full bool, err error) {
	defer func() {
		r.mu.Lock()
		if err == nil {
			r.isFull, r.checked = full, time.Now()
		}
		rr.err = err
		r.reading = nil
		r.mu.Unlock()
		close(rr.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return r.read(ctx)
}
