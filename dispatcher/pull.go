package dispatcher

import (
	"context"
	"errors"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// fetchWait is how long one pull request waits on the server for messages.
// Each request is a Fetch of its own: it ends when its batch is full, when
// the server says it expired, or at the latest a second after fetchWait on
// the client's clock. So a request the server lost costs at most that, and
// nothing has to notice it.
const fetchWait = time.Second

// pool handles the messages of one consumer with n goroutines. It asks the
// server for no more messages than it has idle goroutines, so no message
// waits in a client buffer with its AckWait running, and a busy pool stops
// pulling instead of pulling and handing back.
//
// It replaces the shared MessagesContext iterator, whose count of messages
// still to come drifted under load until it believed a batch was on its way
// that the server no longer held: every goroutine then sat idle beside
// thousands of pending jobs until two heartbeats were missed (measured:
// stalls of 5 s, again and again, after a burst of 20,000 jobs).
type pool struct {
	name string
	cons natsjs.Consumer
	n    int
	// tokens, if set, is a capacity the pool takes a token of for each
	// message it pulls, waiting while none is free; the handler owns it.
	tokens capacity
	handle func(natsjs.Msg)
	funnel *funnel
	log    zerolog.Logger
}

// run pulls and handles messages until ctx is done; then it stops pulling,
// puts back at once the messages fetched but not started (naks them for
// another replica), waits for the goroutines to finish their messages and
// returns.
func (p *pool) run(ctx context.Context) {
	idle := make(chan struct{}, p.n) // one token per idle goroutine
	for range p.n {
		idle <- struct{}{}
	}
	msgs := make(chan natsjs.Msg)
	var wg sync.WaitGroup
	for range p.n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				p.handle(m)
				idle <- struct{}{}
			}
		}()
	}
	defer func() { close(msgs); wg.Wait() }()

	var failures int
	for {
		// Wait for one idle goroutine, then take every other one idle now.
		select {
		case <-ctx.Done():
			return
		case <-idle:
		}
		batch := 1
	take:
		for batch < p.n {
			select {
			case <-idle:
				batch++
			default:
				break take
			}
		}
		if p.tokens != nil {
			took := p.tokens.take(ctx, batch)
			if took == 0 {
				return // stopped
			}
			for range batch - took {
				idle <- struct{}{}
			}
			batch = took
		}
		if ctx.Err() != nil { // stopped while an idle goroutine was taken
			return
		}
		got, err := p.fetch(ctx, batch, msgs)
		for range batch - got {
			idle <- struct{}{}
		}
		if p.tokens != nil {
			p.tokens.give(batch - got)
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		if failures == 1 || failures%30 == 0 {
			p.log.Warn().Err(err).Str("consumer", p.name).Int("failures", failures).Msg("pull failed; retrying")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 2*time.Second)):
		}
	}
}

// fetch asks for up to batch messages and hands each to an idle goroutine
// as it arrives. It returns how many it handed over (or put back, once ctx
// is done), and why the request failed, if it did: a request that expired
// with fewer messages is not a failure.
func (p *pool) fetch(ctx context.Context, batch int, msgs chan<- natsjs.Msg) (int, error) {
	b, err := p.cons.Fetch(batch, natsjs.FetchMaxWait(fetchWait))
	if err != nil {
		return 0, err
	}
	got := 0
	for m := range b.Messages() {
		got++
		if ctx.Err() != nil {
			p.funnel.nak(m, 0) // fetched, not started: let another replica take it now
			continue
		}
		msgs <- m
	}
	if err := b.Error(); err != nil && !errors.Is(err, natsjs.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return got, err
	}
	return got, nil
}
