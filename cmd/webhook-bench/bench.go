package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/jetstream"
)

// eventType is the type every benchmark event has.
const eventType = "task.completed"

// bench is one run.
type bench struct {
	opts     options
	out      io.Writer
	progress io.Writer

	dir       string
	target    *target
	receivers []*receiver
	nc        *nats.Conn
	ns        *server.Server // with --backlog or --floor: the NATS server, run here
}

func (b *bench) close() {
	if b.nc != nil {
		b.nc.Close()
	}
	if b.target != nil && b.target.stop != nil {
		_ = b.target.stop()
	}
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
	for _, r := range b.receivers {
		r.close()
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.out, format+"\n", args...)
}

// consumers reads the shared consumers' state from webhookd's /v1/status
// (the bench's own NATS user, a robot's, may not use the JetStream API).
func (b *bench) consumers(ctx context.Context, api *client.Client) []consumerState {
	if api == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	st, err := api.Status(ctx)
	if err != nil {
		return nil
	}
	var cs []consumerState
	for _, c := range st.Consumers {
		cs = append(cs, consumerState{Name: c.Name, Pending: c.Pending, InFlight: c.InFlight, Redelivered: c.Redelivered})
	}
	return cs
}

func (b *bench) run(ctx context.Context) (*Result, error) {
	o := b.opts
	res := &Result{Started: time.Now().UTC(), Args: os.Args[1:], Fanout: o.fanout, Rate: o.rate, Size: o.size,
		Count: o.count, Backlog: o.backlog, Floor: o.floor, LoadAvgStart: loadAvg(), CPUs: numCPU()}
	for range o.fanout {
		r, err := startReceiver()
		if err != nil {
			return nil, err
		}
		b.receivers = append(b.receivers, r)
	}
	if o.raw > 0 {
		rate, err := b.rawRate(ctx)
		if err != nil {
			return nil, err
		}
		res.RawPerSec = rate
		b.logf("raw loopback HTTP: %.0f requests/s (%d connections, %d-byte events, both signatures verified)", rate, o.conns, o.size)
	}

	if err := b.startTarget(ctx); err != nil {
		return nil, err
	}
	var api *client.Client // nil with --floor: it has its own subscriptions and no admin API
	var err error
	if !o.floor {
		if api, err = client.New(b.target.api, b.target.token); err != nil {
			return nil, err
		}
		for i, r := range b.receivers {
			sub, err := api.CreateSubscription(ctx, client.SubscriptionInput{URL: r.url, Events: []string{eventType},
				Description: "webhook-bench receiver " + strconv.Itoa(i), Filter: o.filter, OrderingKey: o.orderingKey})
			if err != nil {
				return nil, fmt.Errorf("create subscription: %w", err)
			}
			r.secret.Store(&sub.Secret)
			defer func(id string) { // leave an attached webhookd as it was
				if b.opts.attach != "" {
					_ = api.DeleteSubscription(context.WithoutCancel(ctx), id)
				}
			}(sub.ID)
		}
	}
	b.nc, err = nats.Connect(b.target.nats, nats.Name("webhook-bench"))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", b.target.nats, err)
	}
	var ackErrs atomic.Int64
	js, err := natsjs.New(b.nc, natsjs.WithPublishAsyncErrHandler(func(natsjs.JetStream, *nats.Msg, error) { ackErrs.Add(1) }),
		natsjs.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if b.target.pid != 0 {
		// Idle: subscriptions mirrored, nothing to do yet.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
		if ps, err := readProc(b.target.pid); err == nil {
			res.IdleRSSMiB = mib(ps.RSS)
		}
	}
	if err := b.load(ctx, js, api, &ackErrs, res); err != nil {
		return nil, err
	}
	res.LoadAvgEnd = loadAvg()
	if b.target.stop != nil {
		if err := b.target.stop(); err != nil {
			b.logf("warning: stopping the target: %v", err)
		}
		b.target.stop = nil
	}
	if err := res.write(o.out, b.target.logPath); err != nil {
		return nil, err
	}
	res.print(b.out)
	return res, nil
}

func (b *bench) startTarget(ctx context.Context) error {
	o := b.opts
	if o.attach != "" {
		b.target = &target{api: o.attach, token: o.token, nats: o.natsURL, pid: o.pid}
		return nil
	}
	dir, err := os.MkdirTemp("", "webhook-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	b.dir = dir
	if o.floor {
		return b.startFloor(ctx)
	}
	natsURL := ""
	if o.backlog {
		// The events must queue while webhookd is down: NATS runs here.
		if b.ns, err = startNATS(filepath.Join(dir, "nats")); err != nil {
			return err
		}
		natsURL = b.ns.ClientURL()
	}
	t, err := startWebhookd(ctx, o.webhookd, o.webhookdArgs, dir, natsURL)
	if err != nil {
		return err
	}
	b.target = t
	b.logf("webhookd %s started (pid %d, data in %s)", o.webhookd, t.pid, dir)
	return nil
}

// startFloor runs NATS and the floor pipeline in this process, measured
// as the target.
func (b *bench) startFloor(ctx context.Context) error {
	subs, err := floorSubscriptions(b.receivers)
	if err != nil {
		return err
	}
	if b.ns, err = startNATS(filepath.Join(b.dir, "nats")); err != nil {
		return err
	}
	f, err := startFloor(ctx, b.ns.ClientURL(), b.dir, subs, b.opts.conns)
	if err != nil {
		return err
	}
	b.target = &target{nats: b.ns.ClientURL(), pid: os.Getpid(), stop: f.stop}
	b.logf("floor pipeline started in this process (pid %d, data in %s)", os.Getpid(), b.dir)
	return nil
}

// load publishes the events and waits for their deliveries, sampling the
// target every second and printing a progress line.
func (b *bench) load(ctx context.Context, js natsjs.JetStream, api *client.Client, ackErrs *atomic.Int64, res *Result) error {
	o := b.opts
	start := time.Now()
	col := newCollector(start)
	for _, r := range b.receivers {
		r.col.Store(col)
	}
	var cpu0 time.Duration
	if b.target.pid != 0 {
		ps, err := readProc(b.target.pid)
		if err != nil {
			return err
		}
		cpu0 = ps.CPU
	}
	if o.backlog {
		// Down while the events queue; CPU and RSS are measured from the
		// restart on.
		if err := b.target.stop(); err != nil {
			return fmt.Errorf("stop webhookd before queueing: %w", err)
		}
		b.target.stop, b.target.pid = nil, 0
	}
	var published atomic.Int64
	pubDone := make(chan error, 1)
	var pubEnd atomic.Int64
	go func() {
		err := b.publish(ctx, js, col, &published)
		if err == nil {
			select { // published means acknowledged by the stream
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				err = errors.New("publish: acknowledgements missing after a minute")
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		pubEnd.Store(time.Now().UnixNano())
		pubDone <- err
	}()

	fan := int64(o.fanout)
	var released time.Time
	var pubErr error
	publishing := true
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastCPU := cpu0
	var deadline time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case pubErr = <-pubDone:
			publishing = false
			if pubErr != nil {
				return pubErr
			}
			if o.backlog {
				released = time.Now()
				t, err := startWebhookd(ctx, o.webhookd, o.webhookdArgs, b.dir, b.ns.ClientURL())
				if err != nil {
					return fmt.Errorf("start webhookd to drain: %w", err)
				}
				b.target = t
				if api, err = client.New(t.api, t.token); err != nil {
					return err
				}
				ps, err := readProc(t.pid)
				if err != nil {
					return err
				}
				cpu0, lastCPU = ps.CPU, ps.CPU
				b.logf("webhookd started again to drain %d events (pid %d)", published.Load(), t.pid)
			}
			deadline = time.Now().Add(o.drain)
			continue
		case now := <-tick.C:
			if b.target.pid != 0 {
				if ps, err := readProc(b.target.pid); err == nil {
					col.sample(now, ps.RSS, ps.CPU-lastCPU)
					lastCPU = ps.CPU
				}
			}
			col.sampleConsumers(now, b.consumers(ctx, api))
			if !o.quiet {
				fmt.Fprintf(b.progress, "\r%5.0fs  published %9d  delivered %9d  outstanding %8d  last-second p99 %7.2f ms   ",
					now.Sub(start).Seconds(), published.Load(), col.delivered.Load(),
					published.Load()*fan-col.delivered.Load(), float64(col.recentP99(now))/1000)
			}
		}
		if !publishing {
			if col.delivered.Load() >= published.Load()*fan {
				break
			}
			if time.Now().After(deadline) {
				b.logf("\nwarning: %d deliveries missing after waiting %s", published.Load()*fan-col.delivered.Load(), o.drain)
				break
			}
		}
	}
	if !o.quiet {
		fmt.Fprintln(b.progress)
	}
	end := time.Now()
	pubStop := time.Unix(0, pubEnd.Load())
	res.fill(col, published.Load(), ackErrs.Load(), start, pubStop, released)
	if b.target.pid != 0 {
		ps, err := readProc(b.target.pid)
		if err != nil {
			return err
		}
		res.CPUSeconds = (ps.CPU - cpu0).Seconds()
		res.PeakRSSMiB, res.EndRSSMiB, res.EndRSSFileMiB = mib(ps.PeakRSS), mib(ps.RSS), mib(ps.RSSFile)
		if res.Delivered > 0 {
			res.CPUPerDeliveryUS = res.CPUSeconds * 1e6 / float64(res.Delivered)
		}
		since := start
		if o.backlog {
			since = released // webhookd ran from its restart on
		}
		res.CPUCores = res.CPUSeconds / end.Sub(since).Seconds()
	}
	return nil
}

// publish publishes events at the rate, or flat out within the window,
// for the duration or the count.
func (b *bench) publish(ctx context.Context, js natsjs.JetStream, col *collector, published *atomic.Int64) error {
	o := b.opts
	subject := jetstream.EventSubject(eventType)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	fan := int64(o.fanout)
	var seq uint64
	for {
		now := time.Now()
		if o.count > 0 && int(seq) >= o.count || o.count == 0 && now.Sub(start) >= o.duration {
			return nil
		}
		// How many may go now.
		n := int64(256)
		if o.rate > 0 {
			n = int64(now.Sub(start).Seconds()*float64(o.rate)) - int64(seq)
		} else if !o.backlog {
			n = min(n, (int64(o.window)-(published.Load()*fan-col.delivered.Load()))/fan)
		}
		if o.count > 0 {
			n = min(n, int64(o.count)-int64(seq))
		}
		if n <= 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
			continue
		}
		for range n {
			seq++
			if _, err := js.PublishAsync(subject, eventData(seq, time.Now(), o.size), natsjs.WithStallWait(time.Minute)); err != nil {
				return fmt.Errorf("publish event %d: %w", seq, err)
			}
		}
		published.Add(n)
		col.published(now, int(n))
	}
}

// rawRate measures plain HTTP POSTs to the receivers, with the client
// settings of webhookd's deliverer and a body and headers like its own,
// from o.conns goroutines, and returns requests per second.
func (b *bench) rawRate(ctx context.Context) (float64, error) {
	o := b.opts
	secret, err := signature.NewSecret()
	if err != nil {
		return 0, err
	}
	job := delivery.Job{ID: "raw-delivery", EventID: "raw-event", Event: eventType, EventTime: time.Now(), SubscriptionID: "raw",
		Attempt: 1, Data: eventData(0, time.Now(), o.size)}
	body := job.Envelope()
	std, err := signature.SignStandard([]string{secret}, job.ID, time.Now(), body)
	if err != nil {
		return 0, err
	}
	header := http.Header{}
	header.Set("Content-Type", "application/json")
	header.Set("User-Agent", "webhookd/1")
	header.Set(delivery.HeaderSignature, signature.Sign(secret, body))
	header.Set(delivery.HeaderEvent, job.Event)
	header.Set(delivery.HeaderSubscription, job.SubscriptionID)
	header.Set(delivery.HeaderDelivery, job.ID)
	header.Set(delivery.HeaderAttempt, "1")
	header.Set(delivery.HeaderStandardID, job.ID)
	header.Set(delivery.HeaderStandardTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
	header.Set(delivery.HeaderStandardSignature, std)
	for _, r := range b.receivers {
		r.secret.Store(&secret)
	}
	// delivery.NewDeliverer's transport settings, without its guard.
	c := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2: true, MaxIdleConns: 1024, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	defer c.CloseIdleConnections()
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(o.raw)
	for i := range o.conns {
		wg.Add(1)
		go func(url string) {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				if err == nil {
					req.Header = header.Clone()
					var resp *http.Response
					if resp, err = c.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode/100 != 2 {
							err = fmt.Errorf("receiver answered %s", resp.Status)
						}
					}
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		}(b.receivers[i%len(b.receivers)].url)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if firstErr != nil {
		return 0, fmt.Errorf("raw loopback measurement: %w", firstErr)
	}
	if n.Load() == 0 {
		return 0, errors.New("raw loopback measurement: no request completed")
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}
