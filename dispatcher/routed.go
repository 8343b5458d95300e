package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/jetstream"
)

const (
	// routedFlush is how often a replica publishes the events it routed
	// since its last message.
	routedFlush = 5 * time.Millisecond
	// routedHeartbeat is how often a replica publishes even when it routed
	// nothing: the replicas count each other by it.
	routedHeartbeat = time.Second
	// peerGone is how long a replica unheard of stops counting as live.
	peerGone = 3 * time.Second
	// maxRoutedKnown bounds the routed events kept above the floor; beyond
	// it, new ones are dropped (which only holds ordered heads back until
	// the router's ack floor passes them).
	maxRoutedKnown = 1 << 18
)

// routedLog knows which events are routed far enough for ordered
// deliveries: their ordered jobs, if any, are stored in ORDERED. Each
// replica adds the events its routers got that far (before any of their
// other branches starts, see route), and publishes them on a core NATS
// subject (jetstream.RoutedSubject) every routedFlush; every replica
// gathers them. Each entry is a fact that stays true, so a lost message,
// a replica that died before publishing, or a replica that joined late
// only leaves a gap, which holds ordered heads back until the router's ack
// floor passes it: floor never claims an event routed that is not.
//
// Unlike the router's ack floor alone, it is not held back by the other
// branches of an event (a fast-path attempt to a hanging receiver): an
// event is acked only once they settle, but it counts as routed here as
// soon as its ordered jobs are stored.
//
// The same messages are the replicas' heartbeat (every routedHeartbeat at
// least): live counts the replicas heard of lately, for the ordered
// partitions' share.
type routedLog struct {
	nc      *nats.Conn
	replica string
	log     zerolog.Logger

	mu      sync.Mutex
	contig  uint64              // every event at or below it is routed
	known   map[uint64]struct{} // events above contig known to be routed
	pending []uint64            // this replica's, not yet published
	peers   map[string]time.Time
}

func newRoutedLog(nc *nats.Conn, log zerolog.Logger) *routedLog {
	id := make([]byte, 8)
	_, _ = rand.Read(id) // never fails (crypto/rand)
	return &routedLog{nc: nc, replica: hex.EncodeToString(id), log: log,
		known: map[uint64]struct{}{}, peers: map[string]time.Time{}}
}

// add notes that event seq is routed: its ordered jobs are stored.
func (l *routedLog) add(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, seq)
	l.noteLocked(seq)
}

func (l *routedLog) noteLocked(seq uint64) {
	switch {
	case seq == l.contig+1:
		l.contig = seq
		l.advanceLocked()
	case seq > l.contig && len(l.known) < maxRoutedKnown:
		l.known[seq] = struct{}{}
	}
}

// advanceLocked moves contig over the events known routed right above it.
func (l *routedLog) advanceLocked() {
	for {
		if _, ok := l.known[l.contig+1]; !ok {
			return
		}
		delete(l.known, l.contig+1)
		l.contig++
	}
}

// floor returns the highest sequence at or below which every event is
// routed, given ackFloor, the router's ack floor read earlier (every event
// at or below it is routed and settled).
func (l *routedLog) floor(ackFloor uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ackFloor > l.contig {
		l.contig = ackFloor
		for s := range l.known {
			if s <= ackFloor {
				delete(l.known, s)
			}
		}
	}
	l.advanceLocked()
	return l.contig
}

// live returns how many replicas run: this one and those heard of within
// peerGone.
func (l *routedLog) live() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 1
	for id, at := range l.peers {
		if time.Since(at) < peerGone {
			n++
		} else {
			delete(l.peers, id)
		}
	}
	return n
}

// run gathers the other replicas' messages and publishes this replica's
// until ctx ends.
func (l *routedLog) run(ctx context.Context) {
	sub, err := l.nc.Subscribe(jetstream.RoutedSubject, l.receive)
	if err != nil {
		// Only the router's ack floor moves ordered heads on then.
		l.log.Warn().Err(err).Msg("cannot gather routed events; ordered heads wait for the router's ack floor")
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}
	tick := time.NewTicker(routedFlush)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			l.publish() // what was routed while stopping
			return
		case <-tick.C:
		}
		l.mu.Lock()
		due := len(l.pending) > 0 || time.Since(last) >= routedHeartbeat
		l.mu.Unlock()
		if due {
			l.publish()
			last = time.Now()
		}
	}
}

// publish sends the pending events: the replica's id (16 hex digits), then
// each sequence as an unsigned varint delta from the one before, sorted.
func (l *routedLog) publish() {
	l.mu.Lock()
	seqs := l.pending
	l.pending = nil
	l.mu.Unlock()
	if err := l.nc.Publish(jetstream.RoutedSubject, encodeRouted(l.replica, seqs)); err != nil {
		l.log.Debug().Err(err).Msg("publishing routed events failed; ordered heads on other replicas wait for the router's ack floor")
	}
}

// receive gathers another replica's message.
func (l *routedLog) receive(m *nats.Msg) {
	seqs, replica, err := decodeRouted(m.Data, len(l.replica))
	if err != nil {
		l.log.Debug().Err(err).Msg("ignoring a malformed routed message")
		return
	}
	if replica == l.replica {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.peers[replica] = time.Now()
	for _, s := range seqs {
		l.noteLocked(s)
	}
}

// encodeRouted sorts seqs and encodes them after the replica's id.
func encodeRouted(replica string, seqs []uint64) []byte {
	slices.Sort(seqs)
	buf := append(make([]byte, 0, len(replica)+len(seqs)*2), replica...)
	var prev uint64
	for _, s := range seqs {
		buf = binary.AppendUvarint(buf, s-prev)
		prev = s
	}
	return buf
}

// decodeRouted decodes a routed message whose replica id is idLen bytes.
func decodeRouted(b []byte, idLen int) (seqs []uint64, replica string, err error) {
	if len(b) < idLen {
		return nil, "", fmt.Errorf("routed message of %d bytes: no replica id", len(b))
	}
	replica, b = string(b[:idLen]), b[idLen:]
	var prev uint64
	for len(b) > 0 {
		d, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, "", fmt.Errorf("routed message: bad sequence at %d bytes from its end", len(b))
		}
		prev += d
		seqs = append(seqs, prev)
		b = b[n:]
	}
	return seqs, replica, nil
}
