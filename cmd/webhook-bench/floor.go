package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// floor is the least a pipeline does to keep webhookd's guarantees, built
// from webhookd's own parts and run in this process in its place
// (--floor): events stored in EVENTS; each fanned out to a job per
// subscription in DELIVERIES, the event acked once its jobs are stored;
// each job attempted by delivery.Deliverer (envelope, both signatures, the
// outbound guard); its attempt record published to AUDIT and confirmed
// before the job is acked; every record indexed by history.Indexer into a
// bbolt file. Its streams, consumers and NATS file-store sync are
// webhookd's defaults. What it leaves out is webhookd's orchestration: the
// subscription store and mirror, endpoint health and isolation, retries
// and their rules, the room check, shutdown, metrics, logs, the admin API.
//
// The harness measures the deliveries and their latency of both the same
// way, so the gap between them is what that orchestration costs, and the
// floor's figures are what these parts reach together on the machine. Its
// CPU and RSS are not comparable with webhookd's: they are the whole
// tool's, publisher and receivers included.
type floor struct {
	nc        *nats.Conn
	db        *bolt.DB
	store     *history.Store // the index
	deliverer *delivery.Deliverer
	consume   []func() // stop taking events and jobs
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// startFloor runs the floor pipeline against the NATS server at natsURL,
// with its index in dir, delivering every event to subs with workers
// concurrent attempts.
func startFloor(ctx context.Context, natsURL, dir string, subs []subscriptions.Subscription, workers int) (*floor, error) {
	nc, err := nats.Connect(natsURL, nats.Name("webhook-bench floor"))
	if err != nil {
		return nil, fmt.Errorf("floor: connect: %w", err)
	}
	f := &floor{nc: nc, cancel: func() {}}
	ok := false
	defer func() {
		if !ok {
			_ = f.stop()
		}
	}()
	js, err := natsjs.New(nc)
	if err != nil {
		return nil, fmt.Errorf("floor: jetstream: %w", err)
	}
	def := config.Default()
	if err := jetstream.Provision(ctx, js, jetstream.Provisioning{
		AuditRetention: def.Retention, AckWait: def.AckWait, MaxAckPending: def.MaxAckPending,
		MaxEventBytes: def.MaxEventSize, MaxStore: def.MaxStore,
	}); err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "floor.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("floor: index: %w", err)
	}
	f.db = db
	store, err := history.OpenStore(db, zerolog.Nop())
	if err != nil {
		return nil, fmt.Errorf("floor: index: %w", err)
	}
	f.store = store
	deliverer := delivery.NewDeliverer(delivery.Config{
		DefaultTimeout: def.DeliveryTimeout, AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	f.deliverer = deliverer
	recorder := history.NewRecorder(js, store, "floor")

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	indexer := history.NewIndexer(history.IndexerConfig{Replica: "floor", Retention: def.Retention}, js, store, zerolog.Nop())
	f.wg.Go(func() { _ = indexer.Run(runCtx) })  // it returns nil, once runCtx is done
	f.wg.Go(func() { _ = recorder.Run(runCtx) }) // likewise

	router, err := js.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
	if err != nil {
		return nil, fmt.Errorf("floor: router consumer: %w", err)
	}
	routed := make(chan fanned, 1024)
	f.wg.Go(func() { settleFanOuts(runCtx, routed) })
	cc, err := router.Consume(func(m natsjs.Msg) {
		if runCtx.Err() != nil {
			return // stopping: the event stays for redelivery
		}
		select {
		case routed <- fanOut(js, m, subs):
		case <-runCtx.Done():
		}
	}, natsjs.PullMaxMessages(1024))
	if err != nil {
		return nil, fmt.Errorf("floor: consume events: %w", err)
	}
	f.consume = append(f.consume, cc.Stop)

	byID := make(map[string]subscriptions.Subscription, len(subs))
	for _, s := range subs {
		byID[s.ID] = s
	}
	wcons, err := js.Consumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
	if err != nil {
		return nil, fmt.Errorf("floor: workers consumer: %w", err)
	}
	it, err := wcons.Messages(natsjs.PullMaxMessages(workers))
	if err != nil {
		return nil, fmt.Errorf("floor: consume jobs: %w", err)
	}
	f.consume = append(f.consume, it.Stop)
	for range workers {
		f.wg.Go(func() {
			for {
				m, err := it.Next()
				if errors.Is(err, natsjs.ErrMsgIteratorClosed) {
					return
				}
				if err != nil { // a missed heartbeat and the like: the iterator goes on
					select {
					case <-runCtx.Done():
						return
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				attempt(runCtx, deliverer, recorder, byID, m)
			}
		})
	}
	ok = true
	return f, nil
}

// fanned is an event whose jobs are on their way to DELIVERIES.
type fanned struct {
	event natsjs.Msg
	jobs  []natsjs.PubAckFuture
	err   error
}

// ackTimeout bounds the wait for a stream's acknowledgement, as
// webhookd's recordTimeout does.
const ackTimeout = 10 * time.Second

// fanOut publishes one job per subscription for event m.
func fanOut(js natsjs.JetStream, m natsjs.Msg, subs []subscriptions.Subscription) fanned {
	md, err := m.Metadata()
	if err != nil {
		return fanned{event: m, err: err}
	}
	ev := delivery.Event{ID: delivery.EventIDFromSequence("", md.Sequence.Stream), Type: jetstream.EventType(m.Subject()),
		Timestamp: md.Timestamp, Seq: md.Sequence.Stream, Data: m.Data()}
	fo := fanned{event: m}
	now := time.Now()
	for _, s := range subs {
		job := delivery.NewJob(ev, s.ID, now)
		fut, err := js.PublishMsgAsync(job.Msg(jetstream.DeliverySubject(s.ID)), natsjs.WithMsgID(job.MsgID()), natsjs.WithStallWait(time.Second))
		if err != nil {
			fo.err = err
			break
		}
		fo.jobs = append(fo.jobs, fut)
	}
	return fo
}

// stored waits for fut's acknowledgement, until deadline fires or ctx is
// done, and reports whether the message was stored.
func stored(ctx context.Context, fut natsjs.PubAckFuture, deadline <-chan time.Time) bool {
	select {
	case <-fut.Ok():
		return true
	case <-fut.Err():
	case <-deadline:
	case <-ctx.Done():
	}
	return false
}

// settleFanOuts acks each event once all its jobs are stored, within
// ackTimeout, and naks it otherwise, until ctx is done.
func settleFanOuts(ctx context.Context, routed <-chan fanned) {
	for {
		var fo fanned
		select {
		case <-ctx.Done():
			return
		case fo = <-routed:
		}
		deadline := time.NewTimer(ackTimeout)
		ok := fo.err == nil
		for _, fut := range fo.jobs {
			ok = ok && stored(ctx, fut, deadline.C)
		}
		deadline.Stop()
		if !ok {
			_ = fo.event.NakWithDelay(time.Second)
			continue
		}
		_ = fo.event.Ack()
	}
}

// attempt delivers job message m, records the attempt in AUDIT and acks m
// once the record is stored and the receiver answered 2xx; otherwise it
// naks m, and its next delivery is recorded as the next attempt.
func attempt(ctx context.Context, d *delivery.Deliverer, rec *history.Recorder, subs map[string]subscriptions.Subscription, m natsjs.Msg) {
	job, err := delivery.DecodeJob(m.Headers(), m.Data())
	if err != nil {
		_ = m.Term()
		return
	}
	if md, err := m.Metadata(); err == nil {
		job.Attempt += int(md.NumDelivered) - 1 // a nak'ed attempt's next run
	}
	sub := subs[job.SubscriptionID]
	res := d.Attempt(ctx, job, sub)
	status := delivery.StatusSucceeded
	if res.Outcome != delivery.OutcomeSucceeded {
		status = delivery.StatusRetrying
	}
	r := history.Record{
		DeliveryID: job.ID, EventID: job.EventID, Event: job.Event, SubscriptionID: job.SubscriptionID, URL: sub.URL,
		Status: status, Reason: res.Reason, At: time.Now().UTC(), CreatedAt: job.CreatedAt,
		Attempt: history.NewAttemptInfo(res, job.Attempt, job.Attempt, sub.URL),
	}
	// Settled once AUDIT confirms the batch holding the record, as
	// webhookd does.
	written := make(chan error, 1)
	rec.Record(r, nil, func(err error) { written <- err })
	recorded := false
	deadline := time.NewTimer(ackTimeout)
	select {
	case err := <-written:
		recorded = err == nil
	case <-deadline.C:
	case <-ctx.Done():
	}
	deadline.Stop()
	if !recorded || status != delivery.StatusSucceeded {
		_ = m.NakWithDelay(100 * time.Millisecond)
		return
	}
	_ = m.Ack()
}

// floorSubscriptions returns a subscription for each receiver, with a fresh
// secret the receiver verifies.
func floorSubscriptions(receivers []*receiver) ([]subscriptions.Subscription, error) {
	var subs []subscriptions.Subscription
	for _, r := range receivers {
		s, err := signature.NewSecret()
		if err != nil {
			return nil, err
		}
		r.secret.Store(&s)
		subs = append(subs, subscriptions.Subscription{ID: uuid.NewString(), URL: r.url, Events: []string{eventType}, Active: true, Secret: s})
	}
	return subs, nil
}

// stop stops the pipeline. It has no failure to report; the error is
// for the bench's target.
func (f *floor) stop() error {
	for _, stop := range f.consume {
		stop()
	}
	f.cancel()
	f.wg.Wait()
	if f.deliverer != nil {
		f.deliverer.Close()
	}
	if f.db != nil {
		_ = f.db.Close()
	}
	f.nc.Close()
	return nil
}

var errFloorOptions = errors.New("--floor runs its own NATS server and pipeline: not with --attach, --backlog or --webhookd-args")
