package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// publishAsRobot connects to webhookd's embedded NATS as a robot would and
// publishes one event, waiting for the stream's ack.
func publishAsRobot(t *testing.T, url, eventType, body, id string, opts ...nats.Option) error {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.Publish(ctx, "events."+eventType, []byte(body), natsjs.WithMsgID(id))
	return err
}

func TestRunDeliversAnAnonymousRobotsEvent(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, got := receiver(t)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, &sub))

	// Exactly as the README shows: no credentials on the loopback listener.
	require.NoError(t, publishAsRobot(t, d.nats, "task.completed", `{"task_id":"T123","robot_id":"R001"}`, "evt-robot-1"))
	r := next(t, got)
	require.Equal(t, "task.completed", r.Header.Get("X-Webhook-Event"))
	require.Equal(t, sub.ID, r.Header.Get("X-Webhook-ID"))
	var payload struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &payload))
	require.Equal(t, "evt-robot-1", payload.ID)
	require.JSONEq(t, `{"task_id":"T123","robot_id":"R001"}`, string(payload.Data))

	// The same robot cannot read the subscriptions (and their secrets).
	nc, err := nats.Connect(d.nats)
	require.NoError(t, err)
	defer nc.Close()
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = js.KeyValue(ctx, "subscriptions")
	require.Error(t, err)
}

// anyInterface returns a free port bound on every interface.
func anyInterface(t *testing.T) (listen, url string) {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	require.NoError(t, err)
	return net.JoinHostPort("0.0.0.0", port), "nats://" + net.JoinHostPort("127.0.0.1", port)
}

// runRefused runs webhookd expecting it to refuse its configuration; the
// deadline turns a regression that starts it into a failure, not a hang.
func runRefused(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, append([]string{"--data-dir", t.TempDir(), "--http-addr", freeAddr(t)}, args...), noEnv, io.Discard)
	require.NoError(t, ctx.Err(), "webhookd started instead of refusing")
	require.Error(t, err)
	return err
}

func TestRunRefusesAnOpenNonLoopbackNATS(t *testing.T) {
	t.Parallel()
	listen, _ := anyInterface(t)
	err := runRefused(t, "--nats-listen", listen)
	require.ErrorContains(t, err, "non-loopback "+listen)
	require.ErrorContains(t, err, "--nats-users-file")
	require.ErrorContains(t, err, "--nats-allow-anonymous")

	t.Run("allow anonymous", func(t *testing.T) {
		t.Parallel()
		listen, url := anyInterface(t)
		start(t, "--nats-listen", listen, "--nats-allow-anonymous")
		require.NoError(t, publishAsRobot(t, url, "task.created", `{}`, "anon-1"))
	})
	t.Run("users file", func(t *testing.T) {
		t.Parallel()
		users := filepath.Join(t.TempDir(), "robots.yaml")
		require.NoError(t, os.WriteFile(users, []byte("users:\n  - user: robot-7\n    password: robot-7-secret\n"), 0o600))
		listen, url := anyInterface(t)
		d := start(t, "--nats-listen", listen, "--nats-users-file", users)
		require.ErrorIs(t, publishAsRobot(t, url, "task.created", `{}`, "anon-2"), nats.ErrAuthorization, "anonymous robots are off")
		require.NoError(t, publishAsRobot(t, url, "task.created", `{}`, "named-1", nats.UserInfo("robot-7", "robot-7-secret")))
		require.NotContains(t, d.logs.String(), "robot-7-secret", "passwords are never logged")
	})
	t.Run("bad users file", func(t *testing.T) {
		t.Parallel()
		users := filepath.Join(t.TempDir(), "robots.yaml")
		require.NoError(t, os.WriteFile(users, []byte("users:\n  - user: robot-7\n"), 0o600))
		err := runRefused(t, "--nats-listen", freeAddr(t), "--nats-users-file", users)
		require.ErrorContains(t, err, users+`: users[0]: user "robot-7" has no password`)
	})
}
