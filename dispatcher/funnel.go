package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// funnel is the one caller of Ack, Nak, NakWithDelay, Term and InProgress
// for both consumers: the router's events and the workers' jobs. A settle
// that fails is logged once, here, with the message's identity, and
// counted; JetStream then redelivers the message after its AckWait, so
// nothing is lost, only late.
type funnel struct {
	log    zerolog.Logger
	failed atomic.Uint64 // settles the server never got
	// nc and confirm: once a stop began (confirm set), acks and naks wait
	// for the server's reply. The server queues settles per consumer and
	// drops the queue when it shuts down, so an ack or nak sent just
	// before the (embedded) server stops could be lost, and its message
	// held until its AckWait after the restart; a confirmed settle was
	// applied, and so were the ones before it on its consumer.
	nc      *nats.Conn
	confirm atomic.Bool
}

// confirmTimeout bounds waiting for the server's reply to a settle.
const confirmTimeout = 5 * time.Second

// confirming reports whether settles wait for the server's reply: once a
// stop began, while connected (a settle while NATS is away is buffered,
// and waiting for its reply would only hold the stop up).
func (f *funnel) confirming() bool {
	return f.confirm.Load() && f.nc != nil && f.nc.IsConnected()
}

// ack settles m as done.
func (f *funnel) ack(m natsjs.Msg) {
	if f.confirming() {
		ctx, cancel := context.WithTimeout(context.Background(), confirmTimeout)
		defer cancel()
		f.check(m, "ack", m.DoubleAck(ctx))
		return
	}
	f.check(m, "ack", m.Ack())
}

// nak hands m back to be delivered again after delay (at once with 0).
// It always sends a delay, at least nakNow: JetStream keeps a plain Nak in
// memory only, so a message nak'ed and not yet redelivered when the server
// stops (the embedded server stops with its webhookd) would wait for its
// whole AckWait once the server is back; a delay is stored with the
// consumer's state.
func (f *funnel) nak(m natsjs.Msg, delay time.Duration) {
	delay = max(delay, nakNow)
	if f.confirming() {
		// nats.go has no confirmed nak: this is NakWithDelay's body sent
		// as a request, which the server answers once it applied it.
		body := fmt.Appendf(nil, "-NAK {\"delay\": %d}", delay.Nanoseconds())
		_, err := f.nc.Request(m.Reply(), body, confirmTimeout)
		f.check(m, "nak", err)
		return
	}
	f.check(m, "nak", m.NakWithDelay(delay))
}

// nakNow is the delay of a nak that hands a message back at once.
const nakNow = time.Millisecond

// term takes m out of its stream's delivery for good, with the reason
// JetStream keeps.
func (f *funnel) term(m natsjs.Msg, why string) { f.check(m, "term", m.TermWithReason(why)) }

// progress restarts m's AckWait.
func (f *funnel) progress(m natsjs.Msg) { f.check(m, "in-progress", m.InProgress()) }

func (f *funnel) check(m natsjs.Msg, what string, err error) {
	if err == nil {
		return
	}
	f.failed.Add(1)
	ev := f.log.Warn()
	if errors.Is(err, natsjs.ErrMsgAlreadyAckd) {
		ev = f.log.Debug() // settled before: the first settle stands
	}
	ev = ev.Err(err).Str("settle", what).Str("subject", m.Subject())
	if md, mdErr := m.Metadata(); mdErr == nil {
		ev = ev.Str("stream", md.Stream).Uint64("stream_seq", md.Sequence.Stream).Uint64("delivered", md.NumDelivered)
	}
	ev.Msg("settling a message failed; JetStream will redeliver it")
}

// keepAlive sends InProgress for m every interval until the returned stop
// is called: for a message whose work outlasts a third of its AckWait (a
// slow attempt, or an event waiting for its fan-out). It starts no
// goroutine until the first interval has passed.
func (f *funnel) keepAlive(m natsjs.Msg, first, every time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	mu.Lock()
	defer mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(max(first, 0), func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		f.progress(m)
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}
