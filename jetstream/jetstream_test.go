package jetstream_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

func TestProvisionIsIdempotentAndUpdatesConfig(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	ctx := context.Background()
	p := jstest.Provisioning()
	require.NoError(t, jetstream.Provision(ctx, ns.JS, p))
	require.NoError(t, jetstream.Provision(ctx, ns.JS, p), "a second replica provisioning the same config")

	for _, name := range []string{jetstream.StreamEvents, jetstream.StreamDeliveries, jetstream.StreamAudit} {
		s, err := ns.JS.Stream(ctx, name)
		require.NoError(t, err)
		require.Equal(t, natsjs.LimitsPolicy, s.CachedInfo().Config.Retention, name)
		require.Equal(t, natsjs.FileStorage, s.CachedInfo().Config.Storage, name)
	}
	c, err := ns.JS.Consumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
	require.NoError(t, err)
	require.Equal(t, p.AckWait, c.CachedInfo().Config.AckWait)
	require.Equal(t, p.MaxAckPending, c.CachedInfo().Config.MaxAckPending)
	require.Empty(t, c.CachedInfo().Config.BackOff, "retries are timed by NakWithDelay, not BackOff")

	// A new version changes limits: provisioning updates them in place.
	p.AckWait, p.MaxAckPending, p.EventRetention = 5*time.Second, 5000, 2*time.Hour
	require.NoError(t, jetstream.Provision(ctx, ns.JS, p))
	c, err = ns.JS.Consumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, c.CachedInfo().Config.AckWait)
	require.Equal(t, 5000, c.CachedInfo().Config.MaxAckPending)
	s, err := ns.JS.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	require.Equal(t, 2*time.Hour, s.CachedInfo().Config.MaxAge)
	_, err = ns.JS.KeyValue(ctx, jetstream.BucketSubscriptions)
	require.NoError(t, err)
}

func TestOpenEmbedded(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dir := t.TempDir()
	log := zerolog.New(zerolog.NewTestWriter(t))
	ctx := context.Background()

	conn, err := jetstream.Open(ctx, jetstream.Options{StoreDir: jetstream.StoreDir(dir), Listen: addr}, log)
	require.NoError(t, err)
	require.Equal(t, "nats://"+addr, conn.ClientURL())
	require.NoError(t, jetstream.Provision(ctx, conn.JS, jstest.Provisioning()))
	_, err = conn.JS.Publish(ctx, jetstream.EventSubject("task.completed"), []byte(`{}`))
	require.NoError(t, err)
	require.DirExists(t, filepath.Join(dir, "jetstream"))

	// A second embedded server cannot take the same port: a clear error, not an exit.
	_, err = jetstream.Open(ctx, jetstream.Options{StoreDir: t.TempDir(), Listen: addr}, log)
	require.ErrorIs(t, err, jetstream.ErrUnavailable)
	conn.Close()

	// The store survives a restart.
	conn, err = jetstream.Open(ctx, jetstream.Options{StoreDir: jetstream.StoreDir(dir), Listen: addr}, log)
	require.NoError(t, err)
	defer conn.Close()
	s, err := conn.JS.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	require.EqualValues(t, 1, s.CachedInfo().State.Msgs)
}

func TestOpenExternal(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	log := zerolog.New(zerolog.NewTestWriter(t))
	conn, err := jetstream.Open(context.Background(), jetstream.Options{URL: ns.ClientURL()}, log)
	require.NoError(t, err)
	require.Empty(t, conn.ClientURL())
	conn.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "nats://user:pw@" + ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = jetstream.Open(context.Background(), jetstream.Options{URL: dead, ConnectTimeout: time.Second}, log)
	require.ErrorIs(t, err, jetstream.ErrUnavailable)
	require.NotContains(t, err.Error(), "pw", "credentials are redacted")
}
