package dispatcher_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// For a listen subscription the router makes no delivery (no job, no
// attempt, no record, even with every first attempt spilled to
// DELIVERIES) and publishes the signed request on the listener's subject
// instead, as the attempt would send it; a real subscription beside it is
// delivered as ever.
func TestRouterPublishesSignedRequestsForListeners(t *testing.T) {
	t.Parallel()
	b := setup(t, options{noFastPath: true})
	rcv := newReceiver(t, always(http.StatusOK))
	real := b.subscribe(t, rcv.URL, "task.completed")
	ctx := context.Background()
	l, err := b.subs.Create(ctx, subscriptions.Subscription{Listen: true, Events: []string{"task.*"}, ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	msgs := make(chan *nats.Msg, 8)
	ns, err := b.nc.ChanSubscribe(jetstream.ListenSubject(l.ID), msgs)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Unsubscribe() })
	require.NoError(t, b.nc.Flush())

	id := b.deliver(t, real, "task.completed", `{"task_id":"T1"}`, "evt-heard")
	var m *nats.Msg
	select {
	case m = <-msgs:
	case <-time.After(15 * time.Second):
		t.Fatal("nothing published for the listener")
	}
	var sr delivery.Signed
	require.NoError(t, json.Unmarshal(m.Data, &sr))
	require.Equal(t, "evt-heard", sr.EventID)
	require.Equal(t, "task.completed", sr.Event)
	require.Equal(t, l.ID, sr.Headers.Get(delivery.HeaderSubscription))
	require.Equal(t, sr.DeliveryID, sr.Headers.Get(delivery.HeaderDelivery))
	require.Equal(t, "1", sr.Headers.Get(delivery.HeaderAttempt))
	require.True(t, signature.Verify(l.Secret, sr.Body, sr.Headers.Get(delivery.HeaderSignature)))
	require.NoError(t, signature.VerifyStandard(l.Secret, sr.Headers.Get(delivery.HeaderStandardID),
		sr.Headers.Get(delivery.HeaderStandardTimestamp), sr.Headers.Get(delivery.HeaderStandardSignature), sr.Body, time.Now(), time.Minute))
	require.True(t, strings.HasPrefix(string(sr.Body), `{"id":"evt-heard","event":"task.completed"`), string(sr.Body))

	b.waitDelivery(t, id, delivery.StatusSucceeded)
	st := b.disp.Stats()
	require.EqualValues(t, 1, st.Jobs, "one job: the real subscription's")
	require.EqualValues(t, 1, st.Attempts)
	items, _, err := b.store.List(history.Query{SubscriptionID: l.ID})
	require.NoError(t, err)
	require.Empty(t, items, "no record for the listener")
	_, ok := <-rcv.reqs
	require.True(t, ok)
	require.Empty(t, msgs, "published once")
}
