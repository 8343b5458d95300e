package jetstream_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// logged publishes events to EVENTS: each type, data and optional id.
func logged(t *testing.T, js natsjs.JetStream, events ...[3]string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, e := range events {
		m := nats.NewMsg(jetstream.EventSubject(e[0]))
		m.Data = []byte(e[1])
		var opts []natsjs.PublishOpt
		if e[2] != "" {
			opts = append(opts, natsjs.WithMsgID(e[2]))
		}
		ack, err := js.PublishMsg(context.Background(), m, opts...)
		require.NoError(t, err)
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

// eventsConsumers returns the names of EVENTS's consumers.
func eventsConsumers(t *testing.T, js natsjs.JetStream) []string {
	t.Helper()
	str, err := js.Stream(context.Background(), jetstream.StreamEvents)
	require.NoError(t, err)
	var names []string
	l := str.ConsumerNames(context.Background())
	for n := range l.Name() {
		names = append(names, n)
	}
	require.NoError(t, l.Err())
	slices.Sort(names)
	return names
}

func TestEventLogListsGetsAndFindsEvents(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	ctx := context.Background()
	const salt = "2026-12-08T01:00:00.123456789Z"
	derive := func(seq uint64) string { return delivery.EventIDFromSequence(salt, seq) }
	log := jetstream.NewEventLog(ns.JS, derive, 16)
	seqs := logged(t, ns.JS,
		[3]string{"task.completed", `{"n":1}`, "robot-1"},
		[3]string{"alert.triggered", `{"n":2}`, ""},
		[3]string{"task.completed", `{"n":33}`, ""},
		[3]string{"task.completed", `{"n":4}`, "an-id-longer-than-16-bytes"},
	)

	all, err := log.List(ctx, jetstream.ListQuery{})
	require.NoError(t, err)
	require.Len(t, all, 4)
	wantIDs := []string{"robot-1", derive(seqs[1]), derive(seqs[2]), derive(seqs[3])}
	for i, ev := range all {
		require.Equal(t, seqs[i], ev.Seq, "oldest first")
		require.Equal(t, wantIDs[i], ev.ID, "the id the router gives it")
		require.Nil(t, ev.Data, "a list reads headers only")
		require.WithinDuration(t, time.Now(), ev.Timestamp, time.Minute)
	}
	require.Equal(t, []int{7, 7, 8, 7}, []int{all[0].Size, all[1].Size, all[2].Size, all[3].Size})
	require.Equal(t, "alert.triggered", all[1].Type)

	tasks, err := log.List(ctx, jetstream.ListQuery{Type: "task.completed", After: seqs[0]})
	require.NoError(t, err)
	require.Equal(t, []uint64{seqs[2], seqs[3]}, []uint64{tasks[0].Seq, tasks[1].Seq})
	page, err := log.List(ctx, jetstream.ListQuery{Limit: 2})
	require.NoError(t, err)
	require.Len(t, page, 2)
	later, err := log.List(ctx, jetstream.ListQuery{Since: all[3].Stored})
	require.NoError(t, err)
	require.Len(t, later, 1)
	require.Equal(t, seqs[3], later[0].Seq)
	none, err := log.List(ctx, jetstream.ListQuery{Type: "robot.offline"})
	require.NoError(t, err)
	require.Empty(t, none)

	ev, err := log.Get(ctx, seqs[2])
	require.NoError(t, err)
	require.Equal(t, `{"n":33}`, string(ev.Data))
	_, err = log.Get(ctx, 99)
	require.ErrorIs(t, err, jetstream.ErrEventNotFound)

	// By id: near the time a delivery id carries, by deriving, by a scan.
	for i, id := range wantIDs {
		ev, err := log.Near(ctx, id, all[i].Type, all[i].Timestamp)
		require.NoError(t, err, id)
		require.Equal(t, seqs[i], ev.Seq, id)
		ev, _, err = log.Scan(ctx, id, time.Time{})
		require.NoError(t, err, id)
		require.Equal(t, seqs[i], ev.Seq, id)
	}
	_, err = log.Near(ctx, "robot-1", "task.completed", all[0].Timestamp.Add(time.Hour))
	require.ErrorIs(t, err, jetstream.ErrEventNotFound, "nothing stored an hour later")
	_, err = log.Near(ctx, derive(seqs[2]), "task.completed", all[2].Timestamp.Add(-time.Hour))
	require.ErrorIs(t, err, jetstream.ErrEventNotFound, "the walk stops past the millisecond given")
	ev, err = log.Derived(ctx, derive(seqs[2]))
	require.NoError(t, err)
	require.Equal(t, `{"n":33}`, string(ev.Data))
	_, err = log.Derived(ctx, derive(seqs[0]))
	require.ErrorIs(t, err, jetstream.ErrEventNotFound, "that sequence's event has an id of its own")
	_, read, err := log.Scan(ctx, "no-such-event", time.Time{})
	require.ErrorIs(t, err, jetstream.ErrEventNotFound)
	require.Equal(t, 4, read)

	// No read leaves a consumer behind.
	require.Eventually(t, func() bool {
		return slices.Equal([]string{jetstream.ConsumerRouter}, eventsConsumers(t, ns.JS))
	}, 10*time.Second, 20*time.Millisecond)
}
