package jetstream_test

import (
	"context"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
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
	p := jstest.Provisioning()
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
