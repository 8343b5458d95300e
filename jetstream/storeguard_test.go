package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// promptlyRefused publishes once and requires a refusal within a second:
// the account's storage limit, not a timeout.
func promptlyRefused(t *testing.T, r *robot) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := r.js.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`))
	var apiErr *natsjs.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, natsjs.ErrorCode(10002), apiErr.ErrorCode, "resource limits exceeded: %v", err)
	require.Less(t, time.Since(start), time.Second, "refused promptly")
}

// storedIDs returns the message ids of every event in EVENTS, read through
// the router consumer as the dispatcher would.
func storedIDs(t *testing.T, conn *jetstream.Conn) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := conn.JS.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.NoError(t, err)
	ids := map[string]bool{}
	for {
		batch, err := c.Fetch(500, natsjs.FetchMaxWait(time.Second))
		require.NoError(t, err)
		n := 0
		for m := range batch.Messages() {
			ids[m.Headers().Get(natsjs.MsgIDHeader)] = true
			require.NoError(t, m.Ack())
			n++
		}
		require.NoError(t, batch.Error())
		if n == 0 {
			return ids
		}
	}
}

// A disk that fills up under the store: nats-server stops the stream at
// its first failed write and, left alone, neither answers publishes nor
// recovers when space returns. The guard refuses promptly instead, and
// restarts JetStream once space is back; every acked event is still there.
func TestStoreGuardRecoversFromAFullDisk(t *testing.T) {
	t.Parallel()
	dir := jstest.Tmpfs(t, 32<<20)
	// A minimum of one byte: the disk really fills and a stream fails.
	conn := openEmbedded(t, jetstream.Options{StoreDir: filepath.Join(dir, "store"), StoreMinFree: 1, StoreCheckInterval: 50 * time.Millisecond})
	guard := conn.StoreGuard()
	require.NotNil(t, guard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- guard.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	release := jstest.Fill(t, dir, 2<<20)
	r := connectRobot(t, conn.ClientURL())
	acked := map[string]bool{}
	payload := make([]byte, 8<<10)
	for i := 0; ; i++ {
		require.Less(t, i, 10_000, "the disk never filled")
		id := fmt.Sprintf("evt-%d", i)
		pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := r.js.Publish(pctx, jetstream.EventSubject("task.created"), payload, natsjs.WithMsgID(id))
		pcancel()
		if err != nil {
			break // a timeout if the stream failed its write, a refusal if the guard was first
		}
		acked[id] = true
	}
	require.NotEmpty(t, acked)
	require.Eventually(t, func() bool { return errors.Is(guard.Err(), jetstream.ErrStoreFull) }, 5*time.Second, 10*time.Millisecond)
	require.False(t, guard.Writable())
	promptlyRefused(t, r)

	release()
	require.Eventually(t, guard.Writable, 5*time.Second, 10*time.Millisecond, "writable within seconds of space returning")
	require.Equal(t, 1, guard.Restarts(), "the failed stream was read back from disk")
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	_, err := r.js.Publish(pctx, jetstream.EventSubject("task.created"), payload, natsjs.WithMsgID("after"))
	require.NoError(t, err, "the same robot connection publishes again")

	ids := storedIDs(t, conn)
	for id := range acked {
		require.True(t, ids[id], "acked event %s was lost", id)
	}
	require.True(t, ids["after"])
}

// Below the minimum free space the guard refuses before anything fails, and
// lifts the refusal without a restart when space returns.
func TestStoreGuardRefusesBelowTheMinimumFreeSpace(t *testing.T) {
	t.Parallel()
	dir := jstest.Tmpfs(t, 32<<20)
	conn := openEmbedded(t, jetstream.Options{StoreDir: filepath.Join(dir, "store"), StoreMinFree: 8 << 20, StoreCheckInterval: 50 * time.Millisecond})
	guard := conn.StoreGuard()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- guard.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	r := connectRobot(t, conn.ClientURL())
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	_, err := r.js.Publish(pctx, jetstream.EventSubject("task.created"), []byte(`{}`), natsjs.WithMsgID("before"))
	require.NoError(t, err)
	require.True(t, guard.Writable())

	release := jstest.Fill(t, dir, 4<<20)
	require.Eventually(t, func() bool { return errors.Is(guard.Err(), jetstream.ErrStoreFull) }, 5*time.Second, 10*time.Millisecond)
	require.ErrorContains(t, guard.Err(), "below the minimum of 8.0 MiB")
	promptlyRefused(t, r)

	release()
	require.Eventually(t, guard.Writable, 5*time.Second, 10*time.Millisecond)
	require.Zero(t, guard.Restarts(), "no stream failed, so no restart")
	_, err = r.js.Publish(pctx, jetstream.EventSubject("task.created"), []byte(`{}`), natsjs.WithMsgID("after"))
	require.NoError(t, err)
	ids := storedIDs(t, conn)
	require.True(t, ids["before"] && ids["after"], "%v", ids)
}
