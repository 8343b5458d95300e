package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/jetstream"
)

// TestFloorRecordsAndIndexesEveryAttempt checks what the floor keeps of
// webhookd's guarantees: each event reaches the receiver with both
// signatures valid, and each attempt is recorded in AUDIT and indexed in
// the bbolt file, as succeeded, by the delivery id webhookd would give it.
func TestFloorRecordsAndIndexesEveryAttempt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	ns, err := startNATS(filepath.Join(dir, "nats"))
	require.NoError(t, err)
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	r, err := startReceiver()
	require.NoError(t, err)
	defer r.close()
	col := newCollector(time.Now())
	r.col.Store(col)
	subs, err := floorSubscriptions([]*receiver{r}, signature.NewSecret)
	require.NoError(t, err)
	f, err := startFloor(ctx, ns.ClientURL(), dir, subs, 4)
	require.NoError(t, err)
	stopped := false
	defer func() {
		if !stopped {
			_ = f.stop()
		}
	}()

	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	const n = 20
	var seqs []uint64
	for i := range n {
		ack, err := js.Publish(ctx, jetstream.EventSubject(eventType), eventData(uint64(i+1), time.Now(), 256))
		require.NoError(t, err)
		seqs = append(seqs, ack.Sequence)
	}
	require.Eventually(t, func() bool { return col.delivered.Load() == n }, 30*time.Second, 10*time.Millisecond)
	require.Zero(t, col.badSignatures.Load())
	for _, seq := range seqs {
		id := delivery.JobID(delivery.EventIDFromSequence(seq), subs[0].ID, seq)
		require.Eventually(t, func() bool {
			d, err := f.store.Get(id)
			return err == nil && d.Status == delivery.StatusSucceeded
		}, 30*time.Second, 10*time.Millisecond, "delivery %s indexed as succeeded", id)
	}
	stopped = true
	require.NoError(t, f.stop())
}
