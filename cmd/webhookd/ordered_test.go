package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/daemontest"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// waitAnswered waits until at least n events were answered 2xx (or the
// order broke).
func waitAnswered(t *testing.T, r *daemontest.OrderedReceiver, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.Answered()
		if got >= n || got < 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events answered within %s", got, n, timeout)
		}
		time.Sleep(20 * time.Millisecond) // a receiver's count: nothing to await
	}
}

// publishRobots publishes robots × perRobot task.completed events, robot r's
// event n before its event n+1, interleaved across robots.
func publishRobots(t *testing.T, url string, robots, perRobot int) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	for n := range perRobot {
		for r := range robots {
			_, err := js.Publish("events.task.completed", fmt.Appendf(nil, `{"robot_id":"R%03d","n":%d}`, r, n))
			require.NoError(t, err)
		}
	}
}

// TestOrderedDeliveryAcrossReplicasAndSIGKILL is issue 19's demonstration
// with the real binary: two webhookd processes on one NATS server, 40
// robots with 25 events each, a receiver that answers slowly and fails a
// third of the first attempts (opening the endpoint's breaker now and
// then), and the replica owning the most keys killed
// with SIGKILL a third of the way through. Per robot, the receiver sees
// each event only after the one before was answered 2xx, and several
// robots are in flight at once; duplicates (of a head, after the crash)
// are reported.
func TestOrderedDeliveryAcrossReplicasAndSIGKILL(t *testing.T) {
	bin, err := daemontest.Build(t.TempDir())
	require.NoError(t, err)
	ns := jstest.RunServer(t)
	// The failures open the endpoint's breaker now and then: heads wait
	// for its cool-down, kept short here.
	args := []string{"--nats-url", ns.ClientURL(), "--retry-backoff", "100ms,200ms,300ms", "--log-level", "warn",
		"--breaker-cooldown", "200ms"}
	a := daemontest.Start(t, bin, args...)
	b := daemontest.Start(t, bin, args...)
	ctx := context.Background()
	// Fails the first attempt of every third event of each robot.
	rcv := daemontest.NewOrderedReceiver(t, 20*time.Millisecond, func(_ string, n int, attempt string) bool { return n%3 == 1 && attempt == "1" })
	sub, err := a.Client(t).CreateSubscription(ctx, client.SubscriptionInput{
		URL: rcv.URL, Events: []string{"task.completed"}, OrderingKey: "data.robot_id", MaxInFlight: 8,
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := b.Client(t).GetSubscription(ctx, sub.ID)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the subscription on both replicas")

	const robots, perRobot = 40, 25
	began := time.Now()
	publishRobots(t, ns.ClientURL(), robots, perRobot)
	waitAnswered(t, rcv, robots*perRobot/3, 60*time.Second)

	// The victim: the replica with more keys waiting (subscriptions get
	// shows the keys each replica owns).
	waiting := func(d *daemontest.Daemon) int {
		s, err := d.Client(t).GetSubscription(ctx, sub.ID)
		require.NoError(t, err)
		require.NotNil(t, s.OrderedKeys, "an ordered subscription shows its keys")
		return s.OrderedKeys.Waiting
	}
	wa, wb := waiting(a), waiting(b)
	victim, survivor := a, b
	if wb > wa {
		victim, survivor = b, a
	}
	victim.Kill(t)
	killed := time.Now()
	t.Logf("keys waiting before the kill: A %d, B %d; killed %s with SIGKILL %s into the run, %d events answered",
		wa, wb, map[bool]string{true: "A", false: "B"}[victim == a], killed.Sub(began).Round(time.Millisecond), rcv.Answered())
	require.Positive(t, max(wa, wb), "the victim owned keys with deliveries waiting")

	waitAnswered(t, rcv, robots*perRobot, 120*time.Second)
	violations, most, requests, dups, bad := rcv.Report()
	t.Logf("ordered through SIGKILL: %d events, %d requests (%d failed on purpose), %d duplicates of a head, at most %d robots in flight; all answered %s after the kill",
		robots*perRobot, requests, bad, dups, most, time.Since(killed).Round(time.Millisecond))
	require.Empty(t, violations, "per robot, each event only after the one before was answered 2xx")
	require.Greater(t, most, 2, "several robots in flight at once")
	require.Eventually(t, func() bool {
		s, err := survivor.Client(t).GetSubscription(ctx, sub.ID)
		return err == nil && s.OrderedKeys.Waiting == 0
	}, 10*time.Second, 20*time.Millisecond, "nothing left waiting once the last heads are settled")
}
