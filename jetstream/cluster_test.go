package jetstream_test

import (
	"context"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// replicasOf returns how many servers hold stream name (leader + peers).
func replicasOf(t *testing.T, js natsjs.JetStream, name string) (config, placed int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	require.NoError(t, err, name)
	info := s.CachedInfo()
	if info.Cluster != nil {
		placed = 1 + len(info.Cluster.Replicas)
	}
	return info.Config.Replicas, placed
}

func TestProvisionScalesStreamsOnACluster(t *testing.T) {
	t.Parallel()
	c := jstest.Cluster(t, 3)
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := provisioning()
	p.Replicas = 1
	require.NoError(t, jetstream.Provision(ctx, js, p))
	streams := []string{jetstream.StreamEvents, jetstream.StreamDeliveries, jetstream.StreamAudit, "KV_" + jetstream.BucketSubscriptions}
	for _, name := range streams {
		cfg, placed := replicasOf(t, js, name)
		require.Equal(t, 1, cfg, name)
		require.Equal(t, 1, placed, name)
	}
	_, err := js.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`))
	require.NoError(t, err)

	// --stream-replicas 3 on the next start: the existing streams, the
	// bucket and the consumers are scaled in place, their data kept.
	p.Replicas = 3
	require.NoError(t, jetstream.Provision(ctx, js, p))
	require.NoError(t, jetstream.Provision(ctx, js, p), "a second replica provisioning the same")
	for _, name := range streams {
		require.Eventually(t, func() bool {
			cfg, placed := replicasOf(t, js, name)
			return cfg == 3 && placed == 3
		}, 30*time.Second, 100*time.Millisecond, "%s on 3 servers", name)
	}
	for stream, consumer := range map[string]string{jetstream.StreamEvents: jetstream.ConsumerRouter, jetstream.StreamDeliveries: jetstream.ConsumerWorkers} {
		require.Eventually(t, func() bool {
			cons, err := js.Consumer(ctx, stream, consumer)
			require.NoError(t, err)
			ci := cons.CachedInfo()
			return ci.Cluster != nil && len(ci.Cluster.Replicas) == 2
		}, 30*time.Second, 100*time.Millisecond, "consumer %s on 3 servers", consumer)
	}
	s, err := js.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	require.EqualValues(t, 1, s.CachedInfo().State.Msgs, "the queued event survived the scaling")

	// More copies than servers: a clear error naming the cause.
	p.Replicas = 5
	err = jetstream.Provision(ctx, js, p)
	require.ErrorContains(t, err, "with 5 replicas (needs a NATS cluster of at least 5 JetStream servers)")
}

func TestMigrationAndPurgeOnAClusterWithThreeCopies(t *testing.T) {
	t.Parallel()
	c := jstest.Cluster(t, 3)
	_, js := c.Connect(t)
	_, js2 := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := provisioning()
	p.Replicas = 3

	// The old layout, on three servers, with 50 unrouted events.
	old := p.Streams()[0]
	old.Retention = natsjs.WorkQueuePolicy
	_, err := js.CreateStream(ctx, old)
	require.NoError(t, err)
	_, err = js.CreateOrUpdateConsumer(ctx, jetstream.StreamEvents, p.Consumers()[jetstream.StreamEvents])
	require.NoError(t, err)
	for range 50 {
		_, err := js.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`))
		require.NoError(t, err)
	}

	errs := make(chan error, 2)
	for _, j := range []natsjs.JetStream{js, js2} {
		go func() { errs <- jetstream.Provision(ctx, j, p) }()
	}
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	s, err := js.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	require.Equal(t, natsjs.LimitsPolicy, s.CachedInfo().Config.Retention)
	require.Equal(t, 3, s.CachedInfo().Config.Replicas)
	require.EqualValues(t, 50, s.CachedInfo().State.Msgs, "every unrouted event moved over")
	salt1, err := jetstream.EventSalt(ctx, js)
	require.NoError(t, err)
	salt2, err := jetstream.EventSalt(ctx, js2)
	require.NoError(t, err)
	require.Equal(t, salt1, salt2, "every server gives the same salt")

	// Route 30; two purgers (two replicas) remove exactly those.
	cons, err := js.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.NoError(t, err)
	batch, err := cons.Fetch(30, natsjs.FetchMaxWait(10*time.Second))
	require.NoError(t, err)
	for m := range batch.Messages() {
		require.NoError(t, m.DoubleAck(ctx))
	}
	for _, j := range []natsjs.JetStream{js, js2} {
		_, err := jetstream.NewPurger(j, jetstream.PurgerConfig{}, zerolog.Nop()).PurgeOnce(ctx)
		require.NoError(t, err)
	}
	s, err = js.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	require.EqualValues(t, 20, s.CachedInfo().State.Msgs)
	require.EqualValues(t, 31, s.CachedInfo().State.FirstSeq)
}
