package dispatcher_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/subscriptions"
)

// subscribeWith creates a subscription with expressions, as the admin API
// stores one it accepted.
func (b *bundle) subscribeWith(t testing.TB, sub subscriptions.Subscription) subscriptions.Subscription {
	t.Helper()
	sub, err := b.subs.Create(context.Background(), sub)
	require.NoError(t, err)
	return sub
}

// A filtered subscription gets exactly the events its filter gives true
// for, an unfiltered one gets them all, and one whose filter fails (a
// missing field) gets none and counts each failure. A filtered-out branch
// leaves no record. On the fast path and on the job path alike.
func TestFilterDeliversOnlyMatchingEvents(t *testing.T) {
	t.Parallel()
	for _, noFast := range []bool{false, true} {
		t.Run(fmt.Sprintf("noFastPath=%v", noFast), func(t *testing.T) {
			t.Parallel()
			obs := newObserved()
			b := setup(t, options{observer: obs, noFastPath: noFast})
			critical, all, broken := newReceiver(t, always(http.StatusOK)), newReceiver(t, always(http.StatusOK)), newReceiver(t, always(http.StatusOK))
			subCritical := b.subscribeWith(t, subscriptions.Subscription{URL: critical.URL, Events: []string{"alert.triggered"},
				Filter: `data.severity == "critical" && data.fleet in ["north", "east"]`})
			subAll := b.subscribe(t, all.URL, "alert.triggered")
			subBroken := b.subscribeWith(t, subscriptions.Subscription{URL: broken.URL, Events: []string{"alert.triggered"},
				Filter: `data.missing > 1`})

			events := []struct{ severity, fleet string }{
				{"critical", "north"}, {"info", "north"}, {"critical", "south"}, {"critical", "east"}, {"warning", "east"}, {"critical", "north"},
			}
			want := map[string]bool{}
			ids := map[string]string{} // event id → the delivery id of subCritical
			for i, e := range events {
				id := fmt.Sprintf("flt-%v-%d", noFast, i)
				ids[id] = b.deliver(t, subCritical, "alert.triggered", fmt.Sprintf(`{"severity":%q,"fleet":%q}`, e.severity, e.fleet), id)
				if e.severity == "critical" && (e.fleet == "north" || e.fleet == "east") {
					want[id] = true
				}
			}
			gotAll := map[string]bool{}
			for range events {
				gotAll[all.next(t, 15*time.Second).event["id"].(string)] = true
			}
			require.Len(t, gotAll, len(events), "the unfiltered subscription gets every event")
			gotCritical := map[string]bool{}
			for range want {
				gotCritical[critical.next(t, 15*time.Second).event["id"].(string)] = true
			}
			require.Equal(t, want, gotCritical)
			for id := range want {
				b.waitDelivery(t, ids[id], delivery.StatusSucceeded)
			}
			waitUntil(t, 15*time.Second, func() bool { return b.workersIdle(t) }, "every event and job settled")
			require.Empty(t, critical.reqs, "no event the filter refused")
			require.Empty(t, broken.reqs, "a failing filter matches nothing")
			for id, deliveryID := range ids {
				if !want[id] {
					_, err := b.store.Get(deliveryID)
					require.ErrorIs(t, err, history.ErrNotFound, "a filtered-out branch leaves no record")
				}
			}
			require.Equal(t, len(events), obs.filterErrorsOf(subBroken.ID), "each failure counted")
			require.Zero(t, obs.filterErrorsOf(subCritical.ID))
			require.Zero(t, obs.filterErrorsOf(subAll.ID))

			// An event no subscription lets through is one without a subscriber.
			require.NoError(t, b.subs.Delete(context.Background(), subAll.ID))
			waitUntil(t, 10*time.Second, func() bool { return len(b.subs.Match("alert.triggered")) == 2 }, "the mirror to drop the subscription")
			b.publish(t, "alert.triggered", `{"severity":"info","fleet":"north"}`, fmt.Sprintf("flt-%v-none", noFast))
			waitUntil(t, 10*time.Second, func() bool {
				events, _, _ := obs.snapshot()
				return events["alert.triggered/no_subscriber"] == 1
			}, "the event acked without a subscriber")
			require.Equal(t, len(events)+1, obs.filterErrorsOf(subBroken.ID))
		})
	}
}

// A transformed body is what arrives, with every header of the contract,
// and what both signature schemes sign: the Standard Webhooks reference
// library and the plain HMAC recipe verify it.
func TestTransformedBodyIsSentAndSigned(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribeWith(t, subscriptions.Subscription{URL: rcv.URL, Events: []string{"alert.triggered"},
		Transform: `{"text": "robot " + data.robot_id + ": " + data.message, "event": event, "id": id}`})
	deliveryID := b.deliver(t, sub, "alert.triggered", `{"robot_id":"R7","message":"battery at 5%","severity":"critical"}`, "tr-1")
	r := rcv.next(t, 15*time.Second)

	require.JSONEq(t, `{"text":"robot R7: battery at 5%","event":"alert.triggered","id":"tr-1"}`, string(r.body))
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "alert.triggered", r.header.Get(delivery.HeaderEvent))
	require.Equal(t, sub.ID, r.header.Get(delivery.HeaderSubscription))
	require.Equal(t, deliveryID, r.header.Get(delivery.HeaderDelivery))
	require.Equal(t, "1", r.header.Get(delivery.HeaderAttempt))
	require.Equal(t, deliveryID, r.header.Get(delivery.HeaderStandardID))

	wh, err := standardwebhooks.NewWebhook(sub.Secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(r.body, r.header), "the reference library verifies the body sent")
	m := hmac.New(sha256.New, []byte(sub.Secret))
	m.Write(r.body)
	require.Equal(t, hex.EncodeToString(m.Sum(nil)), r.header.Get(delivery.HeaderSignature), "the HMAC recipe verifies it")
	b.waitDelivery(t, deliveryID, delivery.StatusSucceeded)
}

// A transform that fails for one event fails that delivery at once, with
// transform_error and CEL's message in its attempt: the receiver is not
// called, nothing is retried (the policy has retries), and the endpoint's
// health is untouched, so the next event goes through.
func TestFailingTransformFailsAtOnce(t *testing.T) {
	t.Parallel()
	obs := newObserved()
	b := setup(t, options{observer: obs})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribeWith(t, subscriptions.Subscription{URL: rcv.URL, Events: []string{"alert.triggered"},
		Transform: `{"text": data.message}`})
	bad := b.deliver(t, sub, "alert.triggered", `{"severity":"critical"}`, "trx-bad")
	d := b.waitDelivery(t, bad, delivery.StatusFailed)
	require.Equal(t, delivery.ReasonTransform, d.Reason)
	require.Len(t, d.Attempts, 1)
	require.Equal(t, delivery.ReasonTransform, d.Attempts[0].Reason)
	require.Contains(t, d.Attempts[0].Error, "no such key: message", "CEL's message")
	require.Zero(t, d.Attempts[0].StatusCode)
	require.Zero(t, b.endpoints.Health(sub.ID).ConsecutiveFailures, "no request, nothing said of the endpoint")

	good := b.deliver(t, sub, "alert.triggered", `{"message":"hello"}`, "trx-good")
	r := rcv.next(t, 15*time.Second)
	require.JSONEq(t, `{"text":"hello"}`, string(r.body), "the first request is the good event's")
	b.waitDelivery(t, good, delivery.StatusSucceeded)
	waitUntil(t, 15*time.Second, func() bool { return b.workersIdle(t) }, "nothing left to retry")
	require.Empty(t, rcv.reqs)
	d, err := b.store.Get(bad)
	require.NoError(t, err)
	require.Len(t, d.Attempts, 1, "not retried")
	waitUntil(t, 10*time.Second, func() bool {
		_, attempts, _ := obs.snapshot()
		return attempts[sub.ID+"/"+delivery.ReasonTransform] == 1
	}, "the transform error reported")
}

// A transformed body over the size limit fails as a transform error.
func TestTransformBodyIsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, options{maxEventBytes: 1 << 10})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribeWith(t, subscriptions.Subscription{URL: rcv.URL, Events: []string{"alert.triggered"},
		Transform: `{"a": data.s, "b": data.s, "c": data.s}`})
	big := b.deliver(t, sub, "alert.triggered", `{"s":"`+strings.Repeat("x", 500)+`"}`, "trb-big")
	d := b.waitDelivery(t, big, delivery.StatusFailed)
	require.Equal(t, delivery.ReasonTransform, d.Reason)
	require.Contains(t, d.Attempts[0].Error, "over the limit of 1024")
	require.Empty(t, rcv.reqs)
}

// The filter applies at routing time: a job already queued (a retry, a
// redelivery, a replay) is delivered whatever the subscription's filter
// says now.
func TestQueuedJobIgnoresTheFilter(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rcv := newReceiver(t, always(http.StatusOK))
	sub := b.subscribeWith(t, subscriptions.Subscription{URL: rcv.URL, Events: []string{"task.completed"}, Filter: `false`})
	job := newJob(t, "queued-1", "task.completed", sub.ID)
	b.publishJob(t, job, "")
	r := rcv.next(t, 15*time.Second)
	require.Equal(t, "queued-1", r.event["id"])
	b.waitDelivery(t, job.ID, delivery.StatusSucceeded)
}
