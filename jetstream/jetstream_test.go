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

	for name, retention := range map[string]natsjs.RetentionPolicy{
		jetstream.StreamEvents: natsjs.LimitsPolicy, jetstream.StreamDeliveries: natsjs.WorkQueuePolicy,
		jetstream.StreamAudit: natsjs.LimitsPolicy,
	} {
		s, err := ns.JS.Stream(ctx, name)
		require.NoError(t, err)
		require.Equal(t, retention, s.CachedInfo().Config.Retention, name)
		require.Equal(t, natsjs.FileStorage, s.CachedInfo().Config.Storage, name)
		if name != jetstream.StreamAudit {
			require.Zero(t, s.CachedInfo().Config.MaxAge, "%s: queued work never expires", name)
		}
	}
	c, err := ns.JS.Consumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
	require.NoError(t, err)
	require.Equal(t, p.AckWait, c.CachedInfo().Config.AckWait)
	require.Equal(t, p.MaxAckPending, c.CachedInfo().Config.MaxAckPending)
	require.Empty(t, c.CachedInfo().Config.BackOff, "retries are timed by NakWithDelay, not BackOff")

	// A new version changes limits: provisioning updates them in place.
	p.AckWait, p.MaxAckPending, p.AuditRetention, p.MaxStore = 5*time.Second, 5000, 2*time.Hour, 400<<20
	require.NoError(t, jetstream.Provision(ctx, ns.JS, p))
	c, err = ns.JS.Consumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, c.CachedInfo().Config.AckWait)
	require.Equal(t, 5000, c.CachedInfo().Config.MaxAckPending)
	s, err := ns.JS.Stream(ctx, jetstream.StreamAudit)
	require.NoError(t, err)
	require.Equal(t, 2*time.Hour, s.CachedInfo().Config.MaxAge)
	require.EqualValues(t, 150<<20, s.CachedInfo().Config.MaxBytes, "AUDIT keeps what EVENTS, DELIVERIES and ORDERED leave")
	require.Equal(t, natsjs.DiscardOld, s.CachedInfo().Config.Discard, "history makes room by dropping its oldest")
	s, err = ns.JS.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	require.EqualValues(t, 100<<20, s.CachedInfo().Config.MaxBytes)
	require.Equal(t, natsjs.DiscardNew, s.CachedInfo().Config.Discard, "a full queue refuses new work")
	_, err = ns.JS.KeyValue(ctx, jetstream.BucketSubscriptions)
	require.NoError(t, err)
	tokens, err := ns.JS.Stream(ctx, "KV_"+jetstream.BucketTeamTokens)
	require.NoError(t, err)
	require.Zero(t, tokens.CachedInfo().Config.MaxAge, "a team token lasts until it is deleted")

	// Revoked console sessions are kept for a session's lifetime.
	sessions, err := ns.JS.Stream(ctx, "KV_"+jetstream.BucketRevokedSessions)
	require.NoError(t, err)
	require.Equal(t, 12*time.Hour, sessions.CachedInfo().Config.MaxAge, "the default session lifetime")
	p.SessionTTL = time.Hour
	require.NoError(t, jetstream.Provision(ctx, ns.JS, p))
	sessions, err = ns.JS.Stream(ctx, "KV_"+jetstream.BucketRevokedSessions)
	require.NoError(t, err)
	require.Equal(t, time.Hour, sessions.CachedInfo().Config.MaxAge, "follows --console-session-ttl")
}

func TestFullEventsStreamRefusesNewEventsAndOversizedOnes(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	ctx := context.Background()
	p := jstest.Provisioning()
	p.MaxEventBytes, p.MaxStore = 4<<10, 4*256<<10 // EVENTS holds 256 KiB
	require.NoError(t, jetstream.Provision(ctx, ns.JS, p))

	_, err := ns.JS.Publish(ctx, jetstream.EventSubject("task.completed"), make([]byte, 4<<10+jetstream.EventHeaderAllowance+1))
	require.ErrorIs(t, err, natsjs.ErrStreamMessageExceedsMaximum, "an oversized event is refused at publish, with its reason")

	body := make([]byte, 4<<10)
	var refused error
	for i := 0; i < 100 && refused == nil; i++ {
		_, refused = ns.JS.Publish(ctx, jetstream.EventSubject("task.completed"), body)
	}
	require.ErrorContains(t, refused, "maximum bytes exceeded", "a full EVENTS refuses the robot's publish: nothing is dropped silently")
	s, err := ns.JS.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.LessOrEqual(t, info.State.Bytes, uint64(256<<10))
}

func TestProvisionReplacesAnOldLimitsStreamOnlyWhenDrained(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	ctx := context.Background()
	// The layout of an older version: DELIVERIES with limits retention.
	_, err := ns.JS.CreateStream(ctx, natsjs.StreamConfig{Name: jetstream.StreamDeliveries, Subjects: []string{"deliveries.>"}})
	require.NoError(t, err)
	_, err = ns.JS.CreateOrUpdateConsumer(ctx, jetstream.StreamDeliveries, natsjs.ConsumerConfig{Durable: jetstream.ConsumerWorkers, AckPolicy: natsjs.AckExplicitPolicy})
	require.NoError(t, err)
	_, err = ns.JS.Publish(ctx, "deliveries.s1", []byte("job"))
	require.NoError(t, err)

	err = jetstream.Provision(ctx, ns.JS, jstest.Provisioning())
	require.ErrorContains(t, err, "1 unfinished messages", "queued work under the old layout is not thrown away")

	c, err := ns.JS.Consumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
	require.NoError(t, err)
	batch, err := c.Fetch(1)
	require.NoError(t, err)
	for m := range batch.Messages() {
		require.NoError(t, m.DoubleAck(ctx))
	}
	require.NoError(t, jetstream.Provision(ctx, ns.JS, jstest.Provisioning()), "drained: replaced")
	s, err := ns.JS.Stream(ctx, jetstream.StreamDeliveries)
	require.NoError(t, err)
	require.Equal(t, natsjs.WorkQueuePolicy, s.CachedInfo().Config.Retention)
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
