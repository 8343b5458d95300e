package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

func TestEventIDsDifferAcrossInstallsAndSurviveARestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	salt := func(url string) string {
		js := connect(t, url)
		s, err := jetstream.EventSalt(ctx, js)
		require.NoError(t, err)
		return s
	}
	a, b := jstest.RunRestartable(t), jstest.RunRestartable(t)
	for _, s := range []*jstest.Restartable{a, b} {
		require.NoError(t, jetstream.Provision(ctx, connect(t, s.URL), jstest.Provisioning()))
	}
	saltA, saltB := salt(a.URL), salt(b.URL)
	require.NotEqual(t, delivery.EventIDFromSequence(saltA, 1), delivery.EventIDFromSequence(saltB, 1),
		"two fresh installs give their first events different ids")
	require.NotEqual(t, delivery.EventIDFromSequence(saltA, 1), delivery.EventIDFromSequence(saltA, 2))

	// The stored event keeps its id: the salt survives a restart of the
	// server (and a redelivery reads the same sequence).
	a.Stop()
	a.Start()
	require.Equal(t, saltA, salt(a.URL))
}

func TestEventIDHeaderPrefersTheMsgID(t *testing.T) {
	t.Parallel()
	h := nats.Header{}
	require.Empty(t, jetstream.EventIDHeader(h))
	h.Set(jetstream.HeaderEventID, "copied")
	require.Equal(t, "copied", jetstream.EventIDHeader(h))
	h.Set(natsjs.MsgIDHeader, "robot")
	require.Equal(t, "robot", jetstream.EventIDHeader(h))
}

func TestEventTimePrefersTheCopiedTime(t *testing.T) {
	t.Parallel()
	stored := time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)
	h := nats.Header{}
	require.Equal(t, stored, jetstream.EventTime(h, stored))
	h.Set(jetstream.HeaderEventTime, "not a time")
	require.Equal(t, stored, jetstream.EventTime(h, stored), "a bad header is ignored")
	first := stored.Add(-time.Hour + 123)
	h.Set(jetstream.HeaderEventTime, first.Format(time.RFC3339Nano))
	require.True(t, first.Equal(jetstream.EventTime(h, stored)))
}
