package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/internal/daemontest"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/publisher"
)

func TestCatalogIsWebhookdsRobotCatalog(t *testing.T) {
	t.Parallel()
	var want []publisher.EventType
	for _, typ := range config.Catalog() {
		if !strings.HasPrefix(typ, "webhook.") {
			want = append(want, publisher.EventType(typ))
		}
	}
	require.Equal(t, want, publisher.Catalog())
	require.Len(t, publisher.Catalog(), 7)
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func TestBadInputSendsNothing(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	nc := connect(t, ns.ClientURL())
	seen, err := nc.SubscribeSync("events.>")
	require.NoError(t, err)
	p, err := publisher.New(nc, publisher.WithEventTypes("lab.door-opened"))
	require.NoError(t, err)
	ctx := context.Background()
	for _, tc := range []struct {
		typ  publisher.EventType
		data any
		opts []publisher.PublishOption
		want error
	}{
		{"task.finished", `{}`, nil, publisher.ErrUnknownType},
		{"webhook.subscription_disabled", []byte(`{}`), nil, publisher.ErrUnknownType},
		{"", []byte(`{}`), nil, publisher.ErrUnknownType},
		{publisher.TaskCompleted, []byte(`[1,2]`), nil, publisher.ErrBadData},
		{publisher.TaskCompleted, []byte(`{"a":`), nil, publisher.ErrBadData},
		{publisher.TaskCompleted, 42, nil, publisher.ErrBadData},
		{publisher.TaskCompleted, nil, nil, publisher.ErrBadData},
		{publisher.TaskCompleted, func() {}, nil, publisher.ErrBadData},
		{publisher.TaskCompleted, []byte(`{}`), []publisher.PublishOption{publisher.WithID("")}, publisher.ErrBadID},
		{publisher.TaskCompleted, []byte(`{}`), []publisher.PublishOption{publisher.WithID(strings.Repeat("x", 257))}, publisher.ErrBadID},
	} {
		_, err := p.Publish(ctx, tc.typ, tc.data, tc.opts...)
		require.ErrorIs(t, err, tc.want, "%q %v", tc.typ, tc.data)
		require.False(t, publisher.Retryable(err))
		require.NotContains(t, err.Error(), "\n")
	}
	_, err = publisher.New(nc, publisher.WithEventTypes("bad type"))
	require.ErrorIs(t, err, publisher.ErrUnknownType)
	_, err = publisher.New(nc, publisher.WithEventTypes("webhook.delivery_exhausted"))
	require.ErrorIs(t, err, publisher.ErrUnknownType)

	// No stream here: the first message the subject sees is this one, and
	// it fails for want of a stream, as retryable.
	_, err = p.Publish(ctx, "lab.door-opened", map[string]string{"door": "D1"}, publisher.WithID("first"))
	var pe *publisher.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "first", pe.ID)
	require.True(t, publisher.Retryable(err), "%v", err)
	m, err := seen.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "events.lab.door-opened", m.Subject)
	require.Equal(t, "first", m.Header.Get("Nats-Msg-Id"))
	require.JSONEq(t, `{"door":"D1"}`, string(m.Data))
}

// received is a receiver that sends each delivered payload to a channel.
func received(t *testing.T) (*httptest.Server, chan map[string]json.RawMessage) {
	t.Helper()
	got := make(chan map[string]json.RawMessage, 256)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var env map[string]json.RawMessage
		if err == nil {
			err = json.Unmarshal(b, &env)
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got <- env
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func eventID(t *testing.T, env map[string]json.RawMessage) string {
	t.Helper()
	var id string
	require.NoError(t, json.Unmarshal(env["id"], &id))
	return id
}

func next(t *testing.T, got chan map[string]json.RawMessage) map[string]json.RawMessage {
	t.Helper()
	select {
	case env := <-got:
		return env
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30s")
		return nil
	}
}

// A robot publishes through webhookd's embedded NATS listener (anonymous, as
// robots on loopback are) and the real dispatcher delivers.
func TestSameIDPublishedTwiceIsDeliveredOnce(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, webhookdBin)
	rcv, got := received(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := d.Client(t)
	_, err := admin.CreateSubscription(ctx, client.SubscriptionInput{URL: rcv.URL, Events: []string{"task.*"}})
	require.NoError(t, err)

	p, err := publisher.New(connect(t, d.NATSURL()))
	require.NoError(t, err)
	data := map[string]string{"task_id": "T123", "robot_id": "R001"}
	first, err := p.Publish(ctx, publisher.TaskCompleted, data, publisher.WithID("evt-T123-done"))
	require.NoError(t, err)
	require.False(t, first.Duplicate)
	again, err := p.Publish(ctx, publisher.TaskCompleted, data, publisher.WithID("evt-T123-done"))
	require.NoError(t, err)
	require.True(t, again.Duplicate, "the retry is deduplicated by the stream")
	require.Equal(t, first.Sequence, again.Sequence)

	// Without an id, a new UUID; it is the payload's id.
	marker, err := p.Publish(ctx, publisher.TaskCreated, []byte(`{"task_id":"T124"}`))
	require.NoError(t, err)
	require.Len(t, marker.ID, 36)

	ids := []string{eventID(t, next(t, got)), eventID(t, next(t, got))}
	slices.Sort(ids)
	want := []string{"evt-T123-done", marker.ID}
	slices.Sort(want)
	require.Equal(t, want, ids)
	// The history has one delivery of the event, and the receiver no other.
	var page client.List[client.Delivery]
	require.Eventually(t, func() bool {
		page, err = admin.ListDeliveries(ctx, client.DeliveryQuery{Event: "evt-T123-done"})
		return err == nil && len(page.Items) > 0 && page.Items[0].Status == "succeeded"
	}, 30*time.Second, 20*time.Millisecond, "the delivery in the history")
	require.Len(t, page.Items, 1)
	require.Empty(t, got)
}

func TestAsyncDeliversEverything(t *testing.T) {
	t.Parallel()
	const n = 200
	d := daemontest.Start(t, webhookdBin)
	rcv, got := received(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := d.Client(t).CreateSubscription(ctx, client.SubscriptionInput{URL: rcv.URL, Events: []string{"robot.>"}})
	require.NoError(t, err)

	a, err := publisher.NewAsync(connect(t, d.NATSURL()), publisher.AsyncConfig{
		OnFailure:  func(f publisher.Failure) { t.Errorf("failure reported: %s: %v", f.ID, f.Err) },
		MaxPending: 16,
	})
	require.NoError(t, err)
	want := map[string]bool{}
	for i := range n {
		id, err := a.Publish(publisher.RobotConnected, map[string]int{"n": i})
		require.NoError(t, err)
		want[id] = true
	}
	require.NoError(t, a.Flush(ctx))
	acked, failed := a.Counts()
	require.Equal(t, int64(n), acked)
	require.Zero(t, failed)
	for range n {
		id := eventID(t, next(t, got))
		require.True(t, want[id], id)
		delete(want, id)
	}
	require.Empty(t, want)
}

func TestAsyncReportsEveryFailure(t *testing.T) {
	t.Parallel()

	type bundle struct {
		a        *publisher.Async
		mu       sync.Mutex
		failures map[string]error
	}
	setup := func(t *testing.T, url string) *bundle {
		b := &bundle{failures: map[string]error{}}
		var err error
		b.a, err = publisher.NewAsync(connect(t, url), publisher.AsyncConfig{
			AckTimeout: 20 * time.Second,
			OnFailure: func(f publisher.Failure) {
				b.mu.Lock()
				defer b.mu.Unlock()
				_, dup := b.failures[f.ID]
				require.False(t, dup, "reported twice: %s", f.ID)
				require.Equal(t, publisher.TaskFailed, f.Type)
				require.JSONEq(t, `{"ok":false}`, string(f.Data))
				b.failures[f.ID] = f.Err
			},
		})
		require.NoError(t, err)
		return b
	}

	t.Run("stream full", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ns := jstest.RunServer(t)
		_, err := ns.JS.CreateStream(ctx, natsjs.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"},
			MaxMsgs: 5, Discard: natsjs.DiscardNew})
		require.NoError(t, err)
		b := setup(t, ns.ClientURL())
		var ids []string
		for range 20 {
			id, err := b.a.Publish(publisher.TaskFailed, []byte(`{"ok":false}`))
			require.NoError(t, err)
			ids = append(ids, id)
		}
		require.NoError(t, b.a.Flush(ctx))
		acked, failed := b.a.Counts()
		require.Equal(t, int64(5), acked)
		require.Equal(t, int64(15), failed)
		b.mu.Lock()
		defer b.mu.Unlock()
		require.Len(t, b.failures, 15)
		for _, id := range ids[5:] {
			var apiErr *natsjs.APIError
			require.ErrorAs(t, b.failures[id], &apiErr, id)
			require.False(t, publisher.Retryable(b.failures[id]))
		}
	})

	t.Run("no stream", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ns := jstest.RunServer(t)
		b := setup(t, ns.ClientURL())
		for range 10 {
			_, err := b.a.Publish(publisher.TaskFailed, map[string]bool{"ok": false})
			require.NoError(t, err)
		}
		require.NoError(t, b.a.Flush(ctx))
		b.mu.Lock()
		defer b.mu.Unlock()
		require.Len(t, b.failures, 10)
		for id, err := range b.failures {
			require.True(t, publisher.Retryable(err), "%s: %v", id, err)
		}
	})
}

// Something answers nothing on the subject (no stream, but a subscriber, so
// no "no responders" either): every event times out and is reported.
func TestAsyncReportsAckTimeouts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := jstest.RunServer(t)
	sink, err := ns.NC.Subscribe("events.>", func(*nats.Msg) {})
	require.NoError(t, err)
	require.NoError(t, ns.NC.Flush())
	t.Cleanup(func() { _ = sink.Unsubscribe() })
	var mu sync.Mutex
	failed := map[string]error{}
	a, err := publisher.NewAsync(connect(t, ns.ClientURL()), publisher.AsyncConfig{
		AckTimeout: 200 * time.Millisecond,
		OnFailure: func(f publisher.Failure) {
			mu.Lock()
			defer mu.Unlock()
			failed[f.ID] = f.Err
		},
	})
	require.NoError(t, err)
	ids := map[string]bool{}
	for range 5 {
		id, err := a.Publish(publisher.MaintenanceDue, []byte(`{"robot_id":"R001"}`))
		require.NoError(t, err)
		ids[id] = true
	}
	require.NoError(t, a.Flush(ctx))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, failed, 5)
	for id, err := range failed {
		require.True(t, ids[id], id)
		require.ErrorIs(t, err, natsjs.ErrAsyncPublishTimeout)
		require.True(t, publisher.Retryable(err))
	}
}

func TestAsyncNeedsAFailureCallback(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	_, err := publisher.NewAsync(connect(t, ns.ClientURL()), publisher.AsyncConfig{})
	require.Error(t, err)
	require.False(t, errors.Is(err, publisher.ErrUnknownType))
}
