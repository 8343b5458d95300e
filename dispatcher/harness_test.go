package dispatcher_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

// bundle is one dispatcher replica with real parts: an embedded JetStream
// server, a bbolt file, the subscription mirror, the history store and
// indexer, and the HTTP deliverer allowed to reach loopback receivers.
type bundle struct {
	ns        *jstest.Server
	subs      *subscriptions.Store
	store     *history.Store
	disp      *dispatcher.Dispatcher
	queue     *dispatcher.Queue
	endpoints *endpoint.Endpoints
	nc        *nats.Conn // the replica's own connection
	stop      func()     // stops the replica gracefully (idempotent)
	crash     func()     // cuts the replica off from NATS at once, like kill -9
}

type options struct {
	policy          *delivery.Policy
	workers         int
	shutdownTimeout time.Duration
	prov            func(*jetstream.Provisioning)
	server          *jstest.Server // share a server between replicas
	health          endpoint.Config
	maxEventBytes   int
	// recorder wraps the replica's recorder (to make it fail).
	recorder func(dispatcher.Recorder) dispatcher.Recorder
	// attempter wraps the replica's attempter (to count or break attempts).
	attempter func(dispatcher.Attempter) dispatcher.Attempter
	// observer is told what the replica did (metrics); nil: none.
	observer dispatcher.Observer
	// heldSweep is the Queue's HeldSweep (default: a minute).
	heldSweep time.Duration
	// noFastPath spills every first attempt to DELIVERIES: for tests of
	// the job path.
	noFastPath bool
}

func setup(t testing.TB, o options) *bundle {
	t.Helper()
	prov := jstest.Provisioning()
	if o.prov != nil {
		o.prov(&prov)
	}
	ns := o.server
	if ns == nil {
		ns = jstest.RunServer(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, jetstream.Provision(ctx, ns.JS, prov))
		// Keeps every event with its stored time, which delivery ids
		// begin with (see jobID), after the router has taken it from the
		// work queue. Its consumer, inside the server, gets each event as
		// EVENTS stores it, before any router can route and ack it; it
		// must be running before the first event.
		mirror, err := ns.JS.CreateStream(ctx, natsjs.StreamConfig{Name: eventsSeen, Storage: natsjs.MemoryStorage,
			Mirror: &natsjs.StreamSource{Name: jetstream.StreamEvents}})
		require.NoError(t, err)
		for {
			info, err := mirror.Info(ctx)
			require.NoError(t, err)
			if info.Mirror != nil && info.Mirror.Active >= 0 {
				break
			}
			require.NoError(t, ctx.Err(), "the mirror of EVENTS never became active")
			time.Sleep(5 * time.Millisecond) // the server sets the mirror up on its own
		}
	}
	if o.policy == nil {
		o.policy = delivery.Schedule(100*time.Millisecond, 200*time.Millisecond, 300*time.Millisecond)
	}
	if o.workers == 0 {
		o.workers = 8
	}
	if o.shutdownTimeout == 0 {
		o.shutdownTimeout = 10 * time.Second
	}
	level := zerolog.InfoLevel
	if _, bench := t.(*testing.B); bench {
		level = zerolog.WarnLevel // a line per attempt would measure the test log
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(level)

	// The replica's own connection, so a test can cut it like a crash would.
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	js, err := natsjs.New(nc)
	require.NoError(t, err)

	db, err := bolt.Open(filepath.Join(t.TempDir(), "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), jetstream.BucketSubscriptions)
	require.NoError(t, err)
	subs, err := subscriptions.Open(kv, db, log)
	require.NoError(t, err)
	store, err := history.OpenStore(db, zerolog.Nop())
	require.NoError(t, err)
	replica := strconv.FormatInt(time.Now().UnixNano(), 36)
	exprs, err := expr.NewCompiler() // the router's and the deliverer's, as in webhookd
	require.NoError(t, err)
	deliverer := delivery.NewDeliverer(delivery.Config{
		DefaultTimeout: 5 * time.Second,
		AllowTargets:   []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Exprs:          exprs, MaxBodyBytes: o.maxEventBytes,
	})
	recorder := history.NewRecorder(js, store, replica)
	var rec dispatcher.Recorder = recorder
	if o.recorder != nil {
		rec = o.recorder(rec)
	}
	// A crash also cuts off the replica's HTTP attempts, as kill -9 would.
	dead, kill := context.WithCancel(context.Background())
	var att dispatcher.Attempter = crashable{Attempter: deliverer, dead: dead}
	if o.attempter != nil {
		att = o.attempter(att)
	}
	if o.health.BreakerFailures == 0 {
		o.health.BreakerFailures = 1000 // tests of the breaker turn it on
	}
	endpoints := endpoint.NewEndpoints(o.health, log)
	disp, err := dispatcher.New(dispatcher.Config{
		Workers: o.workers, ShutdownTimeout: o.shutdownTimeout, AckWait: prov.AckWait,
		EventTypes: config.Catalog(), MaxEventBytes: o.maxEventBytes, NoFastPath: o.noFastPath,
	}, dispatcher.Deps{
		JS: js, Subscriptions: subs, Attempter: att, Recorder: rec, Policy: o.policy, Endpoints: endpoints,
		Observer: o.observer, Exprs: exprs,
	}, log)
	require.NoError(t, err)
	indexer := history.NewIndexer(history.IndexerConfig{Replica: replica, Retention: time.Hour}, js, store, log)
	queue := dispatcher.NewQueue(dispatcher.QueueDeps{JS: js, Store: store, Recorder: recorder, Subscriptions: subs, Index: indexer}, 1000, log)
	queue.HeldSweep = o.heldSweep

	// The recorder outlives the dispatcher, which records while it stops.
	rctx, rcancel := context.WithCancel(context.Background())
	recorded := make(chan error, 1)
	go func() { recorded <- recorder.Run(rctx) }()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 4)
	go func() { errs <- subs.Run(ctx) }()
	go func() { errs <- indexer.Run(ctx) }()
	go func() { errs <- queue.Run(ctx) }()
	select {
	case <-subs.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("subscription mirror not ready")
	}
	go func() { errs <- disp.Run(ctx) }()

	var once sync.Once
	var crashed atomic.Bool
	stop := func() {
		once.Do(func() {
			cancel()
			for range 4 {
				if err := <-errs; !crashed.Load() {
					require.NoError(t, err)
				}
			}
			rcancel()
			if err := <-recorded; !crashed.Load() {
				require.NoError(t, err)
			}
			nc.Close()
			deliverer.Close()
			require.NoError(t, db.Close())
		})
	}
	t.Cleanup(stop)
	crash := func() {
		crashed.Store(true)
		kill()     // no attempt reaches a receiver any more
		nc.Close() // no ack, nak or record reaches the server any more
	}
	return &bundle{ns: ns, subs: subs, store: store, disp: disp, queue: queue, endpoints: endpoints, nc: nc, stop: stop, crash: crash}
}

// crashable cuts its attempts off once dead is done: a killed replica's
// attempts in flight never get their answer, and it makes no new ones.
type crashable struct {
	dispatcher.Attempter
	dead context.Context
}

func (c crashable) Attempt(ctx context.Context, job delivery.Job, sub subscriptions.Subscription) delivery.Result {
	if c.dead.Err() != nil {
		return delivery.Result{Outcome: delivery.OutcomeFailed, Reason: "killed (test)", Err: c.dead.Err()}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.dead, cancel)()
	return c.Attempter.Attempt(ctx, job, sub)
}

// subscribe creates a subscription through the store (the Go API).
func (b *bundle) subscribe(t testing.TB, url string, events ...string) subscriptions.Subscription {
	t.Helper()
	sub, err := b.subs.Create(context.Background(), subscriptions.Subscription{URL: url, Events: events})
	require.NoError(t, err)
	return sub
}

// publish publishes an event as a robot would: to events.<type>, through the
// test server's client connection, optionally with a Nats-Msg-Id. It
// returns the event's stream sequence.
func (b *bundle) publish(t testing.TB, eventType, data, msgID string) uint64 {
	t.Helper()
	m := nats.NewMsg(jetstream.EventSubject(eventType))
	m.Data = []byte(data)
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a loaded CI machine
	defer cancel()
	ack, err := b.ns.JS.PublishMsg(ctx, m)
	require.NoError(t, err)
	return ack.Sequence
}

// deliver publishes an event with id eventID and returns the id of its
// delivery to sub.
func (b *bundle) deliver(t testing.TB, sub subscriptions.Subscription, eventType, data, eventID string) string {
	t.Helper()
	return b.jobID(t, eventID, sub.ID, b.publish(t, eventType, data, eventID))
}

// eventsSeen is the test server's mirror of EVENTS.
const eventsSeen = "EVENTS_SEEN"

// jobID returns the id of the delivery to subID of the event eventID
// stored at EVENTS sequence seq.
func (b *bundle) jobID(t testing.TB, eventID, subID string, seq uint64) string {
	t.Helper()
	return delivery.JobID(eventID, subID, seq, b.storedAt(t, seq))
}

// storedAt returns when EVENTS stored the event at seq, which delivery ids
// begin with: the mirror keeps it (with its sequence) after the router has
// taken the event from the work queue.
func (b *bundle) storedAt(t testing.TB, seq uint64) time.Time {
	t.Helper()
	ctx := context.Background()
	str, err := b.ns.JS.Stream(ctx, eventsSeen)
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := str.GetMsg(ctx, seq)
		if err == nil {
			return m.Time
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %d not in the mirror of EVENTS within 10s: %v", seq, err)
		}
		time.Sleep(5 * time.Millisecond) // the mirror's copy has no event to await
	}
}

// newJob builds the first job that delivers an empty event to subID.
func newJob(t testing.TB, eventID, eventType, subID string) delivery.Job {
	t.Helper()
	ev := delivery.Event{ID: eventID, Type: eventType, Timestamp: time.Now(), Seq: 1, Data: []byte(`{}`)}
	return delivery.NewJob(ev, subID, time.Now())
}

// publishJob puts a job on DELIVERIES directly, as a router (or an operator
// requeue) would, with msgID as its Nats-Msg-Id when given.
func (b *bundle) publishJob(t testing.TB, job delivery.Job, msgID string) {
	t.Helper()
	m := job.Msg(jetstream.DeliverySubject(job.SubscriptionID))
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	_, err := b.ns.JS.PublishMsg(context.Background(), m)
	require.NoError(t, err)
}

// waitDelivery waits until the delivery reaches status.
func (b *bundle) waitDelivery(t *testing.T, id string, status delivery.Status) history.Delivery {
	t.Helper()
	var d history.Delivery
	waitUntil(t, 15*time.Second, func() bool {
		var err error
		d, err = b.store.Get(id)
		return err == nil && d.Status == status
	}, "delivery "+id+" to be "+string(status))
	return d
}

// workersIdle reports whether both consumers are settled: the router holds
// no event (one in flight has first attempts running on the fast path) and
// the workers no job, pending or waiting for a retry.
func (b *bundle) workersIdle(t *testing.T) bool {
	t.Helper()
	for _, c := range [][2]string{{jetstream.StreamEvents, jetstream.ConsumerRouter}, {jetstream.StreamDeliveries, jetstream.ConsumerWorkers}} {
		pending, ackPending := b.consumerState(t, c[0], c[1])
		if pending != 0 || ackPending != 0 {
			return false
		}
	}
	return true
}

// consumerState returns a consumer's messages not yet delivered and those
// delivered but not settled.
func (b *bundle) consumerState(t *testing.T, stream, consumer string) (pending uint64, ackPending int) {
	t.Helper()
	c, err := b.ns.JS.Consumer(context.Background(), stream, consumer)
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	return info.NumPending, info.NumAckPending
}

// waitUntil polls cond: for state that lives in a store or in JetStream
// there is no event to await.
func waitUntil(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// request is one request a receiver got.
type request struct {
	at     time.Time
	header http.Header
	body   []byte
	event  map[string]any
}

// receiver is a real HTTP endpoint that answers with status(n) for its n-th
// request (from 1) and sends every request to reqs.
type receiver struct {
	*httptest.Server
	reqs chan request
}

func newReceiver(t testing.TB, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{reqs: make(chan request, 1024)}
	var mu sync.Mutex
	n := 0
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		at := time.Now()
		mu.Lock()
		n++
		nth := n
		mu.Unlock()
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		r.reqs <- request{at: at, header: req.Header.Clone(), body: body, event: ev}
		w.WriteHeader(status(nth)) // status may block to hold a request in flight
	}))
	t.Cleanup(r.Close)
	return r
}

func always(code int) func(int) int { return func(int) int { return code } }

// next waits for the receiver's next request.
func (r *receiver) next(t testing.TB, timeout time.Duration) request {
	t.Helper()
	select {
	case req := <-r.reqs:
		return req
	case <-time.After(timeout):
		t.Fatalf("no request within %s", timeout)
		return request{}
	}
}
