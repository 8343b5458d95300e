package dispatcher_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/dispatcher"
)

// failingAsyncRecorder is the real recorder whose first pipelined attempt
// records are refused by their acknowledgement, as when AUDIT answers an
// error after the worker went on.
type failingAsyncRecorder struct {
	dispatcher.Recorder
	async dispatcher.AsyncRecorder
	left  atomic.Int64
	used  atomic.Int64
}

func (f *failingAsyncRecorder) PublishAsync(rec history.Record) (natsjs.PubAckFuture, error) {
	f.used.Add(1)
	if rec.Attempt != nil && f.left.Add(-1) >= 0 {
		return failedFuture{}, nil
	}
	return f.async.PublishAsync(rec)
}

// failedFuture resolves at once with an error.
type failedFuture struct{}

func (failedFuture) Ok() <-chan *natsjs.PubAck { return nil }
func (failedFuture) Err() <-chan error {
	c := make(chan error, 1)
	c <- errors.New("audit stream refused the record (test)")
	return c
}
func (failedFuture) Msg() *nats.Msg { return nil }

// A pipelined record that fails after the worker moved on still keeps the
// job from being acked: it is nak'ed and the same attempt runs again until
// its record is confirmed, then acked once.
func TestPipelinedRecordFailureIsNeverAcked(t *testing.T) {
	t.Parallel()
	var f *failingAsyncRecorder
	unrecordedIsNeverAcked(t, "pipelined", func(r dispatcher.Recorder) dispatcher.Recorder {
		f = &failingAsyncRecorder{Recorder: r, async: r.(dispatcher.AsyncRecorder)}
		f.left.Store(2)
		return f
	})
	require.GreaterOrEqual(t, f.used.Load(), int64(3), "the records went through the pipeline")
}
