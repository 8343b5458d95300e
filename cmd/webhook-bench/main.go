// Command webhook-bench measures webhookd under load, as a user would see it:
// it starts webhookd as a child process with its embedded NATS file store
// (or uses a running one), starts loopback receivers that verify both
// signatures of every request, creates N subscriptions, publishes events at
// a fixed rate or flat out, and reports what was published and delivered,
// publish-to-receipt latency, webhookd's CPU time and peak RSS, and the
// share of the raw loopback HTTP rate it measures first with the same
// client settings. It writes a JSON result and an SVG plot over time.
// With --floor it measures, in webhookd's place, the least pipeline that
// webhookd's guarantees need, built from webhookd's own parts (floor.go).
//
// Run it with "make bench-load ARGS=..." or "webhook-bench --help".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "webhook-bench:", err)
		os.Exit(1)
	}
}

// run parses args, runs one benchmark and prints its report to stdout and
// its progress to progress. It returns the result it wrote.
func run(ctx context.Context, args []string, stdout, progress io.Writer) (*Result, error) {
	opts, err := parseOptions(args, stdout)
	if err != nil {
		return nil, err
	}
	b := &bench{opts: opts, out: stdout, progress: progress}
	defer b.close()
	res, err := b.run(ctx)
	if err != nil {
		return nil, err
	}
	return res, nil
}
