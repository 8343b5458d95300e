package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// Through the real binary: a filter that fails on an event is counted in
// webhookd_filter_errors_total for its subscription; a delivery of a
// transformed subscription shows the transformed body as its payload, and
// one whose transform failed shows why, with transform_error in the
// attempts metric.
func TestFilterErrorsAndTransformedPayloads(t *testing.T) {
	d := start(t, "--retry-backoff", "")
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(rcv.Close)
	var filtered, transformed client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["alert.triggered"],
		"filter":"data.level > 2"}`, &filtered))
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["alert.triggered"],
		"transform":"{\"text\": data.message}"}`, &transformed))

	var ok, broken client.Published
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"alert.triggered","data":{"message":"hot"}}`, &ok))
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"alert.triggered","data":{"level":3}}`, &broken))

	byEvent := map[string]client.Delivery{}
	require.Eventually(t, func() bool {
		var page client.List[client.Delivery]
		if d.call(t, "GET", "/v1/deliveries?subscription="+transformed.ID+"&status=failed", d.token, "", &page) != 200 {
			return false
		}
		for _, dl := range page.Items {
			byEvent[dl.EventID] = dl
		}
		return len(byEvent) == 2
	}, 20*time.Second, 20*time.Millisecond, "both deliveries of the transformed subscription failed")

	var dl client.Delivery
	require.Equal(t, 200, d.call(t, "GET", "/v1/deliveries/"+byEvent[ok.ID].ID, d.token, "", &dl))
	require.JSONEq(t, `{"text":"hot"}`, string(dl.Payload), "the body POSTed")
	require.Equal(t, "http_500", dl.Reason)
	dl = client.Delivery{}
	require.Equal(t, 200, d.call(t, "GET", "/v1/deliveries/"+byEvent[broken.ID].ID, d.token, "", &dl))
	require.Equal(t, "transform_error", dl.Reason)
	require.Len(t, dl.Attempts, 1)
	require.Contains(t, dl.Attempts[0].Error, "no such key: message")
	require.Empty(t, dl.Payload)
	require.True(t, strings.HasPrefix(dl.PayloadNote, "the subscription's transform fails on this event"), dl.PayloadNote)

	require.Eventually(t, func() bool {
		s := d.scrapeMetrics(t, "")
		return s.sum("webhookd_filter_errors_total", map[string]string{"subscription": filtered.ID}) == 1 &&
			s.sum("webhookd_attempts_total", map[string]string{"subscription": transformed.ID, "outcome": "transform_error"}) == 1
	}, 10*time.Second, 20*time.Millisecond, "the filter error (the event without level) and the transform error counted")
}
