package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

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
	require.Equal(t, "warn", logLevelOf(t, d.logs.String(), "nats disconnected; reconnecting"))
	require.Equal(t, "info", logLevelOf(t, d.logs.String(), "nats reconnected"))
}

// logLevelOf returns the level of the first JSON log line with message msg.
func logLevelOf(t *testing.T, logs, msg string) string {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var l struct{ Level, Message string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == msg {
			return l.Level
		}
	}
	t.Fatalf("no log line %q", msg)
	return ""
}
