package main

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// The connection limit flags reach the embedded server: anonymous robots
// share one account, so two connections are all of theirs.
func TestRunLimitsRobotConnections(t *testing.T) {
	t.Parallel()
	d := start(t, "--nats-max-robot-connections", "2")
	var open []*nats.Conn
	for range 2 {
		nc, err := nats.Connect(d.nats, nats.NoReconnect())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		open = append(open, nc)
	}
	_, err := nats.Connect(d.nats, nats.NoReconnect())
	require.ErrorIs(t, err, nats.ErrMaxAccountConnectionsExceeded)

	open[0].Close()
	require.Eventually(t, func() bool {
		return publishAsRobot(t, d.nats, "task.created", `{}`, "after-close") == nil
	}, 5*time.Second, 50*time.Millisecond, "a closed connection frees its place")
}
