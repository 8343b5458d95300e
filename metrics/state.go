package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/jetstream"
)

// stateCacheFor is how long one reading of the JetStream state serves
// scrapes: however many scrapers there are, a replica asks at most once a
// second.
const stateCacheFor = time.Second

// queue is one stage's stream and consumer.
type queue struct {
	stream, consumer, subjects string
}

var queues = [...]queue{
	{jetstream.StreamEvents, jetstream.ConsumerRouter, jetstream.EventsPrefix + ">"},
	{jetstream.StreamDeliveries, jetstream.ConsumerWorkers, jetstream.DeliveriesPrefix + ">"},
}

// stateCollector reads, on scrape, what no hook sees: the consumers'
// backlogs, the age of the oldest waiting message, each subscription's
// breaker and whether it is disabled, and the replica's readiness.
type stateCollector struct {
	m       *Metrics
	deps    Deps
	timeout time.Duration

	pending, ackPending, oldest, breaker, disabled, ready *prometheus.Desc

	mu      sync.Mutex // serializes scrapes' JetStream reads and the cache
	readAt  time.Time
	cached  []prometheus.Metric
	streams map[string]natsjs.Stream
}

func newStateCollector(m *Metrics, timeout time.Duration, deps Deps) *stateCollector {
	return &stateCollector{
		m: m, deps: deps, timeout: timeout, streams: map[string]natsjs.Stream{},
		pending: prometheus.NewDesc("webhookd_consumer_pending",
			"Messages not yet delivered to the consumer (router: events, workers: jobs).", []string{"consumer"}, nil),
		ackPending: prometheus.NewDesc("webhookd_consumer_ack_pending",
			"Messages delivered to the consumer and not yet settled (waiting retries and held-back jobs included).", []string{"consumer"}, nil),
		oldest: prometheus.NewDesc("webhookd_oldest_pending_seconds",
			"Age of the oldest event or job not yet delivered to a router or worker; 0 when none waits.", nil, nil),
		breaker: prometheus.NewDesc("webhookd_circuit_breaker_state",
			"Circuit breaker of the subscription's endpoint as this replica sees it: 0 closed, 1 half-open, 2 open.", []string{"subscription"}, nil),
		disabled: prometheus.NewDesc("webhookd_subscription_disabled",
			"1 while the dispatcher holds the subscription disabled (410 Gone, or failing for --disable-after), else 0; a pause by an operator is not a disable.", []string{"subscription"}, nil),
		ready: prometheus.NewDesc("webhookd_ready",
			"1 while this replica answers /readyz with 200 (subscription mirror caught up, NATS streams and consumers reachable), else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.oldest
	ch <- c.breaker
	ch <- c.disabled
	ch <- c.ready
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deps.Subscriptions != nil {
		for _, s := range c.deps.Subscriptions.List() {
			if s.Listen {
				continue // makes no deliveries: no breaker, never disabled
			}
			if c.deps.Endpoints != nil {
				ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue,
					breakerValue(c.deps.Endpoints.Health(s.ID).Breaker), s.ID)
			}
			ch <- prometheus.MustNewConstMetric(c.disabled, prometheus.GaugeValue, boolValue(s.Disabled()), s.ID)
		}
	}
	if c.deps.JS == nil && c.deps.Ready == nil {
		return
	}
	if now := c.m.now(); now.Sub(c.readAt) >= stateCacheFor {
		c.readAt = now
		c.cached = c.readState()
	}
	for _, m := range c.cached {
		ch <- m
	}
}

// readState asks the readiness check and JetStream, whichever is given.
// A failed JetStream read is logged and its gauges are left out.
func (c *stateCollector) readState() []prometheus.Metric {
	var out []prometheus.Metric
	if c.deps.Ready != nil {
		out = append(out, prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, boolValue(c.deps.Ready() == nil)))
	}
	if c.deps.JS != nil {
		ms, err := c.read()
		if err != nil {
			c.m.log.Warn().Err(err).Msg("reading the JetStream state for /metrics failed; its gauges are left out")
		}
		out = append(out, ms...)
	}
	return out
}

// boolValue maps true onto 1 and false onto 0.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// breakerValue maps a breaker state onto the gauge's value.
func breakerValue(state string) float64 {
	switch state {
	case endpoint.BreakerOpen:
		return 2
	case endpoint.BreakerHalfOpen:
		return 1
	}
	return 0
}

// read asks JetStream for each consumer's backlog and the oldest waiting
// message: one consumer info per stage, and a stream info and one message
// read for each stage with a backlog.
func (c *stateCollector) read() ([]prometheus.Metric, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var out []prometheus.Metric
	var oldest time.Duration
	for _, q := range queues {
		cons, err := c.deps.JS.Consumer(ctx, q.stream, q.consumer)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", q.consumer, err)
		}
		info := cons.CachedInfo()
		out = append(out,
			prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending), q.consumer),
			prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(info.NumAckPending), q.consumer))
		if info.NumPending == 0 {
			continue
		}
		// Consumers deliver in stream order: the first message after the
		// last one delivered is the oldest that waits.
		at, err := c.firstAfter(ctx, q, info.Delivered.Stream)
		if err != nil {
			return nil, err
		}
		if !at.IsZero() {
			oldest = max(oldest, c.m.now().Sub(at))
		}
	}
	return append(out, prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest.Seconds())), nil
}

// firstAfter returns the time of q's first message after stream sequence
// seq, or zero when there is none.
func (c *stateCollector) firstAfter(ctx context.Context, q queue, seq uint64) (time.Time, error) {
	s := c.streams[q.stream]
	if s == nil {
		var err error
		if s, err = c.deps.JS.Stream(ctx, q.stream); err != nil {
			return time.Time{}, fmt.Errorf("stream %s: %w", q.stream, err)
		}
		c.streams[q.stream] = s
	}
	msg, err := s.GetMsg(ctx, seq+1, natsjs.WithGetMsgSubject(q.subjects))
	switch {
	case err == nil:
		return msg.Time, nil
	case errors.Is(err, natsjs.ErrMsgNotFound): // settled meanwhile
		return time.Time{}, nil
	default:
		return time.Time{}, fmt.Errorf("stream %s: oldest message: %w", q.stream, err)
	}
}
