package client_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// streamServer answers every listen request with the event stream body.
func streamServer(t *testing.T, contentType, body string) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/v1/listeners/0b9a3e1c-5b7e-4f7e-9a57-3f0a3c2d1e00/events", r.URL.Path)
		require.Equal(t, "Bearer tok", r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", contentType)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, "tok")
	require.NoError(t, err)
	return c
}

const listenID = "0b9a3e1c-5b7e-4f7e-9a57-3f0a3c2d1e00"

func TestListenReadsTheEventStream(t *testing.T) {
	t.Parallel()
	body := base64.StdEncoding.EncodeToString([]byte(`{"id":"e1"}`))
	stream := ": keep-alive\n\n" +
		"event: ready\ndata: {\"subscription_id\":\"" + listenID + "\",\"expires_at\":\"2026-12-08T01:00:00Z\"}\n\n" +
		"event: delivery\r\ndata: {\"delivery_id\":\"d1\",\"event_id\":\"e1\",\"event\":\"task.completed\",\"headers\":{\"X-Webhook-Attempt\":[\"1\"]},\"body\":\"" + body + "\"}\r\n\r\n" +
		"event: newer-kind\ndata: {}\n\n" +
		"event: dropped\ndata: {\"dropped\":7}\n\n" +
		"event: delivery\nid: 2\nretry: 10\ndata: {\"delivery_id\":\"d2\",\"event_id\":\"e2\",\"event\":\"task.completed\",\"body\":\"\"}\n\n"
	c := streamServer(t, "text/event-stream; charset=utf-8", stream)
	var ready client.ListenReady
	var events []client.ListenEvent
	var dropped int64
	err := c.Listen(context.Background(), listenID, client.ListenHandler{
		Ready:   func(r client.ListenReady) { ready = r },
		Event:   func(ev client.ListenEvent) error { events = append(events, ev); return nil },
		Dropped: func(n int64) { dropped += n },
	})
	require.ErrorIs(t, err, client.ErrStreamEnded, "the server ended it")
	require.Equal(t, listenID, ready.SubscriptionID)
	require.Len(t, events, 2)
	require.Equal(t, "e1", events[0].EventID)
	require.Equal(t, `{"id":"e1"}`, string(events[0].Body), "the exact body")
	require.Equal(t, "1", events[0].Headers.Get("X-Webhook-Attempt"))
	require.Equal(t, "d2", events[1].DeliveryID)
	require.Equal(t, int64(7), dropped)
}

func TestListenEndsWhenTheSubscriptionIsGone(t *testing.T) {
	t.Parallel()
	c := streamServer(t, "text/event-stream", "event: gone\ndata: {\"reason\":\"deleted\"}\n\nevent: dropped\ndata: {\"dropped\":1}\n\n")
	called := false
	err := c.Listen(context.Background(), listenID, client.ListenHandler{Dropped: func(int64) { called = true }})
	require.ErrorIs(t, err, client.ErrListenerGone)
	require.False(t, called, "nothing after gone")
}

func TestListenRefusesWhatIsNotAStream(t *testing.T) {
	t.Parallel()
	c := streamServer(t, "application/json", `{"items":[]}`)
	err := c.Listen(context.Background(), listenID, client.ListenHandler{})
	require.ErrorContains(t, err, "want text/event-stream")

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"listen subscription not found"}}`)
	}))
	t.Cleanup(srv.Close)
	c, err = client.New(srv.URL, "tok")
	require.NoError(t, err)
	err = c.Listen(context.Background(), listenID, client.ListenHandler{})
	require.ErrorIs(t, err, client.ErrNotFound)
}
