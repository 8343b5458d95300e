package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
)

// MaxListenGrace is the default and the longest Config.ListenGrace. The
// replicas sweep every quarter of the grace period, so the subscription of
// a listener that vanished is gone within 1.25 × grace: under a minute.
const MaxListenGrace = 45 * time.Second

// errListenerReadOnly refuses a change to a listen subscription.
var errListenerReadOnly = errors.New("admin: listen subscriptions are read-only")

// listenerReadOnly is the API's answer to a change of the listen
// subscription id.
func listenerReadOnly(id string) error {
	return apiError(http.StatusConflict, client.CodeConflict,
		"subscription %q is a listen subscription (webhookctl listen): it can be read or deleted, not changed", id)
}

// streams lets a shutdown end every event stream: http.Server.Shutdown
// waits for the handlers, and a stream's runs as long as its client stays.
type streams struct {
	done chan struct{}
	once sync.Once
}

func newStreams() *streams { return &streams{done: make(chan struct{})} }

// CloseStreams ends the listener streams this server serves and refuses
// new ones (503). Register it with http.Server.RegisterOnShutdown. A
// listener whose stream ends reconnects, to this replica once it is back
// or to another, and resumes: its subscription outlives the stream by the
// grace period.
func (s *Server) CloseStreams() {
	s.streams.once.Do(func() { close(s.streams.done) })
}

// createListener creates a listen subscription: POST /v1/listeners.
func (s *Server) createListener(w http.ResponseWriter, r *http.Request) error {
	var in client.ListenerInput
	if err := decode(r, 64<<10, &in); err != nil {
		return err
	}
	if err := s.checkEvents(in.Events); err != nil {
		return err
	}
	if len(in.Description) > maxDescription {
		return invalid("description: at most %d bytes", maxDescription)
	}
	if err := s.checkExprs(&in.Filter, nil, nil); err != nil {
		return err
	}
	sub, err := s.deps.Subs.Create(r.Context(), subscriptions.Subscription{
		Events: in.Events, Description: in.Description, Filter: in.Filter, Listen: true,
		ExpiresAt: s.now().Add(s.cfg.ListenGrace).UTC(),
	})
	if errors.Is(err, subscriptions.ErrInvalid) {
		return invalidSubscription(err)
	}
	if err != nil {
		return err
	}
	s.log.Info().Str("subscription_id", sub.ID).Strs("events", sub.Events).Msg("listen subscription created")
	writeJSON(w, http.StatusCreated, s.view(sub, true))
	return nil
}

// listenBuffer holds a listener's deliveries between the NATS subscription
// and the stream: at most its capacity; beyond it they are dropped and
// counted, so a slow client costs neither the router nor the NATS
// connection anything.
type listenBuffer struct {
	ch      chan *nats.Msg
	dropped atomic.Int64  // since the last "dropped" event
	notify  chan struct{} // a drop happened
}

func newListenBuffer(n int) *listenBuffer {
	return &listenBuffer{ch: make(chan *nats.Msg, n), notify: make(chan struct{}, 1)}
}

// receive is the NATS message handler: it never blocks.
func (b *listenBuffer) receive(m *nats.Msg) {
	if m.Header.Get(dispatcher.HeaderListenDropped) != "" {
		b.drop()
		return
	}
	select {
	case b.ch <- m:
	default:
		b.drop()
	}
}

func (b *listenBuffer) drop() {
	b.dropped.Add(1)
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// streamListener streams a listen subscription's deliveries as Server-Sent
// Events: GET /v1/listeners/{id}/events. Events: "ready" once subscribed
// (client.ListenReady), "delivery" for each (client.ListenEvent, passed on
// as the router published it), "dropped" with how many did not fit the
// buffer since the last (client.ListenDropped), "gone" when the
// subscription was deleted. While the client stays, the handler moves the
// subscription's expiry on every third of the grace period, with a
// keep-alive comment; each write must finish within half of it.
func (s *Server) streamListener(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "listener")
	if err != nil {
		return err
	}
	select {
	case <-s.streams.done:
		return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "this replica is shutting down; listen again, to another replica")
	default:
	}
	if s.deps.JS == nil {
		return apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "listening is not available on this replica")
	}
	ctx := r.Context()
	sub, err := s.deps.Subs.Fetch(ctx, id)
	if errors.Is(err, subscriptions.ErrNotFound) {
		return notFound("listen subscription", id)
	}
	if err != nil {
		return err
	}
	if !sub.Listen {
		return invalid("subscription %q is not a listen subscription (POST /v1/listeners creates one)", id)
	}
	buf := newListenBuffer(s.cfg.ListenBuffer)
	ns, err := s.deps.JS.Conn().Subscribe(jetstream.ListenSubject(id), buf.receive)
	if err != nil {
		return fmt.Errorf("subscribe for listener %s: %w", id, err)
	}
	defer func() { _ = ns.Unsubscribe() }()
	grace := s.cfg.ListenGrace
	until := s.now().Add(grace)
	if err := s.deps.Subs.Refresh(ctx, id, until); errors.Is(err, subscriptions.ErrNotFound) {
		return notFound("listen subscription", id)
	} else if err != nil {
		return err
	}

	log := s.log.With().Str("subscription_id", id).Str("remote_addr", r.RemoteAddr).Logger()
	sent, dropped := 0, int64(0)
	log.Info().Msg("listener connected")
	defer func() { log.Info().Int("sent", sent).Int64("dropped", dropped).Msg("listener disconnected") }()
	sse := newSSE(w, grace/2)
	ready, _ := json.Marshal(client.ListenReady{SubscriptionID: id, ExpiresAt: until.UTC()})
	if err := sse.event("ready", ready); err != nil {
		return nil // the client is gone; the answer has begun
	}
	reportDrops := func() error {
		n := buf.dropped.Swap(0)
		if n == 0 {
			return nil
		}
		dropped += n
		b, _ := json.Marshal(client.ListenDropped{Dropped: n})
		return sse.event("dropped", b)
	}
	tick := time.NewTicker(grace / 3)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-s.streams.done:
			return nil
		case m := <-buf.ch:
			if err = reportDrops(); err == nil {
				if err = sse.event("delivery", m.Data); err == nil {
					sent++
				}
			}
		case <-buf.notify:
			err = reportDrops()
		case <-tick.C:
			rerr := s.deps.Subs.Refresh(ctx, id, s.now().Add(grace))
			if errors.Is(rerr, subscriptions.ErrNotFound) {
				_ = sse.event("gone", []byte(`{"reason":"deleted"}`))
				return nil
			}
			if rerr != nil && ctx.Err() == nil {
				log.Warn().Err(rerr).Msg("moving a listener's expiry on failed; trying again at the next tick")
			}
			err = sse.comment("keep-alive")
		}
		if err != nil {
			log.Debug().Err(err).Msg("listener stream ended")
			return nil
		}
	}
}
