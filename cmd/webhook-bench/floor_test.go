package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// TestFloorRecordsAndIndexesEveryAttempt checks what the floor keeps of
// webhookd's guarantees: each event reaches the receiver with both
// signatures valid, and each attempt is recorded in AUDIT and indexed in
// the bbolt file, as succeeded, by the delivery id webhookd would give an
// event published without a Nats-Msg-Id.
func TestFloorRecordsAndIndexesEveryAttempt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := startReceiver()
	require.NoError(t, err)
	defer r.close()
	col := newCollector(time.Now())
	r.col.Store(col)
	subs, err := floorSubscriptions([]*receiver{r})
	require.NoError(t, err)
	f, js := startTestFloor(ctx, t, subs, 4)

	const n = 20
	var seqs []uint64
	for i := range n {
		ack, err := js.Publish(ctx, jetstream.EventSubject(eventType), eventData(uint64(i+1), time.Now(), 256))
		require.NoError(t, err)
		seqs = append(seqs, ack.Sequence)
	}
	require.Eventually(t, func() bool { return col.delivered.Load() == n }, 30*time.Second, 10*time.Millisecond)
	require.Zero(t, col.badSignatures.Load())
	for _, seq := range seqs {
		ev := delivery.EventIDFromSequence("", seq)
		require.Eventually(t, func() bool {
			d, err := eventDelivery(f, ev)
			return err == nil && d.Status == delivery.StatusSucceeded
		}, 30*time.Second, 10*time.Millisecond, "the delivery of %s indexed as succeeded", ev)
	}
}

// TestFloorRecordsARetriedAttemptAsTheNext: a job whose first attempt
// failed is nak'ed and runs again; that run is recorded as attempt 2, so
// AUDIT does not drop its record as a duplicate of the first.
func TestFloorRecordsARetriedAttemptAsTheNext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if requests.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	secret, err := signature.NewSecret()
	require.NoError(t, err)
	subs := []subscriptions.Subscription{{ID: "sub-1", URL: srv.URL, Events: []string{eventType}, Active: true, Secret: secret}}
	f, js := startTestFloor(ctx, t, subs, 1)
	ack, err := js.Publish(ctx, jetstream.EventSubject(eventType), eventData(1, time.Now(), 256))
	require.NoError(t, err)

	var d history.Delivery
	require.Eventually(t, func() bool {
		d, err = eventDelivery(f, delivery.EventIDFromSequence("", ack.Sequence))
		return err == nil && d.Status == delivery.StatusSucceeded
	}, 30*time.Second, 10*time.Millisecond, "indexed as succeeded after the retry")
	require.Len(t, d.Attempts, 2)
	require.Equal(t, []int{1, 2}, []int{d.Attempts[0].Attempt, d.Attempts[1].Attempt})
	require.Equal(t, []int{500, 204}, []int{d.Attempts[0].StatusCode, d.Attempts[1].StatusCode})
}

// startTestFloor runs a NATS server and the floor delivering to subs with
// workers attempts at a time, and returns the floor and a robot's
// JetStream client. The floor must stop cleanly when the test ends.
func startTestFloor(ctx context.Context, t *testing.T, subs []subscriptions.Subscription, workers int) (*floor, natsjs.JetStream) {
	t.Helper()
	dir := t.TempDir()
	ns, err := startNATS(filepath.Join(dir, "nats"))
	require.NoError(t, err)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	f, err := startFloor(ctx, ns.ClientURL(), dir, subs, workers)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, f.stop()) })
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	return f, js
}

// eventDelivery returns the one delivery of event eventID that f's index
// holds (the tests have one subscription), or history.ErrNotFound.
func eventDelivery(f *floor, eventID string) (history.Delivery, error) {
	ds, _, err := f.store.List(history.Query{EventID: eventID})
	if err != nil {
		return history.Delivery{}, err
	}
	if len(ds) != 1 {
		return history.Delivery{}, history.ErrNotFound
	}
	return ds[0], nil
}
