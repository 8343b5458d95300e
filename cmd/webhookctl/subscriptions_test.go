package main

import (
	"context"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions/substest"
)

func TestStatusColumn(t *testing.T) {
	t.Parallel()
	for want, s := range map[string]client.Subscription{
		"active":                   {Active: true},
		"paused":                   {Active: false},
		"disabled (endpoint_gone)": {DisabledReason: "endpoint_gone"},
		"disabled (failing)":       {DisabledReason: "failing", FailingSince: time.Now()},
	} {
		require.Equal(t, want, status(s))
	}
	require.Equal(t, "default", maxInFlight(client.Subscription{}))
	require.Equal(t, "12", maxInFlight(client.Subscription{MaxInFlight: 12}))
}

func TestCLIMaxInFlightAndStatus(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	d := newDaemon(t, "--nats-url", ns.ClientURL())
	ctl := func(args ...string) string {
		t.Helper()
		out, errOut, code := d.ctl(args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		return out
	}
	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", "https://h.example/x", "--events", "task.*", "--max-in-flight", "5")
	require.Equal(t, 5, sub.MaxInFlight)
	out := ctl("subscriptions", "get", sub.ID)
	require.Regexp(t, `(?m)^MAX IN FLIGHT\s+5$`, out)
	require.Regexp(t, `(?m)^STATUS\s+active$`, out)
	require.NotContains(t, out, "DISABLED AT")

	// update changes it only when the flag is given; 0 is the default.
	d.ctlJSON(t, &sub, "subscriptions", "update", sub.ID, "--description", "d")
	require.Equal(t, 5, sub.MaxInFlight)
	d.ctlJSON(t, &sub, "subscriptions", "update", sub.ID, "--max-in-flight", "0")
	require.Equal(t, 0, sub.MaxInFlight)
	require.Regexp(t, `(?m)^MAX IN FLIGHT\s+default$`, ctl("subscriptions", "get", sub.ID))
	out, errOut, code := d.ctl("subscriptions", "update", sub.ID, "--max-in-flight", "2000")
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	require.Contains(t, errOut, "max_in_flight 2000")

	ctl("subscriptions", "pause", sub.ID)
	require.Regexp(t, `\s+paused\s+`, ctl("subscriptions", "list"))

	// The dispatcher (of another replica) disables it.
	ctl("subscriptions", "resume", sub.ID)
	_, changed, err := substest.Replica(t, kvOf(t, ns)).Disable(context.Background(), sub.ID, "endpoint_gone", time.Time{})
	require.NoError(t, err)
	require.True(t, changed)
	waitFor(t, 10*time.Second, func() bool {
		return strings.Contains(ctl("subscriptions", "get", sub.ID), "disabled (endpoint_gone)")
	}, "the disabled status")
	out = ctl("subscriptions", "get", sub.ID)
	require.Regexp(t, `(?m)^STATUS\s+disabled \(endpoint_gone\)$`, out)
	require.Regexp(t, `(?m)^DISABLED AT\s+\d{4}-`, out)
	require.Regexp(t, `\s+disabled \(endpoint_gone\)\s+`, ctl("subscriptions", "list"))
	var view client.Subscription
	d.ctlJSON(t, &view, "subscriptions", "get", sub.ID)
	require.Equal(t, "endpoint_gone", view.DisabledReason)

	// resume re-enables it.
	out = ctl("subscriptions", "resume", sub.ID)
	require.Regexp(t, `(?m)^STATUS\s+active$`, out)
	require.NotContains(t, out, "DISABLED AT")
}

func kvOf(t *testing.T, ns *jstest.Server) natsjs.KeyValue {
	t.Helper()
	kv, err := ns.JS.KeyValue(context.Background(), jetstream.BucketSubscriptions)
	require.NoError(t, err)
	return kv
}
