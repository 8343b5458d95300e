package main

import (
	"encoding/json"
	"runtime/debug"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/jetstream"
)

// eventID returns the id in a delivered event's envelope.
func eventID(t *testing.T, r received) string {
	t.Helper()
	var env struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &env))
	require.NotEmpty(t, env.ID)
	return env.ID
}

func TestEventIDsWithoutMsgIDDifferBetweenInstalls(t *testing.T) {
	t.Parallel()
	ids := make([]string, 2)
	for i := range ids {
		d := start(t)
		rcv, got := receiver(t)
		require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, nil))
		require.NoError(t, publishAsRobot(t, d.nats, "task.completed", `{}`, ""))
		ids[i] = eventID(t, next(t, got))

		// The id the admin API answers for an event it publishes is the one
		// its delivery carries.
		var pub client.Published
		require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.completed","data":{}}`, &pub))
		require.EqualValues(t, 2, pub.Sequence)
		require.Equal(t, pub.ID, eventID(t, next(t, got)))
	}
	require.NotEqual(t, ids[0], ids[1], "two fresh installs give their first events different ids")
}

// eventsKept returns how many messages EVENTS holds.
func eventsKept(t *testing.T, d *daemon) uint64 {
	t.Helper()
	var st client.Status
	require.Equal(t, 200, d.call(t, "GET", "/v1/status", d.token, "", &st))
	for _, s := range st.Streams {
		if s.Name == jetstream.StreamEvents {
			return s.Messages
		}
	}
	t.Fatal("no EVENTS in the status")
	return 0
}

func TestRoutedEventsArePurgedAfterTheirRetention(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		retention string
		kept      uint64
	}{{"0s", 0}, {"1h", 3}} {
		d := start(t, "--event-retention", tc.retention)
		rcv, got := receiver(t)
		require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, nil))
		for range 3 {
			require.NoError(t, publishAsRobot(t, d.nats, "task.completed", `{}`, ""))
			next(t, got)
		}
		waitFor(t, func() bool { return eventsKept(t, d) == tc.kept })
	}
}

func TestMemoryLimitSetsTheSoftLimitUnlessGOMEMLIMIT(t *testing.T) {
	// Not parallel: the limit is the whole process's.
	prev := debug.SetMemoryLimit(-1)
	restore := setMemoryLimit(300<<20, zerolog.Nop())
	require.EqualValues(t, 300<<20, debug.SetMemoryLimit(-1))
	restore()
	require.Equal(t, prev, debug.SetMemoryLimit(-1), "put back when webhookd stops")

	t.Setenv("GOMEMLIMIT", "1GiB")
	restore = setMemoryLimit(300<<20, zerolog.Nop())
	defer restore()
	require.Equal(t, prev, debug.SetMemoryLimit(-1), "GOMEMLIMIT wins")
}
