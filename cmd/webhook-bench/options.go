package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// options are the command line of webhook-bench.
type options struct {
	webhookd     string        // binary to start
	webhookdArgs []string      // extra flags for it
	attach       string        // admin URL of a running webhookd instead
	token        string        // its admin token
	natsURL      string        // its NATS
	pid          int           // its process, for CPU and RSS (0: not measured)
	fanout       int           // subscriptions, each its own receiver
	rate         int           // events/s; 0: flat out
	duration     time.Duration // how long to publish (unless count)
	count        int           // events to publish; 0: for duration
	size         int           // bytes of event data
	window       int           // flat out: deliveries published but not yet received, at most
	backlog      bool          // webhookd is stopped while the events are published, then started to drain them
	raw          time.Duration // how long the raw loopback baseline runs; 0 skips it
	conns        int           // concurrent requests of the raw baseline (webhookd's workers)
	drain        time.Duration // how long to wait for the last deliveries
	out          string        // directory of the JSON result and the SVG plot
	quiet        bool          // no progress line
	floor        bool          // run the floor pipeline in this process instead of webhookd
	filter       string        // CEL filter of every subscription; "": none
	orderingKey  string        // CEL ordering key of every subscription; "": unordered
}

func parseOptions(args []string, usage io.Writer) (options, error) {
	var o options
	var extra string
	fs := flag.NewFlagSet("webhook-bench", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&o.webhookd, "webhookd", "", "webhookd binary to start (default: webhookd next to this binary, else bin/webhookd)")
	fs.StringVar(&extra, "webhookd-args", "", "extra flags for the started webhookd, space-separated (e.g. \"--workers 128 --store-sync always\")")
	fs.StringVar(&o.attach, "attach", "", "admin URL of a running webhookd to use instead of starting one (needs --token and --nats; it must allow 127.0.0.0/8 targets)")
	fs.StringVar(&o.token, "token", "", "admin token of the running webhookd (with --attach)")
	fs.StringVar(&o.natsURL, "nats", "", "NATS URL of the running webhookd (with --attach)")
	fs.IntVar(&o.pid, "pid", 0, "process id of the running webhookd, to measure its CPU and RSS (with --attach)")
	fs.IntVar(&o.fanout, "fanout", 1, "subscriptions (each with its own receiver) every event goes to")
	fs.IntVar(&o.rate, "rate", 0, "events published per second; 0: flat out")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish (ignored with --count)")
	fs.IntVar(&o.count, "count", 0, "events to publish; 0: publish for --duration")
	fs.IntVar(&o.size, "size", 1024, "bytes of event data")
	fs.IntVar(&o.window, "window", 20_000, "flat out: deliveries (events × fan-out) published but not yet received, at most")
	fs.BoolVar(&o.backlog, "backlog", false, "queue first: with NATS run by the tool, webhookd is stopped while all --count events are published, then started again, and the drain is measured")
	fs.DurationVar(&o.raw, "raw", 5*time.Second, "how long to measure the raw loopback HTTP rate first; 0 skips it")
	fs.IntVar(&o.conns, "conns", 64, "concurrent requests of the raw loopback measurement (webhookd's --workers)")
	fs.DurationVar(&o.drain, "drain-timeout", 2*time.Minute, "how long to wait for the last deliveries after publishing")
	fs.StringVar(&o.out, "out", "bench-results", "directory for the JSON result and the SVG plot")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line")
	fs.StringVar(&o.filter, "filter", "", "CEL filter given to every subscription, to measure what filters cost; it must let every event through "+
		"(events carry data.seq, data.sent and data.pad), e.g. 'has(data.seq) && data.seq >= 0'")
	fs.StringVar(&o.orderingKey, "ordering-key", "", "CEL ordering key given to every subscription, to measure what ordering costs, "+
		"e.g. 'string(int(data.seq) % 100)' for 100 keys")
	fs.BoolVar(&o.floor, "floor", false, "instead of webhookd, run in this process the least pipeline its guarantees need, built from its parts "+
		"(EVENTS, DELIVERIES, signed attempts, AUDIT records confirmed before the ack, the bbolt index), without its orchestration; "+
		"CPU and RSS are then this whole process's, receivers and publisher included")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.webhookdArgs = strings.Fields(extra)
	switch {
	case o.fanout < 1 || o.fanout > 1000:
		return o, fmt.Errorf("--fanout %d: want 1 to 1000", o.fanout)
	case o.rate < 0:
		return o, fmt.Errorf("--rate %d: want 0 (flat out) or more", o.rate)
	case o.count < 0:
		return o, fmt.Errorf("--count %d: want 0 or more", o.count)
	case o.count == 0 && o.duration <= 0:
		return o, errors.New("--duration must be positive without --count")
	case o.backlog && o.count == 0:
		return o, errors.New("--backlog needs --count (the events to queue)")
	case o.backlog && o.attach != "":
		return o, errors.New("--backlog stops and starts webhookd: not with --attach")
	case o.size < 64 || o.size > 1<<20:
		return o, fmt.Errorf("--size %d: want 64 to 1048576 bytes", o.size)
	case o.window < o.fanout:
		return o, fmt.Errorf("--window %d: want at least --fanout (%d)", o.window, o.fanout)
	case o.conns < 1 || o.conns > 4096:
		return o, fmt.Errorf("--conns %d: want 1 to 4096", o.conns)
	case o.attach != "" && (o.token == "" || o.natsURL == ""):
		return o, errors.New("--attach needs --token and --nats")
	case o.attach == "" && o.pid != 0:
		return o, errors.New("--pid applies only with --attach")
	case o.floor && (o.attach != "" || o.backlog || len(o.webhookdArgs) > 0):
		return o, errFloorOptions
	case o.floor && (o.filter != "" || o.orderingKey != ""):
		return o, errors.New("--filter and --ordering-key need webhookd's router: not with --floor")
	}
	if o.attach == "" && !o.floor && o.webhookd == "" {
		o.webhookd = findWebhookd()
		if o.webhookd == "" {
			return o, errors.New("no webhookd binary found: run make build, or pass --webhookd PATH")
		}
	}
	return o, nil
}

// findWebhookd returns webhookd next to this executable, else bin/webhookd,
// else "".
func findWebhookd() string {
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "webhookd"))
	}
	candidates = append(candidates, filepath.Join("bin", "webhookd"))
	for _, c := range candidates {
		if info, err := os.Stat(c); err == nil && !info.IsDir() {
			return c
		}
	}
	return ""
}
