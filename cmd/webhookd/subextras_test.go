package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin"
	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/daemontest"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

func TestPingSendsOneSignedTestEvent(t *testing.T) {
	t.Parallel()
	d := start(t)
	ok, okGot, okCount := daemontest.Receiver(t, http.StatusOK, "pong")
	other, _, otherCount := daemontest.Receiver(t, http.StatusOK, "")
	var sub, bystander client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token,
		`{"url":"`+ok.URL+`","events":["task.completed"],"timeout":"3s","headers":{"X-Api-Key":"k3y-value"}}`, &sub))
	// Another subscription to every event: a ping is for one endpoint only.
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+other.URL+`","events":[">"]}`, &bystander))

	var res client.PingResult
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/ping", d.token, "", &res))
	require.Equal(t, "succeeded", res.Outcome)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "pong", res.Response)
	require.GreaterOrEqual(t, res.DurationMS, int64(0))
	require.Equal(t, sub.ID, res.SubscriptionID)

	r := next(t, okGot)
	require.Equal(t, int64(1), okCount.Load(), "exactly one request")
	require.Equal(t, admin.EventPing, r.Header.Get("X-Webhook-Event"))
	require.Equal(t, res.DeliveryID, r.Header.Get("X-Webhook-Delivery"))
	require.Equal(t, "1", r.Header.Get("X-Webhook-Attempt"))
	require.Equal(t, "k3y-value", r.Header.Get("X-Api-Key"), "signed like any delivery, custom headers included")
	s, std := holder{sub.Secret}.verifies(t, r)
	require.True(t, s && std, "both signatures verify")
	var env struct {
		ID, Event string
		Data      map[string]string
	}
	require.NoError(t, json.Unmarshal(r.Body, &env))
	require.Equal(t, res.EventID, env.ID)
	require.Equal(t, "webhook.ping", env.Event)
	require.Equal(t, sub.ID, env.Data["subscription_id"])

	// The audit trail has it as a test, succeeded in one attempt.
	var dl client.Delivery
	require.Equal(t, 200, d.call(t, "GET", "/v1/deliveries/"+res.DeliveryID, d.token, "", &dl))
	require.Equal(t, "succeeded", dl.Status)
	require.Equal(t, admin.PingReason, dl.Reason)
	require.Equal(t, "webhook.ping", dl.Event)
	require.Len(t, dl.Attempts, 1)

	// A failing endpoint: the outcome says so, nothing is retried, and the
	// ping never went through the queue.
	bad, _, badCount := daemontest.Receiver(t, http.StatusServiceUnavailable, "down for maintenance")
	var failing client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+bad.URL+`","events":["task.completed"]}`, &failing))
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+failing.ID+"/pause", d.token, "", nil))
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+failing.ID+"/ping", d.token, "", &res), "a paused endpoint can be pinged")
	require.Equal(t, "failed", res.Outcome)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.Equal(t, "down for maintenance", res.Response)
	require.Equal(t, 200, d.call(t, "GET", "/v1/deliveries/"+res.DeliveryID, d.token, "", &dl))
	require.Equal(t, "failed", dl.Status)
	require.Len(t, dl.Attempts, 1)
	var st client.Status
	require.Equal(t, 200, d.call(t, "GET", "/v1/status", d.token, "", &st))
	require.Zero(t, st.Counters["jobs"], "no delivery job was queued")
	require.Zero(t, st.Counters["attempts"], "no attempt of the pipeline")
	var e apiErr
	require.Equal(t, http.StatusConflict, d.call(t, "POST", "/v1/deliveries/"+res.DeliveryID+"/redeliver", d.token, "", &e), "a ping is not sent again")
	require.Equal(t, int64(1), badCount.Load())
	require.Zero(t, otherCount.Load(), "the other subscription got nothing")

	// Nobody publishes webhook.ping: not over the API, not as a robot.
	require.Equal(t, http.StatusBadRequest, d.call(t, "POST", "/v1/events", d.token, `{"event":"webhook.ping","data":{}}`, &e))
	require.Contains(t, e.Error.Message, "ping")
	require.Equal(t, http.StatusBadRequest, d.call(t, "POST", "/v1/events", d.token, `{"event":"webhook.subscription_disabled","data":{}}`, &e),
		"nor webhookd's other operational events")
	require.Error(t, publishAsRobot(t, d.nats, "webhook.ping", `{}`, "forged-ping"))
	require.Equal(t, http.StatusNotFound, d.call(t, "POST", "/v1/subscriptions/6f1c0000-0000-4000-8000-000000000001/ping", d.token, "", &e))
	require.Zero(t, otherCount.Load())
	require.NotContains(t, d.logs.String(), "k3y-value")
}

func TestCustomHeadersAndRetryPolicyThroughTheAPI(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, got := receiver(t)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"],
		"headers":{"x-api-key":"abc-123","Authorization":"Bearer zzz-999"},"retry_policy":"exp:100ms:1s:2"}`, &sub))
	require.Equal(t, map[string]string{"X-Api-Key": client.RedactedValue, "Authorization": client.RedactedValue}, sub.Headers)
	require.Equal(t, "exp:100ms:1s:2", sub.RetryPolicy)

	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.completed","data":{}}`, nil))
	r := next(t, got)
	require.Equal(t, "abc-123", r.Header.Get("X-Api-Key"))
	require.Equal(t, "Bearer zzz-999", r.Header.Get("Authorization"))

	// PATCH sets, replaces and (null) removes headers; "" clears the policy.
	id := sub.ID
	sub = client.Subscription{} // decoding merges into a map: start afresh
	require.Equal(t, 200, d.call(t, "PATCH", "/v1/subscriptions/"+id, d.token,
		`{"headers":{"Authorization":null,"X-Tenant":"t1","X-Api-Key":"def-456"},"retry_policy":""}`, &sub))
	require.Equal(t, map[string]string{"X-Api-Key": client.RedactedValue, "X-Tenant": client.RedactedValue}, sub.Headers)
	require.Empty(t, sub.RetryPolicy)
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.completed","data":{}}`, nil))
	r = next(t, got)
	require.Equal(t, "def-456", r.Header.Get("X-Api-Key"))
	require.Equal(t, "t1", r.Header.Get("X-Tenant"))
	require.Empty(t, r.Header.Get("Authorization"))

	// Refused with a one-line reason, and nothing changed.
	for body, mentions := range map[string]string{
		`{"headers":{"Connection":"close"}}`:                         "hop-by-hop",
		`{"headers":{"X-Webhook-Signature":"00"}}`:                   "signature",
		`{"headers":{"webhook-id":"x"}}`:                             "signature",
		`{"headers":{"Host":"evil.example"}}`:                        "Host",
		`{"headers":{"Content-Type":"text/plain"}}`:                  "Content-Type",
		`{"headers":{"Content-Length":"1"}}`:                         "Content-Length",
		`{"headers":{"Bad Name":"x"}}`:                               "header field name",
		`{"headers":{"X-Evil":"a\r\nX-Injected: 1"}}`:                "control",
		`{"headers":{"X-Long":"` + strings.Repeat("v", 1025) + `"}}`: "at most 1024",
		`{"retry_policy":"exp:5s"}`:                                  "exp:INITIAL:MAX:RETRIES",
		`{"retry_policy":"5s,soon"}`:                                 "soon",
		`{"retry_policy":"48h"}`:                                     "at most 24h",
		`{"retry_policy":"exp:1h:24h:40"}`:                           "--retention", // about 33 days of retries, beyond the default 30
	} {
		var e apiErr
		require.Equal(t, http.StatusBadRequest, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, body, &e), body)
		require.Contains(t, e.Error.Message, mentions, body)
		require.NotContains(t, e.Error.Message, "\n")
		require.Equal(t, http.StatusBadRequest, d.call(t, "POST", "/v1/subscriptions", d.token,
			`{"url":"https://h.example/x","events":["task.completed"],`+strings.TrimPrefix(body, "{"), &e), body)
	}
	many := `{"headers":{`
	for i := range 21 {
		if i > 0 {
			many += ","
		}
		many += `"X-H` + strings.Repeat("i", i) + `":"v"`
	}
	var e apiErr
	require.Equal(t, http.StatusBadRequest, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, many+"}}", &e))
	require.Contains(t, e.Error.Message, "at most 20")
	var view client.Subscription
	require.Equal(t, 200, d.call(t, "GET", "/v1/subscriptions/"+sub.ID, d.token, "", &view))
	require.Equal(t, sub.Headers, view.Headers)

	var list client.List[client.Subscription]
	require.Equal(t, 200, d.call(t, "GET", "/v1/subscriptions", d.token, "", &list))
	for _, s := range []string{"def-456", "abc-123", "zzz-999", "t1\""} {
		raw, _ := json.Marshal(list)
		require.NotContains(t, string(raw), s, "values never shown")
		require.NotContains(t, d.logs.String(), s, "values never logged")
	}
}

// On an external NATS without credentials anyone may publish to
// events.webhook.ping: the router rejects it instead of routing it.
func TestForgedPingOnExternalNATSIsRejected(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	d := start(t, "--nats-url", ns.ClientURL())
	rcv, got := receiver(t)
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":[">"]}`, nil))
	require.NoError(t, publishAsRobot(t, ns.ClientURL(), "webhook.ping", `{}`, "forged-ping"))
	require.NoError(t, publishAsRobot(t, ns.ClientURL(), "task.completed", `{}`, "real-event"))
	require.Equal(t, "task.completed", next(t, got).Header.Get("X-Webhook-Event"))
	var page client.List[client.Delivery]
	waitFor(t, func() bool {
		require.Equal(t, 200, d.call(t, "GET", "/v1/deliveries?status=rejected", d.token, "", &page))
		return len(page.Items) == 1
	})
	require.Equal(t, "webhook.ping", page.Items[0].Event)
	require.Equal(t, "forged-ping", page.Items[0].EventID)
	require.Empty(t, got, "the rejected ping reached no receiver")
}

// A ping goes through the outbound guard and keeps to the subscription's
// timeout, like any delivery.
func TestPingKeepsToTheGuardAndTheTimeout(t *testing.T) {
	t.Parallel()
	// The API refuses a loopback URL unless allowed, so the subscription is
	// made while loopback is allowed, then webhookd restarts on the same
	// data dir with loopback guarded: the guard at connection refuses it.
	dir := t.TempDir()
	first := start(t, "--data-dir", dir)
	rcv, got, _ := daemontest.Receiver(t, http.StatusOK, "")
	var sub client.Subscription
	token, err := os.ReadFile(filepath.Join(dir, tokenFile))
	require.NoError(t, err)
	first.token = strings.TrimSpace(string(token))
	require.Equal(t, 201, first.call(t, "POST", "/v1/subscriptions", first.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, &sub))
	require.NoError(t, first.stop())
	d := start(t, "--data-dir", dir, "--allow-targets", "192.0.2.0/24") // the last flag wins: loopback is guarded
	var res client.PingResult
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/ping", first.token, "", &res))
	require.Equal(t, "failed", res.Outcome)
	require.Equal(t, "blocked_target", res.Reason)
	require.Empty(t, got, "the guard refused the connection")

	slow := start(t)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs first: Close waits for the handler
	require.Equal(t, 201, slow.call(t, "POST", "/v1/subscriptions", slow.token, `{"url":"`+hang.URL+`","events":["task.completed"],"timeout":"1s"}`, &sub))
	require.Equal(t, 200, slow.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/ping", slow.token, "", &res))
	require.Equal(t, "timeout", res.Reason)
	require.InDelta(t, 1000, res.DurationMS, 900, "the subscription's 1s timeout")
}

// Expressions are compiled before they are stored: one that does not
// compile, or gives the wrong type, is a 400 naming the field and the
// position; valid ones are stored, shown, changed and cleared.
func TestExpressionsThroughTheAPI(t *testing.T) {
	d := start(t)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"https://h.example/x","events":["alert.triggered"],
		"filter":"data.severity == \"critical\"","transform":"{\"text\": data.message}","ordering_key":"data.robot_id"}`, &sub))
	require.Equal(t, `data.severity == "critical"`, sub.Filter)
	require.Equal(t, `{"text": data.message}`, sub.Transform)
	require.Equal(t, `data.robot_id`, sub.OrderingKey)

	for body, mentions := range map[string]string{
		`{"filter":"data.severity =="}`:                           "filter: line 1, column 17: Syntax error",
		`{"filter":"true &&\n nope"}`:                             "filter: line 2, column 2: undeclared reference to 'nope'",
		`{"filter":"\"text\""}`:                                   "filter: must give a bool",
		`{"transform":"[1, 2]"}`:                                  "transform: must give an object",
		`{"ordering_key":"1 + 2"}`:                                "ordering_key: must give a string",
		`{"filter":"` + strings.Repeat("1 + ", 1100) + `1 == 2"}`: "over the limit of 4096",
	} {
		var e apiErr
		require.Equal(t, http.StatusBadRequest, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, body, &e), body)
		require.Contains(t, e.Error.Message, mentions, body)
		require.NotContains(t, e.Error.Message, "\n")
		require.Equal(t, http.StatusBadRequest, d.call(t, "POST", "/v1/subscriptions", d.token,
			`{"url":"https://h.example/x","events":["alert.triggered"],`+strings.TrimPrefix(body, "{"), &e), body)
	}

	var view client.Subscription
	require.Equal(t, 200, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, `{"filter":"","ordering_key":"data.fleet"}`, &view))
	require.Empty(t, view.Filter, `"" clears it`)
	require.Equal(t, `{"text": data.message}`, view.Transform, "not named: kept")
	require.Equal(t, "data.fleet", view.OrderingKey)
	view = client.Subscription{}
	require.Equal(t, 200, d.call(t, "GET", "/v1/subscriptions/"+sub.ID, d.token, "", &view))
	require.Empty(t, view.Filter)
	require.Equal(t, "data.fleet", view.OrderingKey)
}
