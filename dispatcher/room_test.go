package dispatcher

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// TestRoomSaysFullAtTheReserve fills a real DELIVERIES stream job by job:
// the room is full once the stream holds 90 % of its byte limit, not
// before.
func TestRoomSaysFullAtTheReserve(t *testing.T) {
	s := jstest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prov := jstest.Provisioning()
	prov.MaxStore, prov.MaxEventBytes = 4<<20, 64<<10 // DELIVERIES: 1 MiB
	require.NoError(t, jetstream.Provision(ctx, s.JS, prov))
	str, err := s.JS.Stream(ctx, jetstream.StreamDeliveries)
	require.NoError(t, err)

	r := newRoom(s.JS)
	job := make([]byte, 16<<10)
	for i := 0; ; i++ {
		info, err := str.Info(ctx)
		require.NoError(t, err)
		atReserve := float64(info.State.Bytes) >= 0.9*float64(info.Config.MaxBytes)
		full, err := r.read(ctx)
		require.NoError(t, err)
		require.Equal(t, atReserve, full, "%d jobs, %d of %d bytes", info.State.Msgs, info.State.Bytes, info.Config.MaxBytes)
		if atReserve {
			require.Less(t, info.State.Bytes, uint64(info.Config.MaxBytes), "the reserve is left")
			return
		}
		_, err = s.JS.Publish(ctx, jetstream.DeliverySubject("sub"), job)
		require.NoError(t, err, "job %d", i)
	}
}

// TestRoomIsReadByOneRouterWhileTheOthersGoOn holds the read of stream
// info: the other routers go on at once with the last answer, and the
// answer read then stands for a second. A failed read is tried again by
// the next router.
func TestRoomIsReadByOneRouterWhileTheOthersGoOn(t *testing.T) {
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	var reads atomic.Int32
	fail := errors.New("stream info: timeout")
	r := &room{read: func(context.Context) (bool, error) {
		switch reads.Add(1) {
		case 1:
			return false, fail
		case 2:
			close(started)
			<-release
		}
		return true, nil
	}}

	_, err := r.full(ctx)
	require.ErrorIs(t, err, fail)

	reader := make(chan bool)
	go func() {
		full, err := r.full(ctx)
		if err != nil {
			t.Error(err)
		}
		reader <- full
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the read after a failed one was not made")
	}
	other := make(chan bool)
	go func() {
		full, _ := r.full(ctx)
		other <- full
	}()
	select {
	case full := <-other:
		require.False(t, full, "the last answer (none yet: not full)")
	case <-time.After(5 * time.Second):
		close(release)
		<-reader
		t.Fatal("a second router waited for the first one's read")
	}
	close(release)
	require.True(t, <-reader)

	full, err := r.full(ctx)
	require.NoError(t, err)
	require.True(t, full)
	require.EqualValues(t, 2, reads.Load(), "read again within the second")
}
