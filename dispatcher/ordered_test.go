package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/internal/daemontest"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

// orderedSub creates a subscription to task.completed ordered by robot.
func (b *bundle) orderedSub(t testing.TB, url string, maxInFlight int) subscriptions.Subscription {
	t.Helper()
	sub, err := b.subs.Create(context.Background(), subscriptions.Subscription{
		URL: url, Events: []string{"task.completed"}, OrderingKey: "data.robot_id", MaxInFlight: maxInFlight,
	})
	require.NoError(t, err)
	return sub
}

// publishRobots publishes events 0..perRobot-1 of each robot, interleaved
// round-robin: robot r's event n is published before its event n+1.
func (b *bundle) publishRobots(t testing.TB, robots, perRobot int) {
	t.Helper()
	for n := range perRobot {
		for r := range robots {
			b.publish(t, "task.completed", fmt.Sprintf(`{"robot_id":"R%03d","n":%d}`, r, n), "")
		}
	}
}

// failEveryThird fails the first attempt of every third event of a robot
// (and, for robot 0, the second attempt too).
func failEveryThird(robot string, n int, attempt string) bool {
	return n%3 == 1 && (attempt == "1" || robot == "R000" && attempt == "2")
}

func TestOrderedDeliveriesKeepEachRobotsOrderThroughRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, options{policy: delivery.Schedule(50*time.Millisecond, 100*time.Millisecond, 150*time.Millisecond)})
	recv := daemontest.NewOrderedReceiver(t, 5*time.Millisecond, failEveryThird)
	b.orderedSub(t, recv.URL, 8)

	const robots, perRobot = 20, 15
	b.publishRobots(t, robots, perRobot)
	waitUntil(t, 60*time.Second, func() bool { n := recv.Answered(); return n == robots*perRobot || n < 0 }, "every event answered 2xx")

	violations, maxRobots, requests, duplicates, failed := recv.Report()
	t.Logf("%d requests, %d failed on purpose, %d duplicates, at most %d robots in flight at once", requests, failed, duplicates, maxRobots)
	require.Empty(t, violations, "per robot, each event only after the one before was answered 2xx")
	require.Greater(t, failed, robots, "the receiver failed a share of the requests, so retries were in the way")
	require.Greater(t, maxRobots, 2, "several robots in flight at once")
	require.LessOrEqual(t, maxRobots, 8, "no more than the subscription's max-in-flight")
	require.Zero(t, duplicates, "one replica, no crash: no duplicate")
}

// A key waiting for its head's retry does not hold the other keys back.
func TestOrderedRetryWaitsForItsKeyOnly(t *testing.T) {
	t.Parallel()
	const retry = 3 * time.Second
	b := setup(t, options{policy: delivery.Schedule(retry)})
	recv := daemontest.NewOrderedReceiver(t, 0, func(robot string, n int, attempt string) bool {
		return robot == "R000" && n == 0 && attempt == "1"
	})
	sub := b.orderedSub(t, recv.URL, 8)
	start := time.Now()
	b.publishRobots(t, 5, 10)
	waitUntil(t, 20*time.Second, func() bool {
		return recv.AnsweredBy("R001") == 10 && recv.AnsweredBy("R002") == 10 && recv.AnsweredBy("R003") == 10 && recv.AnsweredBy("R004") == 10
	}, "the other robots' events")
	stuck := recv.AnsweredBy("R000")
	require.Less(t, time.Since(start), retry, "the other keys went on while R000 waited for its retry")
	require.Zero(t, stuck, "R000's later events wait for its head's retry")
	// What an operator sees of the stuck key (subscriptions get, metrics),
	// once the other keys' last deliveries are recorded and settled.
	waitUntil(t, retry/2, func() bool { return b.disp.OrderedKeys(sub.ID, 10).Waiting == 1 }, "only R000 waiting")
	keys := b.disp.OrderedKeys(sub.ID, 10)
	require.Equal(t, 1, keys.Waiting, "only R000 waits")
	require.Len(t, keys.Longest, 1)
	require.Equal(t, "R000", keys.Longest[0].Key)
	require.Equal(t, 10, keys.Longest[0].Deliveries)
	require.Equal(t, 2, keys.Longest[0].HeadAttempt, "its head waits for attempt 2")
	require.Equal(t, map[string]int{sub.ID: 1}, b.disp.OrderedKeysWaiting())
	waitUntil(t, 20*time.Second, func() bool { n := recv.Answered(); return n == 50 || n < 0 }, "R000's events after its retry")
	violations, _, _, _, _ := recv.Report()
	require.Empty(t, violations)
}

// A job of a later event may reach ORDERED before the job of an earlier
// event of its key (routers run in parallel, on several replicas). The
// owner starts it only once every earlier event is routed (the router's
// ack floor) and its job is held: here the later job is in ORDERED before
// the earlier event is even published, and still goes second.
func TestOrderedJobWaitsForEarlierEventsToBeRouted(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	recv := daemontest.NewOrderedReceiver(t, 0, func(string, int, string) bool { return false })
	sub := b.orderedSub(t, recv.URL, 8)

	// The job of EVENTS sequence 2, robot K's event 1, stored ahead of
	// sequence 1, robot K's event 0.
	now := time.Now()
	early := delivery.Job{
		ID: "0190a0a0-0000-7000-8000-000000000002", EventID: "evt-2", Event: "task.completed", EventTime: now,
		SubscriptionID: sub.ID, CreatedAt: now, Attempt: 1, Data: []byte(`{"robot_id":"K","n":1}`),
		Ordered: true, OrderingKey: "K", EventSeq: 2,
	}
	part := jetstream.OrderedPartition(sub.ID, "K")
	_, err := b.ns.JS.PublishMsg(context.Background(), early.Msg(jetstream.OrderedSubject(part)))
	require.NoError(t, err)
	waitUntil(t, 10*time.Second, func() bool {
		_, ackPending := b.consumerState(t, jetstream.StreamOrdered, jetstream.OrderedConsumer(part))
		return ackPending == 1
	}, "the owner to hold the early job")

	b.publish(t, "task.completed", `{"robot_id":"K","n":0}`, "")
	waitUntil(t, 10*time.Second, func() bool { n := recv.Answered(); return n == 2 || n < 0 }, "both events")
	violations, _, _, _, _ := recv.Report()
	require.Empty(t, violations, "event 0 before event 1, though event 1's job was stored first")
}

// countAttempts counts the attempts a replica makes.
type countAttempts struct {
	dispatcher.Attempter
	n *atomic.Int64
}

func (c countAttempts) Attempt(ctx context.Context, job delivery.Job, sub subscriptions.Subscription) delivery.Result {
	c.n.Add(1)
	return c.Attempter.Attempt(ctx, job, sub)
}

// Two replicas share the partitions; one is cut off from NATS and its
// receivers at once, as kill -9 would, a third of the way through. Its
// partitions go to the other replica, which starts a key again only once
// every job the dead one held has come back: the order per robot holds.
// A duplicate of the head (its attempt made, not recorded) is allowed.
func TestOrderedTakeoverAfterAReplicaDies(t *testing.T) {
	t.Parallel()
	policy := delivery.Schedule(50*time.Millisecond, 100*time.Millisecond, 150*time.Millisecond)
	var madeA, madeB atomic.Int64
	a := setup(t, options{policy: policy, attempter: func(at dispatcher.Attempter) dispatcher.Attempter { return countAttempts{at, &madeA} }})
	b := setup(t, options{policy: policy, server: a.ns, attempter: func(at dispatcher.Attempter) dispatcher.Attempter { return countAttempts{at, &madeB} }})
	recv := daemontest.NewOrderedReceiver(t, 10*time.Millisecond, failEveryThird)
	sub := a.orderedSub(t, recv.URL, 8)
	waitUntil(t, 10*time.Second, func() bool { _, ok := b.subs.Get(sub.ID); return ok }, "the subscription on both replicas")

	const robots, perRobot = 30, 20
	began := time.Now()
	a.publishRobots(t, robots, perRobot)
	published := time.Since(began)
	waitUntil(t, 60*time.Second, func() bool { n := recv.Answered(); return n >= robots*perRobot/3 || n < 0 }, "a third answered")
	t.Logf("published in %s, a third answered after %s", published, time.Since(began))
	// The victim is the replica that made more attempts: it owns
	// partitions (maybe all of them) with jobs queued.
	victim, survivor, made := a, b, madeA.Load()
	if madeB.Load() > made {
		victim, survivor, made = b, a, madeB.Load()
	}
	t.Logf("attempts before the crash: A %d, B %d", madeA.Load(), madeB.Load())
	require.Positive(t, made)
	victim.crash()
	crashed := time.Now()
	madeBefore := map[*bundle]int64{a: madeA.Load(), b: madeB.Load()}
	waitUntil(t, 90*time.Second, func() bool { n := recv.Answered(); return n == robots*perRobot || n < 0 }, "every event answered 2xx")

	violations, maxRobots, requests, duplicates, failed := recv.Report()
	t.Logf("takeover: %d requests, %d failed on purpose, %d duplicates (of a head after the crash), at most %d robots in flight; all answered %s after the crash",
		requests, failed, duplicates, maxRobots, time.Since(crashed).Round(time.Millisecond))
	require.Empty(t, violations, "per robot, each event only after the one before was answered 2xx, across the crash")
	after := map[*bundle]int64{a: madeA.Load(), b: madeB.Load()}
	require.Greater(t, after[survivor], madeBefore[survivor], "the survivor took the partitions over")
}

// An event whose ordering key fails (here a missing field) is delivered
// unordered, and counted.
func TestOrderedKeyFailureDeliversUnordered(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	recv := newReceiver(t, always(http.StatusOK))
	b.orderedSub(t, recv.URL, 8)
	b.publish(t, "task.completed", `{"task_id":"T1"}`, "no-robot")
	req := recv.next(t, 10*time.Second)
	require.Equal(t, "no-robot", req.event["id"])
	waitUntil(t, 10*time.Second, func() bool { return b.disp.Stats().KeyErrors == 1 }, "the key failure counted")
	str, err := b.ns.JS.Stream(context.Background(), jetstream.StreamOrdered)
	require.NoError(t, err)
	require.Zero(t, str.CachedInfo().State.Msgs, "nothing went to ORDERED")
}

// TestOrderedThroughput logs how fast 100 keys of 10 events each go out
// ordered against the same run unordered, from the first publish to the
// last answer, to a receiver answering in 20 ms with a max-in-flight of
// 64 and as many workers. The load tool measures it properly; this only
// logs the figure.
func TestOrderedThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("measures")
	}
	const keys, perKey, delay, inFlight = 100, 10, 20 * time.Millisecond, 64
	run := func(ordered bool) time.Duration {
		b := setup(t, options{workers: inFlight})
		recv := daemontest.NewOrderedReceiver(t, delay, func(string, int, string) bool { return false })
		in := subscriptions.Subscription{URL: recv.URL, Events: []string{"task.completed"}, MaxInFlight: inFlight}
		if ordered {
			in.OrderingKey = "data.robot_id"
		}
		_, err := b.subs.Create(context.Background(), in)
		require.NoError(t, err)
		start := time.Now()
		b.publishRobots(t, keys, perKey)
		var total int
		waitUntil(t, 120*time.Second, func() bool {
			_, _, total, _, _ = recv.Report()
			return total >= keys*perKey
		}, "every event")
		return time.Since(start)
	}
	unordered := run(false)
	ordered := run(true)
	rate := func(d time.Duration) float64 { return keys * perKey / d.Seconds() }
	t.Logf("100 keys × 10 events, receiver 20 ms, max-in-flight 64: unordered %.0f/s, ordered %.0f/s (%.0f%%)",
		rate(unordered), rate(ordered), 100*rate(ordered)/rate(unordered))
}

// A pause holds each key's queue in order (nothing is recorded as held or
// handed to the unordered path); the resume continues every key in order.
func TestOrderedPauseHoldsKeysAndResumeContinuesInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	recv := daemontest.NewOrderedReceiver(t, 0, func(string, int, string) bool { return false })
	sub := b.orderedSub(t, recv.URL, 8)
	ctx := context.Background()
	_, err := b.subs.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.Active = false; return nil })
	require.NoError(t, err)

	const robots, perRobot = 5, 6
	b.publishRobots(t, robots, perRobot)
	waitUntil(t, 10*time.Second, func() bool {
		keys := b.disp.OrderedKeys(sub.ID, 10)
		if keys.Waiting != robots {
			return false
		}
		for _, k := range keys.Longest {
			if k.Deliveries != perRobot {
				return false
			}
		}
		return true
	}, "every key held with all its deliveries")
	_, _, requests, _, _ := recv.Report()
	require.Zero(t, requests, "nothing sent while paused")
	require.Zero(t, b.disp.Stats().Held, "held in the key queues, not recorded as paused")

	_, err = b.subs.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.Resume(); return nil })
	require.NoError(t, err)
	waitUntil(t, 20*time.Second, func() bool { n := recv.Answered(); return n == robots*perRobot || n < 0 }, "every event after the resume")
	violations, _, _, duplicates, _ := recv.Report()
	require.Empty(t, violations)
	require.Zero(t, duplicates)
}

// A replica that stops gracefully hands its partitions over at once: it
// hands its jobs back and unpins itself, so the other replica goes on
// without waiting for the pinned TTL or an AckWait, in order.
func TestOrderedGracefulStopHandsPartitionsOver(t *testing.T) {
	t.Parallel()
	var madeA, madeB atomic.Int64
	a := setup(t, options{attempter: func(at dispatcher.Attempter) dispatcher.Attempter { return countAttempts{at, &madeA} }})
	b := setup(t, options{server: a.ns, attempter: func(at dispatcher.Attempter) dispatcher.Attempter { return countAttempts{at, &madeB} }})
	recv := daemontest.NewOrderedReceiver(t, 10*time.Millisecond, func(string, int, string) bool { return false })
	sub := a.orderedSub(t, recv.URL, 4)
	waitUntil(t, 10*time.Second, func() bool { _, ok := b.subs.Get(sub.ID); return ok }, "the subscription on both replicas")
	const robots, perRobot = 20, 10
	a.publishRobots(t, robots, perRobot)
	waitUntil(t, 30*time.Second, func() bool { n := recv.Answered(); return n >= robots*perRobot/4 || n < 0 }, "a quarter answered")
	owner := a
	if madeB.Load() > madeA.Load() {
		owner = b
	}
	stopped := time.Now()
	owner.stop()
	waitUntil(t, 30*time.Second, func() bool { n := recv.Answered(); return n == robots*perRobot || n < 0 }, "every event")
	took := time.Since(stopped)
	t.Logf("graceful stop: the rest answered %s after the owner stopped", took.Round(time.Millisecond))
	violations, _, _, _, _ := recv.Report()
	require.Empty(t, violations)
	require.Less(t, took, jstest.Provisioning().AckWait, "no AckWait and no pinned TTL waited for")
}

// A delivery that failed for good lets its key go on; redelivering it
// later sends it through the unordered path (DELIVERIES), continuing its
// attempt count, without blocking the key's new deliveries.
func TestOrderedFailedForGoodMovesOnAndRedeliveryIsUnordered(t *testing.T) {
	t.Parallel()
	b := setup(t, options{policy: delivery.Schedule(50 * time.Millisecond)})
	recv := newReceiver(t, func(n int) int {
		if n <= 2 || n == 5 {
			return http.StatusServiceUnavailable // event 0: both attempts, and the redelivery's first
		}
		return http.StatusOK
	})
	sub := b.orderedSub(t, recv.URL, 8)
	for n := range 3 {
		b.publish(t, "task.completed", fmt.Sprintf(`{"robot_id":"R0","n":%d}`, n), "")
	}
	var order []float64
	var failedID string
	for range 4 {
		req := recv.next(t, 10*time.Second)
		order = append(order, req.event["data"].(map[string]any)["n"].(float64))
		if failedID == "" {
			failedID = req.header.Get("X-Webhook-Delivery")
		}
	}
	require.Equal(t, []float64{0, 0, 1, 2}, order, "event 1 only after event 0 failed for good")
	b.waitDelivery(t, failedID, delivery.StatusFailed)

	storedOrdered := func() uint64 {
		str, err := b.ns.JS.Stream(context.Background(), jetstream.StreamOrdered)
		require.NoError(t, err)
		return str.CachedInfo().State.LastSeq
	}
	before := storedOrdered()
	require.NoError(t, b.queue.Requeue(context.Background(), failedID))
	for attempt := 3; attempt <= 4; attempt++ {
		req := recv.next(t, 10*time.Second)
		require.Equal(t, failedID, req.header.Get("X-Webhook-Delivery"))
		require.Equal(t, strconv.Itoa(attempt), req.header.Get("X-Webhook-Attempt"), "the attempt count goes on")
	}
	b.waitDelivery(t, failedID, delivery.StatusSucceeded)
	require.Equal(t, before, storedOrdered(), "the redelivery and its retry went the unordered path")
	require.Zero(t, b.disp.OrderedKeys(sub.ID, 10).Waiting)

	b.publish(t, "task.completed", `{"robot_id":"R0","n":3}`, "")
	req := recv.next(t, 10*time.Second)
	require.EqualValues(t, 3, req.event["data"].(map[string]any)["n"], "the key goes on")
}

// A key with control characters or longer than 256 bytes is carried (and
// shown to operators) as its SHA-256: still one key per value, still in
// order.
func TestOrderedKeysWithLineBreaksOrLongValues(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	recv := daemontest.NewOrderedReceiver(t, 0, func(string, int, string) bool { return false })
	sub := b.orderedSub(t, recv.URL, 8)
	ctx := context.Background()
	_, err := b.subs.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.Active = false; return nil })
	require.NoError(t, err)
	long := strings.Repeat("x", 5000)
	for n := range 3 {
		for _, robot := range []string{"a\r\nNats-Msg-Id: evil", long, "plain"} {
			b.publish(t, "task.completed", fmt.Sprintf(`{"robot_id":%q,"n":%d}`, robot, n), "")
		}
	}
	waitUntil(t, 10*time.Second, func() bool {
		keys := b.disp.OrderedKeys(sub.ID, 10)
		return keys.Waiting == 3 && keys.Longest[2].Deliveries == 3
	}, "three keys held with three deliveries each")
	var shown []string
	for _, k := range b.disp.OrderedKeys(sub.ID, 10).Longest {
		require.Equal(t, 3, k.Deliveries)
		shown = append(shown, k.Key)
	}
	require.Len(t, shown, 3)
	require.Equal(t, "plain", shown[0])
	require.Regexp(t, "^sha256:[0-9a-f]{64}$", shown[1])
	require.Regexp(t, "^sha256:[0-9a-f]{64}$", shown[2])

	_, err = b.subs.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.Resume(); return nil })
	require.NoError(t, err)
	waitUntil(t, 10*time.Second, func() bool { n := recv.Answered(); return n == 9 || n < 0 }, "every event")
	violations, _, _, _, _ := recv.Report()
	require.Empty(t, violations)
	require.Zero(t, b.disp.Stats().KeyErrors)
}
