package dispatcher

import (
	"context"
	"errors"
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
			full, err := newRoom(s.JS).full(ctx)
			require.NoError(t, err)
			require.True(t, full, "through full, as the routers ask")
			return
		}
		_, err = s.JS.Publish(ctx, jetstream.DeliverySubject("sub"), job)
		require.NoError(t, err, "job %d", i)
	}
}

// testRead is one read of a room in a test: the test answers it.
type testRead chan error

// testRoom returns a room whose reads are sent to reads and answer
// full, or the error the test sends.
func testRoom(reads chan testRead) *room {
	return &room{read: func(ctx context.Context) (bool, error) {
		rr := make(testRead)
		reads <- rr
		if err := <-rr; err != nil {
			return false, err
		}
		return true, nil
	}}
}

// call runs r.full in a goroutine and returns where its answer arrives.
func call(r *room) chan bool {
	got := make(chan bool, 1)
	go func() {
		full, err := r.full(context.Background())
		if err != nil {
			close(got)
			return
		}
		got <- full
	}()
	return got
}

func nextRead(t *testing.T, reads chan testRead) testRead {
	t.Helper()
	select {
	case rr := <-reads:
		return rr
	case <-time.After(5 * time.Second):
		t.Fatal("no read of stream info")
		return nil
	}
}

// requireWaiting checks that a call is still waiting for the read in
// flight a while after it began.
func requireWaiting(t *testing.T, got chan bool, why string) {
	t.Helper()
	select {
	case <-got:
		t.Fatal(why)
	case <-time.After(200 * time.Millisecond):
	}
}

// answer waits for a call's answer; ok is false when it was an error.
func answer(t *testing.T, got chan bool) (full, ok bool) {
	t.Helper()
	select {
	case full, ok = <-got:
		return full, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
		return false, false
	}
}

// fullAnswer waits for a call's answer, which must not be an error.
func fullAnswer(t *testing.T, got chan bool) bool {
	t.Helper()
	full, ok := answer(t, got)
	require.True(t, ok, "answered with an error")
	return full
}

// TestRoomIsReadByOneRouterWhileTheOthersGoOn holds one router's read of
// stream info and checks what the others do meanwhile: with an answer at
// most roomStale old they go on with it at once; with none, or an older
// one, they wait for the read and take its answer, or its error. A failed
// read is not kept: the next router reads again.
func TestRoomIsReadByOneRouterWhileTheOthersGoOn(t *testing.T) {
	reads := make(chan testRead)
	r := testRoom(reads)

	t.Run("no answer yet", func(t *testing.T) {
		first := call(r)
		rr := nextRead(t, reads)
		second := call(r)
		requireWaiting(t, second, "told something before any answer was read")
		rr <- nil
		require.True(t, fullAnswer(t, first))
		require.True(t, fullAnswer(t, second), "the reader's answer")
		require.True(t, fullAnswer(t, call(r)), "kept for a second")
		select {
		case <-reads:
			t.Fatal("read again within the second")
		default:
		}
	})

	t.Run("recent answer", func(t *testing.T) {
		r.mu.Lock()
		r.checked, r.isFull = time.Now().Add(-2*time.Second), false
		r.mu.Unlock()
		first := call(r)
		rr := nextRead(t, reads)
		require.False(t, fullAnswer(t, call(r)), "the last answer, while the read is held")
		rr <- nil
		require.True(t, fullAnswer(t, first))
	})

	t.Run("stale answer", func(t *testing.T) {
		r.mu.Lock()
		r.checked, r.isFull = time.Now().Add(-roomStale), false
		r.mu.Unlock()
		first := call(r)
		rr := nextRead(t, reads)
		second := call(r)
		requireWaiting(t, second, "went on with an answer older than roomStale")
		rr <- nil
		require.True(t, fullAnswer(t, first))
		require.True(t, fullAnswer(t, second))
	})

	t.Run("failed read", func(t *testing.T) {
		r.mu.Lock()
		r.checked = time.Time{}
		r.mu.Unlock()
		first := call(r)
		rr := nextRead(t, reads)
		waiting := call(r)
		requireWaiting(t, waiting, "told something before any answer was read")
		rr <- errors.New("stream info: timeout")
		_, ok := answer(t, first)
		require.False(t, ok, "the reader gets the error")
		_, ok = answer(t, waiting)
		require.False(t, ok, "so does the router that waited for it, without a read of its own")
		again := call(r)
		nextRead(t, reads) <- nil // read again, not taken from the failure
		require.True(t, fullAnswer(t, again))
	})
}
