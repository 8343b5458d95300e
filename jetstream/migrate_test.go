package jetstream_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// provisionOldEvents creates EVENTS and its router consumer as versions
// before Limits retention did: a work queue.
func provisionOldEvents(t *testing.T, js natsjs.JetStream) natsjs.StreamConfig {
	t.Helper()
	ctx := context.Background()
	p := provisioning()
	sc := p.Streams()[0]
	require.Equal(t, jetstream.StreamEvents, sc.Name)
	sc.Retention, sc.Description = natsjs.WorkQueuePolicy, "events published by robots and controllers, until routed"
	_, err := js.CreateStream(ctx, sc)
	require.NoError(t, err)
	_, err = js.CreateOrUpdateConsumer(ctx, jetstream.StreamEvents, p.Consumers()[jetstream.StreamEvents])
	require.NoError(t, err)
	return sc
}

// connect returns a JetStream context on a connection of its own, closed
// when the test ends.
func connect(t *testing.T, url string) natsjs.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	return js
}

// published is an event a robot or the test had acknowledged.
type published struct {
	id, subject, data string
}

func TestMigrationToLimitsLosesNoEventWhileRobotsPublish(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old := provisionOldEvents(t, ns.JS)

	// JetStream cannot change the retention in place (nats-server v2.15.2).
	limits := old
	limits.Retention = natsjs.LimitsPolicy
	_, err := ns.JS.UpdateStream(ctx, limits)
	require.Error(t, err, "retention changed in place")

	// 300 events, every third with a Nats-Msg-Id; the old router routed
	// the first 100 and holds the next one unacked, as a replica of the
	// older version still running would.
	var all []published
	for i := range 300 {
		subject := jetstream.EventSubject([]string{"task.completed", "robot.connected", "alert.triggered"}[i%3])
		data := fmt.Sprintf(`{"n":%d}`, i)
		var opts []natsjs.PublishOpt
		id := ""
		if i%3 == 0 {
			id = "old-" + strconv.Itoa(i)
			opts = append(opts, natsjs.WithMsgID(id))
		}
		ack, err := ns.JS.Publish(ctx, subject, []byte(data), opts...)
		require.NoError(t, err)
		if id == "" {
			id = delivery.EventIDFromSequence("", ack.Sequence) // the id the old version gave it
		}
		all = append(all, published{id, subject, data})
	}
	oldRouter, err := ns.JS.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.NoError(t, err)
	batch, err := oldRouter.FetchNoWait(101)
	require.NoError(t, err)
	n := 0
	for m := range batch.Messages() {
		if n++; n <= 100 {
			require.NoError(t, m.DoubleAck(ctx))
		}
	}
	require.Equal(t, 101, n)
	want := all[100:] // the 101st is in flight: it is routed again

	// Robots keep publishing, each retrying with its Nats-Msg-Id until
	// acknowledged, while two replicas start and migrate at once.
	robotsCtx, stopRobots := context.WithCancel(ctx)
	var robotsMu sync.Mutex
	var robotsAcked []published
	var refused int
	var robots sync.WaitGroup
	for r := range 3 {
		rjs := connect(t, ns.ClientURL())
		robots.Go(func() {
			for i := 0; robotsCtx.Err() == nil; i++ {
				ev := published{fmt.Sprintf("robot-%d-%d", r, i), jetstream.EventSubject("robot.connected"), fmt.Sprintf(`{"robot":%d,"n":%d}`, r, i)}
				for robotsCtx.Err() == nil {
					pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
					// No retry in the client: the robot's own loop retries.
					_, err := rjs.Publish(pctx, ev.subject, []byte(ev.data), natsjs.WithMsgID(ev.id), natsjs.WithRetryAttempts(0))
					pcancel()
					if err == nil {
						robotsMu.Lock()
						robotsAcked = append(robotsAcked, ev)
						robotsMu.Unlock()
						break
					}
					robotsMu.Lock()
					refused++
					robotsMu.Unlock()
					time.Sleep(5 * time.Millisecond) // a robot's retry delay
				}
			}
		})
	}
	var migrators sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		mjs := connect(t, ns.ClientURL())
		migrators.Go(func() { errs[i] = jetstream.Provision(ctx, mjs, provisioning()) })
	}
	migrators.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	// Robots go on publishing into the new EVENTS for a while.
	robotsMu.Lock()
	before := len(robotsAcked)
	robotsMu.Unlock()
	require.Eventually(t, func() bool {
		robotsMu.Lock()
		defer robotsMu.Unlock()
		return len(robotsAcked) >= before+50
	}, 20*time.Second, 10*time.Millisecond)
	stopRobots()
	robots.Wait()
	t.Logf("robots: %d events acknowledged, %d publishes refused and retried", len(robotsAcked), refused)

	s, err := ns.JS.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	require.Equal(t, natsjs.LimitsPolicy, s.CachedInfo().Config.Retention)
	require.Equal(t, []string{jetstream.EventsPrefix + ">"}, s.CachedInfo().Config.Subjects)
	require.Nil(t, s.CachedInfo().Config.SubjectTransform, "the staging transform is gone")
	require.EqualValues(t, provisioning().Streams()[0].MaxMsgSize, s.CachedInfo().Config.MaxMsgSize, "limits back")
	_, err = ns.JS.Stream(ctx, jetstream.MigrationHold)
	require.ErrorIs(t, err, natsjs.ErrStreamNotFound, "the holding stream is removed")

	// Route everything: every event acknowledged to a publisher and not
	// routed before comes out, with its subject, data and id; the old
	// ones once each and in their order.
	want = append(want, robotsAcked...)
	router, err := ns.JS.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.NoError(t, err)
	seen := map[string]int{}
	var order []string
	for len(seen) < len(want) {
		batch, err := router.Fetch(500, natsjs.FetchMaxWait(time.Second))
		require.NoError(t, err)
		got := 0
		for m := range batch.Messages() {
			got++
			id := jetstream.EventIDHeader(m.Headers())
			require.NotEmpty(t, id, "an event without an id: %s", m.Data())
			if seen[id]++; seen[id] == 1 {
				order = append(order, id+" "+m.Subject()+" "+string(m.Data()))
			}
			require.NoError(t, m.Ack())
		}
		require.NoError(t, batch.Error())
		if got == 0 {
			break
		}
	}
	for _, ev := range want {
		_, ok := seen[ev.id]
		require.True(t, ok, "event %s (%s %s) lost", ev.id, ev.subject, ev.data)
	}
	for i, ev := range want[:200] {
		require.Equal(t, 1, seen[ev.id], "%s copied once", ev.id)
		require.Equal(t, ev.id+" "+ev.subject+" "+ev.data, order[i], "old events keep their order, subject and data")
	}
}

func TestConcurrentCopiesAppendEachMessageOnce(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	ctx := context.Background()
	for _, sc := range []natsjs.StreamConfig{{Name: "SRC", Subjects: []string{"src.>"}}, {Name: "DST", Subjects: []string{"dst.>"}}} {
		_, err := ns.JS.CreateStream(ctx, sc)
		require.NoError(t, err)
	}
	for i := range 500 {
		_, err := ns.JS.Publish(ctx, "src.e", []byte(strconv.Itoa(i)))
		require.NoError(t, err)
	}
	// Two copiers, as two replicas that both believe they hold the lock:
	// each fails when the other appended first, and a retry resumes.
	var wg sync.WaitGroup
	for range 2 {
		js := connect(t, ns.ClientURL())
		wg.Go(func() {
			for jetstream.CopyStream(ctx, js, "SRC", "DST", "dst.") != nil {
			}
		})
	}
	wg.Wait()
	dst, err := ns.JS.Stream(ctx, "DST")
	require.NoError(t, err)
	require.EqualValues(t, 500, dst.CachedInfo().State.Msgs, "each message once")
	for seq := uint64(1); seq <= 500; seq++ {
		m, err := dst.GetMsg(ctx, seq)
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(int(seq-1)), string(m.Data), "in order")
		require.Equal(t, "dst.src.e", m.Subject)
	}
}

func TestAnInterruptedMigrationResumesWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	ctx := context.Background()
	provisionOldEvents(t, ns.JS)
	const n = 5_000
	for i := range n {
		_, err := ns.JS.PublishAsync(jetstream.EventSubject("task.completed"), []byte(strconv.Itoa(i)))
		require.NoError(t, err)
		if (i+1)%1000 == 0 {
			<-ns.JS.PublishAsyncComplete()
		}
	}

	stored := map[uint64]time.Time{} // when the old EVENTS stored some
	oldStream, err := ns.JS.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	for seq := uint64(1); seq <= n; seq += 97 {
		m, err := oldStream.GetMsg(ctx, seq)
		require.NoError(t, err)
		stored[seq] = m.Time
	}

	// The first replica stops (its start is cancelled) in the middle of a copy.
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- jetstream.Provision(mctx, connect(t, ns.ClientURL()), provisioning()) }()
	require.Eventually(t, func() bool {
		s, err := ns.JS.Stream(ctx, jetstream.MigrationHold)
		return err == nil && s.CachedInfo().State.Msgs > 0
	}, 20*time.Second, time.Millisecond)
	stop()
	require.Error(t, <-done)
	hold, err := ns.JS.Stream(ctx, jetstream.MigrationHold)
	require.NoError(t, err)
	require.Less(t, hold.CachedInfo().State.Msgs, uint64(n), "stopped before the copy was done")

	// The next start finishes it.
	require.NoError(t, jetstream.Provision(ctx, ns.JS, provisioning()))
	s, err := ns.JS.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	require.Equal(t, natsjs.LimitsPolicy, s.CachedInfo().Config.Retention)
	require.EqualValues(t, n, s.CachedInfo().State.Msgs, "every event once")
	for seq := uint64(1); seq <= n; seq += 97 {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(int(seq-1)), string(m.Data), "in order")
		require.Equal(t, jetstream.EventSubject("task.completed"), m.Subject)
		require.Equal(t, delivery.EventIDFromSequence("", seq), jetstream.EventIDHeader(m.Header), "the old id kept")
		require.True(t, stored[seq].Equal(jetstream.EventTime(m.Header, m.Time)), "the old time kept: %s, not %s", stored[seq], m.Time)
	}
}

// provisioning is the tests' provisioning with the event ids of the
// previous release for migrated events without a Nats-Msg-Id (jstest
// cannot name delivery: the subscriptions package's tests use jstest).
func provisioning() jetstream.Provisioning {
	p := jstest.Provisioning()
	p.EventID = delivery.EventIDFromSequence
	return p
}
