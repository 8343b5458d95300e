package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// What a delivery went through, as an operator reads it: the payload, each
// attempt's URL, request headers (signatures redacted), status and response;
// the event-type filter; a refused cursor; and the health columns of the
// subscription list, from the attempts.
func TestCLIDeliveryDetailAndHealth(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--retry-backoff", "100ms")
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"upstream down, ` + strings.Repeat("x", 100) + `"}`))
	}))
	t.Cleanup(down.Close)
	up := newSwitchable(t, http.StatusOK)

	var sub, other client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", down.URL, "--events", "task.completed")
	d.ctlJSON(t, &other, "subscriptions", "create", "--url", up.URL, "--events", "robot.connected")
	for _, ev := range [][]string{{"task.completed", `{"task_id":"T9","robot_id":"R2"}`, "evt-detail"}, {"robot.connected", `{}`, "evt-robot"}} {
		_, errOut, code := d.ctl("events", "publish", ev[0], "--data", ev[1], "--id", ev[2])
		require.Equal(t, 0, code, errOut)
	}
	var page client.List[client.Delivery]
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &page, "deliveries", "list", "--status", "failed")
		return len(page.Items) == 1
	}, "the delivery to the failing receiver failed")
	failed := page.Items[0]

	// Filter by event type.
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &page, "deliveries", "list", "--type", "robot.connected")
		return len(page.Items) == 1 && page.Items[0].Status == "succeeded"
	}, "the robot.connected delivery")
	require.Equal(t, "evt-robot", page.Items[0].EventID)
	succeeded := page.Items[0].ID
	d.ctlJSON(t, &page, "deliveries", "list", "--type", "task.completed")
	require.Len(t, page.Items, 1)
	require.Equal(t, failed.ID, page.Items[0].ID)

	// A cursor the server did not issue: exit 1 and a one-line reason.
	for _, args := range [][]string{
		{"deliveries", "list", "--cursor", "garbage!"},
		{"deliveries", "list", "--subscription", sub.ID, "--cursor", "AQIAAAA"},
	} {
		out, errOut, code := d.ctl(args...)
		require.Equal(t, 1, code, "%v", args)
		require.Empty(t, out)
		require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
		require.Contains(t, errOut, "cursor", errOut)
	}

	out, errOut, code := d.ctl("deliveries", "list", "--type", strings.Repeat("x", 2000))
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "type: at most 1024 bytes")

	// The receiver moves; the redelivery goes to the new URL, and the
	// trail keeps where each attempt went.
	_, errOut, code = d.ctl("subscriptions", "update", sub.ID, "--url", up.URL)
	require.Equal(t, 0, code, errOut)
	_, errOut, code = d.ctl("deliveries", "redeliver", failed.ID)
	require.Equal(t, 0, code, errOut)
	var one client.Delivery
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &one, "deliveries", "get", failed.ID)
		return one.Status == "succeeded"
	}, "the redelivery succeeded")
	require.Len(t, one.Attempts, 3)
	for i, want := range []string{down.URL, down.URL, up.URL} {
		a := one.Attempts[i]
		require.Equal(t, want, a.URL, "attempt %d", a.Attempt)
		require.Equal(t, "[redacted]", a.RequestHeaders["X-Webhook-Signature"])
		require.Equal(t, "[redacted]", a.RequestHeaders["webhook-signature"])
		require.Equal(t, failed.ID, a.RequestHeaders["X-Webhook-Delivery"])
		require.Equal(t, []string{"1", "2", "3"}[i], a.RequestHeaders["X-Webhook-Attempt"])
	}
	require.Contains(t, one.Attempts[0].Response, "upstream down")
	var payload struct {
		ID, Event string
		Data      map[string]string
	}
	require.NoError(t, json.Unmarshal(one.Payload, &payload), string(one.Payload))
	require.Equal(t, "evt-detail", payload.ID)
	require.Equal(t, "task.completed", payload.Event)
	require.Equal(t, map[string]string{"task_id": "T9", "robot_id": "R2"}, payload.Data)

	table, errOut, code := d.ctl("deliveries", "get", failed.ID)
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{"PAYLOAD", `"task_id": "T9"`, "ATTEMPT 1: POST " + down.URL + " -> 503",
		"ATTEMPT 3: POST " + up.URL + " -> 200", "X-Webhook-Signature: [redacted]", "webhook-timestamp: ", "upstream down"} {
		require.Contains(t, table, want)
	}
	require.NotContains(t, table, sub.Secret)
	short, _, code := d.ctl("deliveries", "get", failed.ID, "--show-body", "20")
	require.Equal(t, 0, code)
	require.Contains(t, short, "more bytes; --show-body -1 shows all")
	require.NotContains(t, short, "upstream down, xxx")
	hidden, _, code := d.ctl("deliveries", "get", failed.ID, "--show-body", "0")
	require.Equal(t, 0, code)
	require.NotContains(t, hidden, "PAYLOAD")
	require.NotContains(t, hidden, "upstream down")
	// A delivery that succeeded at once shows its payload too, read from
	// the event EVENTS keeps (the message log).
	var plain client.Delivery
	d.ctlJSON(t, &plain, "deliveries", "get", succeeded)
	require.Empty(t, plain.PayloadNote)
	require.NoError(t, json.Unmarshal(plain.Payload, &payload), string(plain.Payload))
	require.Equal(t, "evt-robot", payload.ID)
	require.Equal(t, "robot.connected", payload.Event)

	// Health: 3 attempts in the last hour, 1 succeeded, the run of
	// failures ended by the success.
	var subs client.List[client.Subscription]
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &subs, "subscriptions", "list")
		for _, s := range subs.Items {
			if s.ID == sub.ID {
				return s.Stats != nil && s.Stats.Attempts1h == 3 && s.Stats.LastStatusCode == 200
			}
		}
		return false
	}, "health from the attempts")
	for _, s := range subs.Items {
		if s.ID == sub.ID {
			require.InDelta(t, 1.0/3, *s.Stats.SuccessRate1h, 1e-9)
			require.Equal(t, 3, s.Stats.Attempts24h)
			require.Zero(t, s.Stats.ConsecutiveFailures)
			require.Equal(t, "closed", s.Health.Breaker)
		}
	}
	list, _, code := d.ctl("subscriptions", "list")
	require.Equal(t, 0, code)
	require.Regexp(t, `OK 1H\s+OK 24H\s+FAILS\s+LAST\s+BREAKER`, list)
	require.Regexp(t, sub.ID+`.*\s33.33% of 3\s+33.33% of 3\s+0\s+200\s+closed\s`, list)
}
