package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// DefaultStoreMinFree is the free space the embedded server's filesystem
// must keep for its store to accept writes, unless Options says otherwise.
const DefaultStoreMinFree = 32 << 20

// defaultStoreCheckInterval is how often a StoreGuard looks, unless Options
// says otherwise.
const defaultStoreCheckInterval = time.Second

// StoreGuard keeps the embedded server's store from failing silently when
// its disk fills, and brings it back when space returns.
//
// nats-server (2.15) stops a stream for good at its first failed write: it
// stops answering publishes to it, so they time out, and it keeps failing
// after space returns until the server restarts. The guard looks every
// Options.StoreCheckInterval (1 s) at the free space of the store's
// filesystem and at the streams' write errors. When the free space falls
// below Options.StoreMinFree or a stream has failed a write, it sets the
// JetStream storage limit of webhookd's account to zero: every publish is
// then refused at once ("resource limits exceeded for account", err_code
// 10002) and nothing more is written; Err says why, in one warn line. Acks
// still work, so messages already stored are delivered. When the free space
// is back above the minimum it lifts the limit, after restarting JetStream
// for the account if a stream had stopped: streams and consumers are read
// back from disk, and client connections stay up.
//
// A StoreGuard is nil for an external NATS, whose operator owns its disks;
// its methods then report a writable store. It is safe for concurrent use.
type StoreGuard struct {
	ns       *server.Server
	dir      string
	minFree  uint64
	interval time.Duration
	log      zerolog.Logger

	mu       sync.Mutex
	err      error // why the store is refusing writes; nil when it is not
	restarts int   // JetStream restarts after a stream stopped writing
}

// ErrStoreFull is wrapped by StoreGuard.Err while the store refuses writes.
var ErrStoreFull = errors.New("nats store cannot write")

func newStoreGuard(ns *server.Server, o Options, log zerolog.Logger) *StoreGuard {
	g := &StoreGuard{
		ns: ns, dir: o.StoreDir, minFree: uint64(o.StoreMinFree), interval: o.StoreCheckInterval,
		log: log.With().Str("component", "store-guard").Logger(),
	}
	if g.minFree == 0 {
		g.minFree = DefaultStoreMinFree
	}
	if g.interval <= 0 {
		g.interval = defaultStoreCheckInterval
	}
	return g
}

// Run checks the store every interval until ctx is done, and returns nil.
func (g *StoreGuard) Run(ctx context.Context) error {
	if g == nil {
		return nil
	}
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		g.check()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Err returns why the store refuses writes (wrapping ErrStoreFull), or nil
// when it accepts them.
func (g *StoreGuard) Err() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Writable reports whether the store accepts writes.
func (g *StoreGuard) Writable() bool { return g.Err() == nil }

// check looks once and refuses or accepts writes accordingly.
func (g *StoreGuard) check() {
	free, known := diskFree(g.dir)
	stopped := g.stoppedStreams()
	g.mu.Lock()
	defer g.mu.Unlock()
	low := known && free < g.minFree
	switch {
	case g.err == nil && (low || stopped != ""):
		reason := fmt.Sprintf("%s free, below the minimum of %s", mib(free), mib(g.minFree))
		if stopped != "" {
			reason = stopped
		}
		if err := g.refuse(); err != nil {
			g.log.Error().Err(err).Str("reason", reason).Msg("nats store cannot write, and refusing writes failed")
			return
		}
		g.err = fmt.Errorf("%w: %s", ErrStoreFull, reason)
		ev := g.log.Warn().Str("reason", reason).Str("store_dir", g.dir)
		if known {
			ev = ev.Uint64("free_bytes", free)
		}
		ev.Msg("nats store cannot write: refusing new events until space returns")
	case g.err != nil && !low:
		if stopped != "" {
			// A stream that failed a write stays stopped: read the account's
			// streams and consumers back from disk.
			if err := g.restartJetStream(); err != nil {
				g.log.Error().Err(err).Msg("restarting JetStream after a full disk failed; retrying")
				return
			}
			g.restarts++
		} else if err := g.ns.GlobalAccount().UpdateJetStreamLimits(nil); err != nil {
			g.log.Error().Err(err).Msg("lifting the nats store's write refusal failed; retrying")
			return
		}
		g.err = nil
		ev := g.log.Info().Bool("jetstream_restarted", stopped != "")
		if known {
			ev = ev.Uint64("free_bytes", free)
		}
		ev.Msg("nats store writable again: accepting events")
	case g.err != nil && stopped != "":
		g.err = fmt.Errorf("%w: %s", ErrStoreFull, stopped) // the more telling reason
	}
}

// refuse makes JetStream refuse every write of webhookd's account before it
// touches the disk: a storage limit of zero.
func (g *StoreGuard) refuse() error {
	return g.ns.GlobalAccount().UpdateJetStreamLimits(map[string]server.JetStreamAccountLimits{
		"": {MaxMemory: -1, MaxStore: 0, MaxStreams: -1, MaxConsumers: -1, MaxAckPending: -1,
			MemoryMaxStreamBytes: -1, StoreMaxStreamBytes: -1},
	})
}

// restartJetStream stops and starts JetStream for webhookd's account, as a
// server restart would, without closing any connection. Its default limits
// come back with it.
func (g *StoreGuard) restartJetStream() error {
	acc := g.ns.GlobalAccount()
	if err := acc.DisableJetStream(); err != nil {
		return fmt.Errorf("disable: %w", err)
	}
	if err := acc.EnableJetStream(nil, nil); err != nil {
		return fmt.Errorf("enable: %w", err)
	}
	return nil
}

// stoppedStreams returns the server's description of the first stream that
// stopped at a write error, or "".
func (g *StoreGuard) stoppedStreams() string {
	h := g.ns.Healthz(&server.HealthzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Details: true})
	for _, e := range h.Errors {
		if e.Type == server.HealthzErrorStream && strings.Contains(e.Error, "write error") {
			return e.Error
		}
	}
	return ""
}

// Restarts returns how many times the guard restarted JetStream after a
// stream stopped writing.
func (g *StoreGuard) Restarts() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.restarts
}

// mib formats a byte count for a log line or a reason.
func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
