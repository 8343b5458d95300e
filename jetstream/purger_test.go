package jetstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// publishEvents publishes n events of size bytes each.
func publishEvents(t *testing.T, js natsjs.JetStream, n, size int) {
	t.Helper()
	for range n {
		_, err := js.Publish(context.Background(), jetstream.EventSubject("task.completed"), make([]byte, size))
		require.NoError(t, err)
	}
}

// route acks the next n events through the router consumer, in order.
func route(t *testing.T, js natsjs.JetStream, n int) {
	t.Helper()
	c, err := js.Consumer(context.Background(), jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.NoError(t, err)
	batch, err := c.Fetch(n, natsjs.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	got := 0
	for m := range batch.Messages() {
		require.NoError(t, m.DoubleAck(context.Background()))
		got++
	}
	require.Equal(t, n, got)
}

// eventsState returns EVENTS's first sequence and message count.
func eventsState(t *testing.T, js natsjs.JetStream) (first, msgs uint64) {
	t.Helper()
	s, err := js.Stream(context.Background(), jetstream.StreamEvents)
	require.NoError(t, err)
	st := s.CachedInfo().State
	return st.FirstSeq, st.Msgs
}

func TestPurgerRemovesRoutedEventsOnlyUpToTheAckFloor(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	ctx := context.Background()
	p := jetstream.NewPurger(ns.JS, jetstream.PurgerConfig{}, zerolog.Nop()) // retention 0: purge once routed
	publishEvents(t, ns.JS, 10, 100)

	n, err := p.PurgeOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing routed: nothing purged")

	route(t, ns.JS, 4)
	n, err = p.PurgeOnce(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	first, msgs := eventsState(t, ns.JS)
	require.EqualValues(t, 5, first, "the first unrouted event stays")
	require.EqualValues(t, 6, msgs)

	// A paused router: the floor does not move, nothing more is purged,
	// by any number of purgers at once.
	var wg sync.WaitGroup
	for range 3 {
		q := jetstream.NewPurger(ns.JS, jetstream.PurgerConfig{}, zerolog.Nop())
		wg.Go(func() {
			_, err := q.PurgeOnce(ctx)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	first, msgs = eventsState(t, ns.JS)
	require.EqualValues(t, 5, first)
	require.EqualValues(t, 6, msgs)

	// An event acked out of order does not move the floor past one still
	// pending before it.
	c, err := ns.JS.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.NoError(t, err)
	batch, err := c.Fetch(2, natsjs.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var held []natsjs.Msg
	for m := range batch.Messages() {
		held = append(held, m)
	}
	require.Len(t, held, 2)
	require.NoError(t, held[1].DoubleAck(ctx)) // seq 6 routed, seq 5 still in flight
	n, err = p.PurgeOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "seq 5 is not routed yet")
	require.NoError(t, held[0].DoubleAck(ctx))
	n, err = p.PurgeOnce(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	first, msgs = eventsState(t, ns.JS)
	require.EqualValues(t, 7, first)
	require.EqualValues(t, 4, msgs)
	require.EqualValues(t, 6, p.Purged())
}

func TestPurgerKeepsRoutedEventsForTheirRetention(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	ctx := context.Background()
	const retention = 2 * time.Second
	p := jetstream.NewPurger(ns.JS, jetstream.PurgerConfig{Retention: retention}, zerolog.Nop())
	start := time.Now()
	publishEvents(t, ns.JS, 5, 100)
	route(t, ns.JS, 5)
	n, err := p.PurgeOnce(ctx)
	require.NoError(t, err)
	if time.Since(start) < retention {
		require.Zero(t, n, "routed but younger than the retention: kept")
	}
	publishEvents(t, ns.JS, 3, 100) // unrouted: kept whatever their age
	require.Eventually(t, func() bool {
		n, err := p.PurgeOnce(ctx)
		require.NoError(t, err)
		return n > 0
	}, 10*time.Second, 50*time.Millisecond)
	first, msgs := eventsState(t, ns.JS)
	require.EqualValues(t, 6, first, "the routed events went once older than the retention")
	require.EqualValues(t, 3, msgs)
}

func TestPurgerCapsTheBytesOfRoutedEvents(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	ctx := context.Background()
	publishEvents(t, ns.JS, 20, 1000)
	_, msgs := eventsState(t, ns.JS)
	s, err := ns.JS.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	per := s.CachedInfo().State.Bytes / msgs
	// Room for 15 events; 10 are routed, kept for an hour.
	p := jetstream.NewPurger(ns.JS, jetstream.PurgerConfig{Retention: time.Hour, RetentionBytes: int64(15 * per)}, zerolog.Nop())
	route(t, ns.JS, 10)
	n, err := p.PurgeOnce(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, n, "the 5 oldest routed events make room")
	first, _ := eventsState(t, ns.JS)
	require.EqualValues(t, 6, first)

	// Over the cap with unrouted events alone: routed ones go, never an
	// unrouted one.
	p = jetstream.NewPurger(ns.JS, jetstream.PurgerConfig{Retention: time.Hour, RetentionBytes: int64(2 * per)}, zerolog.Nop())
	n, err = p.PurgeOnce(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	first, msgs = eventsState(t, ns.JS)
	require.EqualValues(t, 11, first, "stops at the ack floor")
	require.EqualValues(t, 10, msgs)
}

func TestPurgerKeepsEverythingWithoutARouterConsumer(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	ctx := context.Background()
	publishEvents(t, ns.JS, 6, 100)
	route(t, ns.JS, 3)
	require.NoError(t, ns.JS.DeleteConsumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter))
	p := jetstream.NewPurger(ns.JS, jetstream.PurgerConfig{}, zerolog.Nop())
	n, err := p.PurgeOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "no floor known: nothing purged")

	// Recreated (as Provision does), the consumer starts from the first
	// retained event: routed events come again, none is lost.
	require.NoError(t, jetstream.Provision(ctx, ns.JS, jstest.Provisioning()))
	n, err = p.PurgeOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	route(t, ns.JS, 6)
	n, err = p.PurgeOnce(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 6, n)
}

func TestPurgerRunStopsWithItsContext(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	publishEvents(t, ns.JS, 3, 100)
	route(t, ns.JS, 3)
	ctx, cancel := context.WithCancel(context.Background())
	p := jetstream.NewPurger(ns.JS, jetstream.PurgerConfig{Interval: 10 * time.Millisecond}, zerolog.Nop())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, func() bool { return p.Purged() == 3 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}
