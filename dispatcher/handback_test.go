package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

// connectTo wraps a running restartable server as setup's shared server.
func connectTo(t *testing.T, r *jstest.Restartable) *jstest.Server {
	t.Helper()
	nc, err := nats.Connect(r.URL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	return &jstest.Server{Server: r.Server(), NC: nc, JS: js}
}

// What a graceful stop hands back is still handed back when the NATS
// server restarts right after it, as the embedded server does with its
// webhookd: the next replica, on the restarted server, attempts every
// unstarted delivery at once, not after AckWait. (JetStream keeps a plain
// nak in memory only; a message nak'ed and not yet redelivered when the
// server stops is redelivered after its AckWait once it is back.)
func TestGracefulStopHandsBackAcrossANATSRestart(t *testing.T) {
	t.Parallel()
	const events, limit = 40, 8
	const ackWait = 30 * time.Second
	ack := func(p *jetstream.Provisioning) { p.AckWait = ackWait }
	r := jstest.RunRestartable(t)
	first := connectTo(t, r)
	prov := jstest.Provisioning()
	ack(&prov)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, jetstream.Provision(ctx, first.JS, prov))

	a := setup(t, options{server: first, workers: 16, prov: ack, shutdownTimeout: 30 * time.Second,
		health: endpoint.Config{MaxInFlight: limit}})
	hang := newGate(t)
	_, err := a.subs.Create(context.Background(), subscriptions.Subscription{
		URL: hang.URL, Events: []string{"task.completed"}, Timeout: time.Minute,
	})
	require.NoError(t, err)
	publishMany(t, a, "task.completed", "restart", events)
	waitUntil(t, 10*time.Second, func() bool { return hang.inFlight.Load() == limit }, "the endpoint's cap in flight")

	stopped := make(chan struct{})
	go func() { a.stop(); close(stopped) }()
	// Its attempts in flight finish (the stopping replica may start one
	// more as its slots free, before its memory queue is flushed).
	hang.open()
	<-stopped
	r.Stop()
	r.Start()

	b := setup(t, options{server: connectTo(t, r), prov: ack, workers: 16, health: endpoint.Config{MaxInFlight: limit}})
	started := time.Now()
	waitUntil(t, ackWait/6, func() bool { return hang.total.Load() >= events }, "every unstarted delivery attempted well before AckWait")
	t.Logf("the next replica attempted the %d unstarted deliveries within %s", events-limit, time.Since(started).Round(time.Millisecond))
	waitUntil(t, 20*time.Second, func() bool { return b.workersIdle(t) }, "all settled")
	require.EqualValues(t, events, hang.total.Load(), "each delivery attempted once")
}
