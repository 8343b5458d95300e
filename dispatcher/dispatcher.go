package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/internal/tracing"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

// ErrStopping is the cause of the work context's cancellation on shutdown:
// an attempt cut off by it is not a receiver failure.
var ErrStopping = errors.New("dispatcher: stopping")

// Config configures a Dispatcher.
type Config struct {
	// Workers is the number of concurrent delivery attempts.
	Workers int
	// Routers is the number of events routed at once (default 16): a
	// router starts its event's first attempts on the fast path, waiting
	// for capacity when Workers attempts are in flight, and stores the
	// jobs it spills.
	Routers int
	// ShutdownTimeout bounds how long in-flight attempts may run after stop.
	ShutdownTimeout time.Duration
	// AckWait of the workers consumer; InProgress is sent every AckWait/3.
	AckWait time.Duration
	// EventTypes is the catalog: events of other types are rejected.
	EventTypes []string
	// MaxEventBytes rejects events whose data is larger (default 1 MiB).
	MaxEventBytes int
	// NoFastPath spills every first attempt to DELIVERIES, as before the
	// fast path: for comparisons, and for tests of the job path.
	NoFastPath bool
	// EventIDSalt is EVENTS's salt (jetstream.EventSalt), from which an
	// event without a Nats-Msg-Id gets its id.
	EventIDSalt string
}

// Subscriptions is what the dispatcher needs of the subscription store:
// the local index, the record of truth when the index may lag, and the
// writes endpoint health makes.
type Subscriptions interface {
	Match(eventType string) []subscriptions.Subscription
	Get(id string) (subscriptions.Subscription, bool)
	Fetch(ctx context.Context, id string) (subscriptions.Subscription, error)
	// Disable sets the subscription inactive with a reason; changed is
	// false when it already was inactive.
	Disable(ctx context.Context, id, reason string, at time.Time) (sub subscriptions.Subscription, changed bool, err error)
	// SetFailingSince persists the start of a run of failures (zero: none).
	SetFailingSince(ctx context.Context, id string, t time.Time) error
}

// Attempter makes one HTTP attempt.
type Attempter interface {
	Attempt(ctx context.Context, job delivery.Job, sub subscriptions.Subscription) delivery.Result
}

// Recorder writes audit records durably (see history.Recorder).
type Recorder interface {
	// Record queues rec, with keep (the job kept beside it for a later
	// requeue), for the recorder's next AUDIT batch and returns at once;
	// done is called exactly once, with nil once AUDIT confirmed the
	// record, and must not block.
	Record(rec history.Record, keep *delivery.Job, done func(error))
	// Publish records rec and waits for the confirmation.
	Publish(ctx context.Context, rec history.Record, keep *delivery.Job) error
}

// Observer is told what the dispatcher did, once each fact is durable: for
// metrics. It is called from every router and worker goroutine, so it must
// be safe for concurrent use and cheap.
type Observer interface {
	// Event: an event of eventType was routed, acked without a subscriber
	// or recorded as rejected (ResultRouted, ResultNoSubscriber,
	// ResultRejected).
	Event(eventType, result string)
	// Attempt: an attempt's record was confirmed (an attempt re-run after
	// a crash is an attempt the receiver saw, and counts again); reason is
	// delivery.ReasonSucceeded or the failure reason.
	Attempt(subscriptionID, reason string, took time.Duration)
	// Finished: a record of the delivery with this status was written:
	// succeeded, failed, cancelled, paused (held), rejected (an event, with
	// an empty subscriptionID), or retrying, which is not final.
	Finished(subscriptionID string, status delivery.Status)
	// FilterError: the filter of subscriptionID failed on an event (a
	// missing field, the cost limit), which then did not match it.
	FilterError(subscriptionID string)
}

// Results of an event, for Observer.Event.
const (
	ResultRouted       = "routed"
	ResultNoSubscriber = "no_subscriber"
	ResultRejected     = "rejected"
)

// nopObserver is the Observer when Deps has none.
type nopObserver struct{}

func (nopObserver) Event(string, string)                  {}
func (nopObserver) Attempt(string, string, time.Duration) {}
func (nopObserver) Finished(string, delivery.Status)      {}
func (nopObserver) FilterError(string)                    {}

// Deps are the Dispatcher's collaborators.
type Deps struct {
	JS            natsjs.JetStream
	Subscriptions Subscriptions
	Attempter     Attempter
	Recorder      Recorder
	Policy        *delivery.Policy    // the default retry policy
	Endpoints     *endpoint.Endpoints // per-subscription caps and breakers
	Observer      Observer            // optional: metrics
	// Tracer makes each routed event a span continuing the message's
	// traceparent, whose context the event's jobs carry (nil: off).
	Tracer *tracing.Tracer
	// Schemas checks each event's data (--event-schemas; nil: none).
	Schemas Schemas
	// Exprs compiles subscriptions' filters and ordering keys; the admin API shares it, so
	// an expression it accepted is the program the router runs (nil: the
	// dispatcher makes its own).
	Exprs *expr.Compiler
}

// Schemas checks an event's data against its type's schema (see
// delivery/schema): Validate returns "" when it passes or the type has
// none, else the one-line reason the event is rejected.
type Schemas interface {
	Validate(eventType string, data []byte) (reason string)
}

// Stats counts what the dispatcher did since it started.
type Stats struct {
	Routed       uint64 `json:"routed"`        // events fanned out to at least one subscription
	NoSubscriber uint64 `json:"no_subscriber"` // events acked without a matching subscription
	Rejected     uint64 `json:"rejected"`      // events recorded as rejected
	Jobs         uint64 `json:"jobs"`          // delivery jobs stored in DELIVERIES: spilled first attempts and retries
	Attempts     uint64 `json:"attempts"`      // HTTP attempts recorded
	Deferred     uint64 `json:"deferred"`      // jobs put back unattempted: endpoint full or breaker open
	Held         uint64 `json:"held"`          // jobs held for a paused or disabled subscription
	KeyErrors    uint64 `json:"key_errors"`    // branches delivered unordered: their ordering key failed
}

// Map returns the counters by their JSON names.
func (s Stats) Map() map[string]uint64 {
	return map[string]uint64{
		"routed": s.Routed, "no_subscriber": s.NoSubscriber, "rejected": s.Rejected,
		"jobs": s.Jobs, "attempts": s.Attempts, "deferred": s.Deferred, "held": s.Held, "key_errors": s.KeyErrors,
	}
}

// Dispatcher runs the router and the worker pool.
type Dispatcher struct {
	cfg     Config
	deps    Deps
	log     zerolog.Logger
	now     func() time.Time
	catalog map[string]bool
	room    *room
	funnel  *funnel
	cap     capacity
	// branches counts fast-path attempts running outside the pools.
	branches sync.WaitGroup
	// settling feeds the settlers the settlements whose records are on
	// their way; outstanding bounds them (a place each), and pending
	// counts them for the shutdown.
	settling    chan *pendingSettle
	outstanding chan struct{}
	pending     sync.WaitGroup
	// listens holds events for listen subscriptions (listen.go).
	listens chan heard

	// ordered owns this replica's partitions of ORDERED while Run runs.
	ordered atomic.Pointer[ordered]
	// routedLog knows the events routed far enough for ordered heads to
	// start, on every replica, and how many replicas run.
	routedLog *routedLog

	routed, noSubscriber, rejected, jobs, attempts, deferred, held, keyErrors atomic.Uint64
}

// New checks cfg and deps and returns a Dispatcher; Run starts it.
func New(cfg Config, deps Deps, log zerolog.Logger) (*Dispatcher, error) {
	if cfg.Workers < 1 {
		return nil, fmt.Errorf("dispatcher: workers %d: want at least 1", cfg.Workers)
	}
	if cfg.Routers < 1 {
		cfg.Routers = 16
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = 1 << 20
	}
	if cfg.AckWait <= 0 || cfg.ShutdownTimeout <= 0 {
		return nil, errors.New("dispatcher: AckWait and ShutdownTimeout must be positive")
	}
	if deps.JS == nil || deps.Subscriptions == nil || deps.Attempter == nil || deps.Recorder == nil || deps.Policy == nil || deps.Endpoints == nil {
		return nil, errors.New("dispatcher: missing dependency")
	}
	if deps.Observer == nil {
		deps.Observer = nopObserver{}
	}
	if deps.Exprs == nil {
		var err error
		if deps.Exprs, err = expr.NewCompiler(); err != nil {
			return nil, fmt.Errorf("dispatcher: %w", err)
		}
	}
	catalog := make(map[string]bool, len(cfg.EventTypes))
	for _, t := range cfg.EventTypes {
		catalog[t] = true
	}
	log = log.With().Str("component", "dispatcher").Logger()
	bound := maxOutstanding * cfg.Workers
	d := &Dispatcher{
		cfg: cfg, deps: deps, log: log, now: time.Now,
		catalog: catalog, room: newRoom(deps.JS), funnel: &funnel{log: log, nc: deps.JS.Conn()}, cap: newCapacity(cfg.Workers),
		settling: make(chan *pendingSettle, bound), outstanding: make(chan struct{}, bound),
		listens:   make(chan heard, listenQueue),
		routedLog: newRoutedLog(deps.JS.Conn(), log),
	}
	return d, nil
}

// Stats returns the counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{
		Routed: d.routed.Load(), NoSubscriber: d.noSubscriber.Load(), Rejected: d.rejected.Load(),
		Jobs: d.jobs.Load(), Attempts: d.attempts.Load(), Deferred: d.deferred.Load(), Held: d.held.Load(),
		KeyErrors: d.keyErrors.Load(),
	}
}

// Run routes events and delivers jobs until ctx is done, then shuts down as
// the package doc describes and returns nil. It returns an error if the
// consumers cannot be bound.
func (d *Dispatcher) Run(ctx context.Context) error {
	routerCons, err := d.deps.JS.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
	if ctx.Err() != nil {
		return nil // stopped while starting
	}
	if err != nil {
		return fmt.Errorf("dispatcher: bind router consumer: %w", err)
	}
	workerCons, err := d.deps.JS.Consumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dispatcher: bind workers consumer: %w", err)
	}
	ord, err := newOrdered(ctx, d, routerCons)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	// workCtx outlives ctx so in-flight attempts can finish after a stop.
	workCtx, cancelWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelWork(ErrStopping)
	// The routed log tells the other replicas until every router returned.
	logCtx, endLog := context.WithCancel(context.WithoutCancel(ctx))
	logDone := make(chan struct{})
	go func() { defer close(logDone); d.routedLog.run(logCtx) }()
	defer func() { endLog(); <-logDone }()
	var settlers sync.WaitGroup
	quit := make(chan struct{})
	for range settlerCount {
		settlers.Add(1)
		go func() {
			defer settlers.Done()
			for {
				select {
				case p := <-d.settling:
					d.settled(p)
					<-d.outstanding
					d.pending.Done()
				case <-quit:
					return
				}
			}
		}()
	}
	lctx, stopListens := context.WithCancel(context.WithoutCancel(ctx))
	listened := make(chan struct{})
	go func() { defer close(listened); d.publishListens(lctx) }()
	defer func() { stopListens(); <-listened }()
	// Every worker and branch has returned, and every record they handed
	// over is settled, before the settlers are told to finish.
	defer func() { d.pending.Wait(); close(quit); settlers.Wait() }()
	pools := []*pool{
		// Routers stop pulling while the fast path has no token free.
		{name: jetstream.ConsumerRouter, cons: routerCons, n: d.cfg.Routers, funnel: d.funnel, log: d.log, tokens: d.cap,
			handle: func(m natsjs.Msg) {
				d.safely(workCtx, m, func(work context.Context, m natsjs.Msg) { d.route(work, ctx, m) })
			}},
		{name: jetstream.ConsumerWorkers, cons: workerCons, n: d.cfg.Workers, funnel: d.funnel, log: d.log,
			handle: func(m natsjs.Msg) { d.safely(workCtx, m, d.work) }},
	}
	var wg sync.WaitGroup
	for _, p := range pools {
		wg.Add(1)
		go func() { defer wg.Done(); p.run(ctx) }()
	}
	d.ordered.Store(ord)
	wg.Add(1)
	go func() { defer wg.Done(); ord.run(ctx, workCtx) }()
	d.log.Info().Int("workers", d.cfg.Workers).Int("routers", d.cfg.Routers).Msg("dispatcher started")

	<-ctx.Done()
	// From now on every ack and nak is confirmed by the server, so none is
	// lost if the server stops right after this replica (see funnel).
	d.funnel.confirm.Store(true)
	// Jobs and branches waiting in memory for a busy endpoint go back at
	// once: jobs nak'ed, branches spilled to DELIVERIES.
	d.deps.Endpoints.Flush()
	done := make(chan struct{})
	go func() { wg.Wait(); d.branches.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.cfg.ShutdownTimeout):
		d.log.Warn().Dur("shutdown_timeout", d.cfg.ShutdownTimeout).Msg("cancelling in-flight attempts")
		cancelWork(ErrStopping)
		<-done
	}
	d.log.Info().Msg("dispatcher stopped")
	return nil
}

// safely runs handle, turning a panic (a bug of ours, set off by one
// message) into a delayed redelivery of that message, so it stops neither
// the process nor the other messages.
func (d *Dispatcher) safely(ctx context.Context, m natsjs.Msg, handle func(context.Context, natsjs.Msg)) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error().Str("subject", m.Subject()).Interface("panic", p).Bytes("stack", debug.Stack()).
				Msg("handling a message panicked; it will be redelivered")
			d.funnel.nak(m, panicDelay)
		}
	}()
	handle(ctx, m)
}

// settlerCount is how many goroutines finish settlements whose records
// were confirmed: queue the next attempt, settle, log.
const settlerCount = 4

// maxOutstanding times Config.Workers is how many settlements may wait for
// their records at once; a worker that would exceed it waits.
const maxOutstanding = 4

// panicDelay is how long a message whose handling panicked waits.
const panicDelay = 30 * time.Second
