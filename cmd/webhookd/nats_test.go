package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// readyz returns /readyz's status code and reason.
func (d *daemon) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(d.api + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct{ Status, Reason string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body.Reason
}

func TestReadyzFollowsTheNATSConnection(t *testing.T) {
	t.Parallel()
	ns := jstest.RunRestartable(t)
	d := start(t, "--nats-url", ns.URL)
	code, reason := d.readyz(t)
	require.Equal(t, http.StatusOK, code, reason)
	rcv, got := receiver(t)
	require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, nil))

	// The server sees the connection under the replica's name.
	replica := replicaOf(t, d.logs.String())
	connz, err := ns.Server().Connz(&server.ConnzOptions{})
	require.NoError(t, err)
	var names []string
	for _, c := range connz.Conns {
		names = append(names, c.Name)
	}
	require.Contains(t, names, "webhookd-"+replica)

	ns.Stop()
	require.Eventually(t, func() bool {
		code, reason = d.readyz(t)
		return code == http.StatusServiceUnavailable && reason == "nats reconnecting"
	}, 20*time.Second, 50*time.Millisecond, "not ready while NATS is away, and says why")
	code, _ = d.readyz(t)
	require.Equal(t, http.StatusOK, func() int { // liveness is not readiness
		resp, err := http.Get(d.api + "/healthz")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}(), "healthz stays 200 (readyz %d)", code)

	ns.Start() // the same port and store
	require.Eventually(t, func() bool {
		code, reason = d.readyz(t)
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "ready again after the reconnect")
	// And it works again: an event published now is delivered.
	require.NoError(t, publishAsRobot(t, ns.URL, "task.completed", `{"after":"restart"}`, "evt-after-restart"))
	require.Equal(t, "task.completed", next(t, got).Header.Get("X-Webhook-Event"))
	require.Equal(t, "warn", logLevelOf(t, d.logs.String(), "nats disconnected; reconnecting"))
	require.Equal(t, "info", logLevelOf(t, d.logs.String(), "nats reconnected"))
}

// logLevelOf returns the level of the first JSON log line with message msg.
func logLevelOf(t *testing.T, logs, msg string) string {
	t.Helper()
	return logLine(t, logs, msg)["level"].(string)
}

// logLine returns the fields of the first JSON log line with message msg.
func logLine(t *testing.T, logs, msg string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["message"] == msg {
			return l
		}
	}
	t.Fatalf("no log line %q", msg)
	return nil
}

func TestRestartedReplicaResumesTheMirrorFromItsRevision(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	a := start(t, "--nats-url", ns.ClientURL())
	b := start(t, "--nats-url", ns.ClientURL())
	rcv, _ := receiver(t)
	create := func(i int) client.Subscription {
		var sub client.Subscription
		require.Equal(t, http.StatusCreated, a.call(t, "POST", "/v1/subscriptions", a.token,
			fmt.Sprintf(`{"url":%q,"events":["task.completed"],"description":"s%d"}`, rcv.URL, i), &sub))
		return sub
	}
	var subs []client.Subscription
	for i := range 20 {
		subs = append(subs, create(i))
	}
	kv := bucketOf(t, ns)
	status, err := kv.Status(context.Background())
	require.NoError(t, err)
	before := status.(*natsjs.KeyValueBucketStatus).StreamInfo().State.LastSeq
	waitFor(t, func() bool {
		return b.call(t, "GET", "/v1/subscriptions/"+subs[19].ID, b.token, "", nil) == http.StatusOK
	})
	require.NoError(t, b.stop())

	// While B is down: 3 creates, 1 update, 1 delete.
	for i := 20; i < 23; i++ {
		subs = append(subs, create(i))
	}
	require.Equal(t, http.StatusOK, a.call(t, "PATCH", "/v1/subscriptions/"+subs[0].ID, a.token, `{"description":"changed"}`, nil))
	require.Equal(t, http.StatusNoContent, a.call(t, "DELETE", "/v1/subscriptions/"+subs[1].ID, a.token, "", nil))

	again := start(t, "--nats-url", ns.ClientURL(), "--data-dir", b.dataDir)
	again.token = b.token
	starting := logLine(t, again.logs.String(), "subscription mirror starting")
	require.Equal(t, false, starting["rebuild"], "the mirror is resumed, not rebuilt")
	require.EqualValues(t, before, starting["from_revision"], "from the revision B had applied")
	caught := logLine(t, again.logs.String(), "subscription mirror caught up")
	require.EqualValues(t, 5, caught["entries_applied"], "only the 5 changes made while B was down are read, not all %d records", len(subs)-1)

	var got client.Subscription
	require.Equal(t, http.StatusOK, again.call(t, "GET", "/v1/subscriptions/"+subs[0].ID, again.token, "", &got))
	require.Equal(t, "changed", got.Description)
	require.Equal(t, http.StatusNotFound, again.call(t, "GET", "/v1/subscriptions/"+subs[1].ID, again.token, "", nil))
	require.Equal(t, http.StatusOK, again.call(t, "GET", "/v1/subscriptions/"+subs[22].ID, again.token, "", nil))
	var list struct{ Items []client.Subscription }
	require.Equal(t, http.StatusOK, again.call(t, "GET", "/v1/subscriptions", again.token, "", &list))
	require.Len(t, list.Items, 22)
}
