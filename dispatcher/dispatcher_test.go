package dispatcher_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

func TestEventArrivesAsTheContractSays(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL+"/hooks", "task.completed")

	before := time.Now().UTC().Truncate(time.Second)
	deliveryID := b.deliver(t, sub, "task.completed", `{"task_id": "T123", "robot_id": "R001"}`, "evt-123")
	r := rcv.next(t, 10*time.Second)

	// Envelope.
	var env struct {
		ID        string          `json:"id"`
		Event     string          `json:"event"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(r.body, &env))
	require.Equal(t, "evt-123", env.ID)
	require.Equal(t, "task.completed", env.Event)
	ts, err := time.Parse(time.RFC3339, env.Timestamp)
	require.NoError(t, err)
	require.Equal(t, time.UTC, ts.Location())
	require.False(t, ts.Before(before))
	require.JSONEq(t, `{"task_id":"T123","robot_id":"R001"}`, string(env.Data))

	// Headers.
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "task.completed", r.header.Get("X-Webhook-Event"))
	require.Equal(t, sub.ID, r.header.Get("X-Webhook-ID"))
	require.Equal(t, deliveryID, r.header.Get("X-Webhook-Delivery"))
	require.Equal(t, "1", r.header.Get("X-Webhook-Attempt"))
	require.Equal(t, deliveryID, r.header.Get("webhook-id"))

	// Signatures: the plain HMAC recipe, and the Standard Webhooks reference library.
	mac := hmac.New(sha256.New, []byte(sub.Secret))
	mac.Write(r.body)
	require.Equal(t, hex.EncodeToString(mac.Sum(nil)), r.header.Get("X-Webhook-Signature"))
	wh, err := standardwebhooks.NewWebhook(sub.Secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(r.body, r.header))

	// The audit trail.
	d := b.waitDelivery(t, deliveryID, delivery.StatusSucceeded)
	require.Equal(t, "evt-123", d.EventID)
	require.Equal(t, sub.ID, d.SubscriptionID)
	require.Equal(t, rcv.URL+"/hooks", d.URL)
	require.Len(t, d.Attempts, 1)
	require.Equal(t, 1, d.Attempts[0].Attempt)
	require.Equal(t, http.StatusOK, d.Attempts[0].StatusCode)
	require.Equal(t, "succeeded", d.Attempts[0].Reason)
	byEvent, _, err := b.store.List(history.Query{EventID: "evt-123"})
	require.NoError(t, err)
	require.Len(t, byEvent, 1)
}

func TestEventIDWithoutMsgIDIsStable(t *testing.T) {
	t.Parallel()
	// The first attempt fails, so the job is redelivered: the event id and
	// delivery id derived from the stream sequence must not change.
	b := setup(t, options{})
	rcv := newReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	b.subscribe(t, rcv.URL, "robot.connected")
	b.publish(t, "robot.connected", `{"robot_id":"R9"}`, "")
	first, second := rcv.next(t, 10*time.Second), rcv.next(t, 10*time.Second)
	require.NotEmpty(t, first.event["id"])
	require.Equal(t, first.event["id"], second.event["id"])
	require.Equal(t, first.header.Get("X-Webhook-Delivery"), second.header.Get("X-Webhook-Delivery"))
	require.Equal(t, delivery.EventIDFromSequence("", 1), first.event["id"])
}

func TestFanOutAndFilteringOverTheCatalog(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	type target struct {
		events []string
		want   []string
		rcv    *receiver
	}
	targets := []*target{
		{events: []string{"task.completed"}, want: []string{"task.completed"}},
		{events: []string{"robot.connected", "alert.triggered"}, want: []string{"alert.triggered", "robot.connected"}},
		{events: []string{"task.*"}, want: []string{"task.completed", "task.created", "task.failed"}},
		{events: []string{"robot.>"}, want: []string{"robot.connected", "robot.disconnected"}},
		{events: []string{"*.due", "*.triggered"}, want: []string{"alert.triggered", "maintenance.due"}},
		{events: []string{">"}, want: slices.Sorted(slices.Values(config.Catalog()))},
		{events: []string{"firmware.updated"}, want: nil}, // matches nothing published
	}
	total := 0
	for _, tg := range targets {
		tg.rcv = newReceiver(t, always(http.StatusNoContent))
		b.subscribe(t, tg.rcv.URL, tg.events...)
		total += len(tg.want)
	}
	for i, typ := range config.Catalog() {
		b.publish(t, typ, fmt.Sprintf(`{"n":%d}`, i), "evt-"+typ)
	}
	waitUntil(t, 15*time.Second, func() bool {
		st := b.disp.Stats()
		return st.Attempts == uint64(total) && st.Routed == uint64(len(config.Catalog())) && b.workersIdle(t)
	}, "every event routed and every job attempted")

	for _, tg := range targets {
		var got []string
		for len(tg.rcv.reqs) > 0 {
			r := <-tg.rcv.reqs
			require.Equal(t, r.event["event"], r.header.Get("X-Webhook-Event"))
			got = append(got, r.event["event"].(string))
		}
		sort.Strings(got)
		require.Equal(t, tg.want, got, "subscription to %v", tg.events)
	}
	st := b.disp.Stats()
	require.EqualValues(t, len(config.Catalog()), st.Routed)
	require.Zero(t, st.Jobs, "every first attempt went the fast path: nothing stored in DELIVERIES")
	require.Zero(t, st.Rejected)
}

func TestEventWithoutSubscriberIsAckedAndCounted(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.publish(t, "maintenance.due", `{}`, "")
	waitUntil(t, 10*time.Second, func() bool { return b.disp.Stats().NoSubscriber == 1 }, "no-subscriber count")
	c, err := b.ns.JS.Consumer(context.Background(), jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.NoError(t, err)
	waitUntil(t, 10*time.Second, func() bool {
		info, err := c.Info(context.Background())
		require.NoError(t, err)
		return info.NumAckPending == 0 && info.NumPending == 0
	}, "event acked")
}

func TestRetryScheduleExhaustionAndNoMoreAfterFailure(t *testing.T) {
	t.Parallel()
	schedule := []time.Duration{400 * time.Millisecond, 800 * time.Millisecond, 1200 * time.Millisecond}
	b := setup(t, options{policy: delivery.Schedule(schedule...)})
	var failing atomic.Bool
	failing.Store(true)
	rcv := newReceiver(t, func(int) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	sub := b.subscribe(t, rcv.URL, "task.failed")
	id := b.deliver(t, sub, "task.failed", `{"task_id":"T1"}`, "evt-retry")

	var reqs []request
	for range len(schedule) + 1 {
		reqs = append(reqs, rcv.next(t, 10*time.Second))
	}
	for i, r := range reqs {
		require.Equal(t, id, r.header.Get("X-Webhook-Delivery"), "same delivery id on every attempt")
		require.Equal(t, strconv.Itoa(i+1), r.header.Get("X-Webhook-Attempt"))
		if i > 0 {
			gap := r.at.Sub(reqs[i-1].at)
			// The delay runs from the failure to the next attempt; allow
			// for JetStream's timer, the record write and a loaded machine.
			require.GreaterOrEqual(t, gap, schedule[i-1], "gap before attempt %d", i+1)
			require.Less(t, gap, schedule[i-1]+2*time.Second, "gap before attempt %d", i+1)
		}
	}

	d := b.waitDelivery(t, id, delivery.StatusFailed)
	require.Len(t, d.Attempts, 4)
	for i, a := range d.Attempts {
		require.Equal(t, i+1, a.Attempt)
		require.Equal(t, 503, a.StatusCode)
		require.Equal(t, "http_503", a.Reason)
		require.Equal(t, 4, a.MaxAttempts)
	}
	require.EqualValues(t, schedule[0].Milliseconds(), d.Attempts[0].NextRetryMS)
	require.Zero(t, d.Attempts[3].NextRetryMS)
	_, err := b.store.JobSeq(id)
	require.NoError(t, err, "the failed job is kept for replay")

	// The receiver recovers: the job was terminated, so nothing more comes.
	failing.Store(false)
	waitUntil(t, 10*time.Second, func() bool { return b.workersIdle(t) }, "job terminated")
	require.Empty(t, rcv.reqs)
}

func TestPoisonedEventsAreRejectedAndDoNotBlock(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL, ">")

	b.publish(t, "task.completed", `not json at all`, "bad-1")
	b.publish(t, "task.completed", `[1,2,3]`, "bad-2")
	b.publish(t, "no.such.type", `{"x":1}`, "bad-3")
	good := b.deliver(t, sub, "task.completed", `{"ok":true}`, "good-1")

	r := rcv.next(t, 10*time.Second)
	require.Equal(t, "good-1", r.event["id"])
	waitUntil(t, 10*time.Second, func() bool { return b.disp.Stats().Rejected == 3 }, "three rejections")
	for _, id := range []string{"bad-1", "bad-2", "bad-3"} {
		var ds []history.Delivery
		waitUntil(t, 10*time.Second, func() bool {
			ds, _, _ = b.store.List(history.Query{EventID: id})
			return len(ds) == 1
		}, "the rejection of "+id+" indexed")
		require.Equal(t, delivery.StatusRejected, ds[0].Status)
		require.NotEmpty(t, ds[0].Reason)
	}
	ds, _, _ := b.store.List(history.Query{EventID: "bad-3"})
	require.Contains(t, ds[0].Reason, "unknown event type")
	ds, _, _ = b.store.List(history.Query{EventID: "bad-1"})
	require.Contains(t, ds[0].Reason, "not a JSON object")
	require.Empty(t, rcv.reqs, "nothing but the good event was delivered")
	b.waitDelivery(t, good, delivery.StatusSucceeded)
}

// A spilled job whose publish is repeated (a redelivered event's spill
// after a router crashed mid fan-out) is stored once.
func TestRepeatedFanOutCreatesNoDuplicateJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, options{noFastPath: true})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribe(t, rcv.URL, "task.created")
	// The event, and its job published again, as by a router that
	// crashed mid fan-out and whose event is routed again: whichever of
	// the router's and this one comes second is deduplicated.
	seq := b.publish(t, "task.created", `{}`, "evt-dup")
	ev := delivery.Event{ID: "evt-dup", Type: "task.created", Timestamp: b.storedAt(t, seq), Seq: seq, Data: []byte(`{}`)}
	job := delivery.NewJob(ev, sub.ID, time.Now())
	b.publishJob(t, job, job.ID)
	require.Equal(t, job.ID, rcv.next(t, 10*time.Second).header.Get("X-Webhook-Delivery"))
	waitUntil(t, 10*time.Second, func() bool { return b.disp.Stats().Routed == 1 && b.workersIdle(t) }, "fan-out done")
	require.Empty(t, rcv.reqs, "the republished job was deduplicated")
}

// DELIVERIES is a work queue: a settled job leaves the stream, so a crash
// of the server that loses consumer state cannot offer it again. Each
// attempt is its own message, carrying its number.
func TestSettledJobsLeaveTheQueue(t *testing.T) {
	t.Parallel()
	b := setup(t, options{policy: delivery.Schedule(50 * time.Millisecond)})
	ok := newReceiver(t, always(http.StatusOK))
	bad := newReceiver(t, always(http.StatusBadGateway))
	b.subscribe(t, ok.URL, "task.created")
	b.subscribe(t, bad.URL, "task.failed")
	for i := range 5 {
		b.publish(t, "task.created", `{}`, fmt.Sprintf("ok-%d", i))
		b.publish(t, "task.failed", `{}`, fmt.Sprintf("bad-%d", i))
	}
	waitUntil(t, 15*time.Second, func() bool { return b.disp.Stats().Attempts == 15 && b.workersIdle(t) }, "5 successes, 5×2 failures")
	// EVENTS is kept under Limits retention: the purger removes routed
	// events, here at once (no retention).
	purger := jetstream.NewPurger(b.ns.JS, jetstream.PurgerConfig{}, zerolog.Nop())
	for _, name := range []string{jetstream.StreamDeliveries, jetstream.StreamEvents} {
		s, err := b.ns.JS.Stream(context.Background(), name)
		require.NoError(t, err)
		waitUntil(t, 10*time.Second, func() bool {
			if name == jetstream.StreamEvents {
				_, err := purger.PurgeOnce(context.Background())
				require.NoError(t, err)
			}
			info, err := s.Info(context.Background())
			require.NoError(t, err)
			return info.State.Msgs == 0
		}, name+" empty")
	}
}

func TestPausedAndDeletedSubscriptions(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rcv := newReceiver(t, always(http.StatusOK))
	paused := b.subscribe(t, rcv.URL, "alert.triggered")
	_, err := b.subs.Update(context.Background(), paused.ID, func(s *subscriptions.Subscription) error { s.Active = false; return nil })
	require.NoError(t, err)
	id := b.deliver(t, paused, "alert.triggered", `{"level":"high"}`, "evt-paused")
	d := b.waitDelivery(t, id, delivery.StatusPaused)
	require.Empty(t, d.Attempts, "a paused delivery counts no attempt")
	_, err = b.store.JobSeq(d.ID)
	require.NoError(t, err, "the paused job is kept")

	// A job whose subscription was deleted after routing is cancelled.
	gone := b.subscribe(t, rcv.URL, "maintenance.due")
	job := newJob(t, "evt-gone", "maintenance.due", gone.ID)
	require.NoError(t, b.subs.Delete(context.Background(), gone.ID))
	b.publishJob(t, job, "")
	b.waitDelivery(t, job.ID, delivery.StatusCancelled)
	require.Empty(t, rcv.reqs)
}
