package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/internal/boltfile"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// ErrConflict is wrapped by requeue errors that say why a delivery cannot
// be sent again (still queued, rejected, no kept job, subscription deleted).
var ErrConflict = errors.New("dispatcher: cannot requeue")

// QueueDeps are the Queue's collaborators.
type QueueDeps struct {
	JS natsjs.JetStream
	// Store reads the delivery history: this replica's index, or a
	// history.Remote on a replica without one (--history=false).
	Store history.Reader
	// Recorder writes the "pending" record of a requeue and applies it at
	// once, so the answer that follows reads it.
	Recorder interface {
		Publish(ctx context.Context, rec history.Record, keep *delivery.Job) error
	}
	Subscriptions interface {
		Get(id string) (subscriptions.Subscription, bool)
		List() []subscriptions.Subscription
	}
	// Index is this replica's audit indexer (or the Remote that asks an
	// indexing replica): a resume waits for it to reach the
	// subscription's last record, so no held delivery is missed.
	Index history.Applied
}

// Queue carries out operators' requeues next to the workers: redeliver one
// delivery, replay a subscription's failed deliveries, resume the
// deliveries held while it was paused or disabled, cancel them when it is
// deleted. A requeue publishes the kept job first, under the fixed message
// id "<delivery>/requeue/<kept job's AUDIT sequence>" so a double submit
// queues it once, and records the delivery as pending after that: a failed
// publish never leaves a delivery pending with nothing queued.
type Queue struct {
	deps QueueDeps
	log  zerolog.Logger
	now  func() time.Time
	// ResumeRate is how many held deliveries per second a resume requeues.
	resumeRate float64

	// HeldSweep is how often Run looks for held deliveries of active
	// subscriptions (a resume cut off by a shutdown, or a hold recorded
	// after every look of its resume) and resumes them. Set it before Run;
	// zero means a minute.
	HeldSweep time.Duration

	mu      sync.Mutex
	resumes []resumeTask  // in order of being asked for
	wake    chan struct{} // signalled when resumes grows
	replays []*replay     // running and recently finished, oldest first
	audit   natsjs.Stream // the AUDIT stream's handle, once looked up

	starts  chan *replay  // replays for Run to start
	stopped chan struct{} // closed when Run has returned
}

// resumeTask is a resume to carry out at due; recheck marks the second
// look a resume takes (see resumeRecheck).
type resumeTask struct {
	subID   string
	due     time.Time
	recheck bool
}

// NewQueue returns a Queue; Run carries out its background work (resumes
// and replays).
func NewQueue(deps QueueDeps, resumeRate float64, log zerolog.Logger) *Queue {
	if resumeRate <= 0 {
		resumeRate = 200
	}
	return &Queue{deps: deps, log: log.With().Str("component", "queue").Logger(), now: time.Now,
		resumeRate: resumeRate, wake: make(chan struct{}, 1),
		starts: make(chan *replay), stopped: make(chan struct{})}
}

// Run carries out background requeues (resumes, replays) until ctx ends,
// then waits for the requeues in flight (each bounded by requeueTimeout).
// It is called once.
func (q *Queue) Run(ctx context.Context) error {
	var replays sync.WaitGroup
	replays.Add(1)
	go func() { // replays run beside the resumes, each in its own goroutine
		defer replays.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-q.starts:
				replays.Add(1)
				go func() {
					defer replays.Done()
					q.runReplay(ctx, r)
				}()
			}
		}
	}()
	defer func() {
		close(q.stopped)
		replays.Wait()
	}()
	every := q.HeldSweep
	if every <= 0 {
		every = time.Minute
	}
	sweep := time.NewTicker(every)
	defer sweep.Stop()
	q.sweepHeld()
	for {
		task, next, ok := q.nextResume()
		if ok {
			q.resume(ctx, task)
			continue
		}
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = time.After(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		case <-timer:
		case <-sweep.C:
			q.sweepHeld()
		}
	}
}

// sweepHeld resumes every active subscription that this replica's index
// shows with held deliveries: nothing held stays stranded when the resume
// that should have sent it was cut off (its replica shut down) or missed it.
// Resumes are idempotent, so a sweep that finds a resume under way costs a
// scan, not a duplicate.
func (q *Queue) sweepHeld() {
	for _, sub := range q.deps.Subscriptions.List() {
		if !sub.Active {
			continue
		}
		held, _, err := q.deps.Store.List(history.Query{SubscriptionID: sub.ID, Status: delivery.StatusPaused, Limit: 1})
		if errors.Is(err, history.ErrRebuilding) || errors.Is(err, boltfile.ErrDamaged) {
			return // the index is rebuilt from AUDIT (its file was damaged, and said so): the next sweep looks
		}
		if err != nil {
			q.log.Warn().Err(err).Str("subscription_id", sub.ID).Msg("looking for stranded held deliveries failed")
			continue
		}
		if len(held) > 0 {
			q.log.Info().Str("subscription_id", sub.ID).Msg("active subscription has held deliveries: resuming them")
			q.Resume(sub.ID)
		}
	}
}

// nextResume pops the first resume that is due, or returns when the next
// one will be (zero: none waits).
func (q *Queue) nextResume() (task resumeTask, next time.Time, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for i, t := range q.resumes {
		if !t.due.After(now) {
			q.resumes = slices.Delete(q.resumes, i, i+1)
			return t, time.Time{}, true
		}
		if next.IsZero() || t.due.Before(next) {
			next = t.due
		}
	}
	return resumeTask{}, next, false
}

func (q *Queue) enqueue(t resumeTask) {
	q.mu.Lock()
	if !slices.ContainsFunc(q.resumes, func(o resumeTask) bool { return o.subID == t.subID && o.recheck == t.recheck }) {
		q.resumes = append(q.resumes, t)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// requeueTimeout bounds one requeue's publish and record; they outlive the
// HTTP request that asked for them.
const requeueTimeout = 10 * time.Second

// Requeue sends delivery id again: same delivery id, attempts continuing.
// After a failure the retry policy starts afresh; a held delivery continues
// where it stopped. It returns history.ErrNotFound for an unknown id and an
// error wrapping ErrConflict when the delivery cannot be sent again.
func (q *Queue) Requeue(ctx context.Context, id string) error {
	d, err := q.deps.Store.Get(id)
	if err != nil {
		return err
	}
	return q.requeue(ctx, d, nil)
}

// requeue sends d again. With a turn (requeues paced in order), it
// publishes only once the requeues before it have published, so deliveries
// are queued again in the order given, while the reads and the record of
// several requeues overlap.
func (q *Queue) requeue(ctx context.Context, d history.Delivery, t *turn) error {
	defer t.release() // on every path: the next requeue must not wait for ever
	switch {
	case d.Status == delivery.StatusRejected:
		return fmt.Errorf("%w: delivery %s is a rejected event (%s): there is nothing to send", ErrConflict, d.ID, d.Reason)
	case !d.Status.Final() && d.Status != delivery.StatusPaused:
		return fmt.Errorf("%w: delivery %s is %s: it is still queued", ErrConflict, d.ID, d.Status)
	case d.Status == delivery.StatusSucceeded:
		return fmt.Errorf("%w: delivery %s has succeeded: its job is not kept", ErrConflict, d.ID)
	}
	sub, ok := q.deps.Subscriptions.Get(d.SubscriptionID)
	if !ok {
		return fmt.Errorf("%w: subscription %s of delivery %s was deleted", ErrConflict, d.SubscriptionID, d.ID)
	}
	seq, err := q.deps.Store.JobSeq(d.ID)
	if errors.Is(err, history.ErrNotFound) {
		return fmt.Errorf("%w: delivery %s has no kept job to send", ErrConflict, d.ID)
	}
	if err != nil {
		return err
	}
	// The work below must not stop half-way because a client hung up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requeueTimeout)
	defer cancel()
	job, err := q.keptJob(ctx, seq, d.ID)
	if err != nil {
		return err
	}
	job = job.Requeued(d.Status == delivery.StatusFailed)
	now := q.now().UTC() // before the publish: the worker's next record is newer
	msgID := fmt.Sprintf("%s/requeue/%d", d.ID, seq)
	if err := t.wait(ctx); err != nil {
		return fmt.Errorf("requeue %s: %w", d.ID, err)
	}
	ack, err := q.deps.JS.PublishMsg(ctx, job.Msg(jetstream.DeliverySubject(sub.ID)), natsjs.WithMsgID(msgID))
	t.release()
	if err != nil {
		return fmt.Errorf("publish job %s: %w", d.ID, err)
	}
	if ack.Duplicate {
		// The same requeue was done a moment ago (a double submit, or two
		// operators at once): it is queued once, and its pending record is
		// written; one written now could outdate the attempt's record.
		return nil
	}
	err = q.deps.Recorder.Publish(ctx, history.Record{
		DeliveryID: d.ID, EventID: d.EventID, Event: d.Event, SubscriptionID: d.SubscriptionID, URL: sub.URL,
		Status: delivery.StatusPending, Reason: "requeued by an operator", At: now, CreatedAt: d.CreatedAt,
	}, nil)
	if err != nil {
		// The job is queued; its next attempt will be recorded as usual.
		q.log.Warn().Err(err).Str("delivery_id", d.ID).Msg("job requeued, but recording it as pending failed")
	}
	return nil
}

// keptJob reads the job kept in AUDIT at seq for delivery id.
func (q *Queue) keptJob(ctx context.Context, seq uint64, id string) (delivery.Job, error) {
	str, err := q.auditStream(ctx)
	if err != nil {
		return delivery.Job{}, err
	}
	raw, err := str.GetMsg(ctx, seq)
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return delivery.Job{}, fmt.Errorf("%w: the kept job of delivery %s has left the AUDIT stream (retention or size limit)", ErrConflict, id)
	}
	if err != nil {
		return delivery.Job{}, fmt.Errorf("read kept job of %s: %w", id, err)
	}
	job, err := delivery.DecodeJob(raw.Header, raw.Data)
	if err != nil || job.ID != id {
		return delivery.Job{}, fmt.Errorf("%w: AUDIT sequence %d holds no job of delivery %s", ErrConflict, seq, id)
	}
	return job, nil
}

// auditStream returns the AUDIT stream's handle, looked up once: a lookup
// is a round trip to the server, and a replay reads thousands of jobs.
func (q *Queue) auditStream(ctx context.Context) (natsjs.Stream, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.audit != nil {
		return q.audit, nil
	}
	str, err := q.deps.JS.Stream(ctx, jetstream.StreamAudit)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", jetstream.StreamAudit, err)
	}
	q.audit = str
	return str, nil
}

// Each calls fn for every delivery q selects, oldest first, page by page
// until the last page: no cap. fn may change the deliveries it is given.
func (q *Queue) Each(query history.Query, fn func(history.Delivery) error) error {
	query.Limit, query.Cursor, query.OldestFirst = 1000, "", true
	for {
		page, next, err := q.deps.Store.List(query)
		if err != nil {
			return err
		}
		for _, d := range page {
			if err := fn(d); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		query.Cursor = next
	}
}

// Resume requeues, in the background, the deliveries held while
// subscription subID was paused or disabled. It first waits until this
// replica has indexed the subscription's last audit record, so holds
// recorded by other replicas are not missed. Workers check the record of
// truth before holding a job, so nothing is held after the resume.
//
// It never blocks: a subscription already waiting to be resumed is not
// queued twice. A second look follows after resumeRecheck.
func (q *Queue) Resume(subID string) {
	q.enqueue(resumeTask{subID: subID, due: q.now()})
}

func (q *Queue) resume(ctx context.Context, t resumeTask) {
	n, held, err := q.forHeld(ctx, t.subID, q.resumeRate, q.requeue)
	if err == nil && !t.recheck {
		q.enqueue(resumeTask{subID: t.subID, due: q.now().Add(resumeRecheck), recheck: true})
	}
	ev := q.log.Info()
	if err != nil {
		ev = q.log.Error().Err(err)
	}
	ev.Str("subscription_id", t.subID).Int("requeued", n).Int("held", held).Bool("recheck", t.recheck).Msg("held deliveries requeued")
}

// resumeRecheck is when a resume looks for held deliveries a second time:
// a worker that read the subscription as inactive just before the resume
// may record its hold just after the first scan, but within recordTimeout.
const resumeRecheck = recordTimeout + time.Second

// CancelHeld records the deliveries held for a deleted subscription as
// cancelled (its queued jobs are cancelled by the workers).
func (q *Queue) CancelHeld(ctx context.Context, subID string) (int, error) {
	now := q.now().UTC()
	n, _, err := q.forHeld(ctx, subID, 0, func(ctx context.Context, d history.Delivery, _ *turn) error {
		return q.deps.Recorder.Publish(ctx, history.Record{
			DeliveryID: d.ID, EventID: d.EventID, Event: d.Event, SubscriptionID: subID, URL: d.URL,
			Status: delivery.StatusCancelled, Reason: "subscription deleted", At: now, CreatedAt: d.CreatedAt,
		}, nil)
	})
	return n, err
}

// forHeld calls fn for each held delivery of subID (at perSecond when
// positive) once the index has caught up, and returns how many succeeded
// and how many there were.
func (q *Queue) forHeld(ctx context.Context, subID string, perSecond float64, fn func(context.Context, history.Delivery, *turn) error) (done, held int, err error) {
	if err := q.catchUp(ctx, subID); err != nil {
		return 0, 0, err
	}
	var mu sync.Mutex
	err = q.paced(ctx, history.Query{SubscriptionID: subID, Status: delivery.StatusPaused}, perSecond, func(ctx context.Context, d history.Delivery, t *turn) error {
		err := fn(ctx, d, t)
		mu.Lock()
		defer mu.Unlock()
		held++
		switch {
		case errors.Is(err, ErrConflict):
			q.log.Warn().Err(err).Str("delivery_id", d.ID).Msg("held delivery left as it is")
		case err != nil:
			return err
		default:
			done++
		}
		return nil
	})
	return done, held, err
}

// turn orders the publishes of requeues that otherwise run at once: each
// waits for the one before it to publish (or give up). A nil turn does not
// wait.
type turn struct {
	prev <-chan struct{}
	done chan struct{}
	once sync.Once
}

func (t *turn) wait(ctx context.Context) error {
	if t == nil {
		return nil
	}
	select {
	case <-t.prev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *turn) release() {
	if t != nil {
		t.once.Do(func() { close(t.done) })
	}
}

// paced calls fn for every delivery query selects, oldest first, at
// perSecond (0: no limit), with up to replayParallel calls at once above
// 250/s, one at a time below. Each call gets a turn that orders its publish
// after the previous call's. The first error fn returns stops it and is
// returned.
func (q *Queue) paced(ctx context.Context, query history.Query, perSecond float64, fn func(context.Context, history.Delivery, *turn) error) error {
	parallel := replayParallel
	var lim *rate.Limiter
	if perSecond > 0 {
		// Up to 250/s (a resume's default is 200/s) requeues run one after
		// the other, evenly spaced, and so in practice are attempted in
		// order. Above, about a fifteenth of the rate runs at once, and a
		// burst of a twentieth of a second makes up for timer slack
		// without sending a second's worth at once.
		burst := 1
		parallel = 1
		if perSecond > 250 {
			burst = int(perSecond / 20)
			parallel = min(replayParallel, int(math.Ceil(perSecond/15)))
		}
		lim = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	first := make(chan struct{})
	close(first)
	var prev <-chan struct{} = first
	err := q.Each(query, func(d history.Delivery) error {
		if lim != nil {
			if err := lim.Wait(gctx); err != nil {
				return err
			}
		} else if err := gctx.Err(); err != nil {
			return err
		}
		t := &turn{prev: prev, done: make(chan struct{})}
		prev = t.done
		g.Go(func() error {
			defer t.release()
			return fn(gctx, d, t)
		})
		return nil
	})
	if gerr := g.Wait(); gerr != nil {
		return gerr
	}
	return err
}

// catchUp waits until this replica's index holds subID's last audit record.
func (q *Queue) catchUp(ctx context.Context, subID string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	str, err := q.deps.JS.Stream(ctx, jetstream.StreamAudit)
	if err != nil {
		return fmt.Errorf("stream %s: %w", jetstream.StreamAudit, err)
	}
	// Its records are on its own subject (one per message) or in batches
	// shared with the others (history.BatchSubject): wait for the later.
	var through uint64
	for _, subject := range []string{jetstream.AuditSubject(subID), history.BatchSubject} {
		last, err := str.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, natsjs.ErrMsgNotFound) {
			continue // nothing recorded there yet
		}
		if err != nil {
			return fmt.Errorf("last audit record of %s: %w", subID, err)
		}
		through = max(through, last.Sequence)
	}
	if through == 0 {
		return nil
	}
	return q.deps.Index.WaitApplied(ctx, through)
}
