package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// startPprof serves Go's profiler endpoints (/debug/pprof/) on addr under g
// until ctx is done. It is opt-in (--pprof-addr) and has no authentication,
// so its address defaults to loopback; the admin API never serves it.
// A request (POST /debug/pprof/symbol has a body) gets readTimeout to
// arrive, as on the admin listener.
func startPprof(ctx context.Context, g *errgroup.Group, addr string, readTimeout time.Duration, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on pprof-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := httpServer(mux, readTimeout)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("pprof server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		// A CPU profile in progress is cut short rather than awaited.
		return srv.Close()
	})
	log.Info().Str("pprof_addr", ln.Addr().String()).Msg("profiler listening (no authentication: keep it on loopback)")
	return nil
}
