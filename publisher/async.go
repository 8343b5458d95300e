package publisher

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Failure is one event Async accepted that the stream did not acknowledge.
type Failure struct {
	// ID is the event id to publish it again with.
	ID string
	// Type is the event type.
	Type EventType
	// Data is the event's data as sent.
	Data []byte
	// Err is why: the stream refused it (e.g. full), no ack came within
	// AckTimeout, or the connection was lost.
	Err error
}

// AsyncConfig configures an Async.
type AsyncConfig struct {
	// OnFailure is called, from a NATS goroutine, once for every accepted
	// event that was not acknowledged (required). It must not block for long.
	OnFailure func(Failure)
	// MaxPending bounds the events waiting for their ack; Publish waits for
	// room when it is reached. Default 4096.
	MaxPending int
	// AckTimeout is how long an event may wait for its ack, counted from
	// Publish (so time queued behind MaxPending others included), before it
	// is reported as failed. Default 30s. A timed-out event may still have
	// been stored: publish it again with its id, and the stream drops the
	// duplicate.
	AckTimeout time.Duration
}

// Async publishes events without waiting for each acknowledgement. Every
// event its Publish accepted (returned nil for) is then either acknowledged
// or passed to OnFailure, exactly once.
type Async struct {
	js     natsjs.JetStream
	opts   options
	stall  time.Duration // how long Publish waits for room
	acked  atomic.Int64
	failed atomic.Int64
}

// NewAsync returns an Async on nc.
func NewAsync(nc *nats.Conn, cfg AsyncConfig, opts ...Option) (*Async, error) {
	if cfg.OnFailure == nil {
		return nil, fmt.Errorf("publisher: AsyncConfig.OnFailure is required: every failure is reported there")
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 4096
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	a := &Async{opts: o, stall: cfg.AckTimeout}
	a.js, err = natsjs.New(nc,
		natsjs.WithPublishAsyncMaxPending(cfg.MaxPending),
		natsjs.WithPublishAsyncTimeout(cfg.AckTimeout),
		natsjs.WithPublishAsyncAckHandler(func(natsjs.JetStream, *nats.Msg, *natsjs.PubAck) { a.acked.Add(1) }),
		natsjs.WithPublishAsyncErrHandler(func(_ natsjs.JetStream, m *nats.Msg, err error) {
			a.failed.Add(1)
			cfg.OnFailure(Failure{
				ID:   m.Header.Get(natsjs.MsgIDHeader),
				Type: EventType(m.Subject[len(SubjectPrefix):]),
				Data: m.Data,
				Err:  err,
			})
		}))
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	return a, nil
}

// Publish queues one event and returns its id without waiting for the ack.
// It waits only while MaxPending events are unacknowledged, for up to
// AckTimeout. data is as for Publisher.Publish. An error (bad input, or no
// room within AckTimeout) means the event was not queued and OnFailure will
// not hear of it.
func (a *Async) Publish(eventType EventType, data any, opts ...PublishOption) (string, error) {
	m, id, err := a.opts.message(eventType, data, opts)
	if err != nil {
		return "", err
	}
	if _, err := a.js.PublishMsgAsync(m, natsjs.WithStallWait(a.stall)); err != nil {
		return "", &Error{ID: id, Type: eventType, Err: err}
	}
	return id, nil
}

// Flush waits until every queued event is acknowledged or reported as
// failed, or ctx is done.
func (a *Async) Flush(ctx context.Context) error {
	select {
	case <-a.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publisher: flush: %d events still waiting for an ack: %w", a.js.PublishAsyncPending(), ctx.Err())
	}
}

// Counts returns how many queued events were acknowledged and how many
// reported as failed so far.
func (a *Async) Counts() (acked, failed int64) {
	return a.acked.Load(), a.failed.Load()
}
