package metrics

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/subscriptions"
)

// Config configures Metrics.
type Config struct {
	// EventTypes is the catalog: the event_type label takes these values
	// and UnknownEventType, nothing else.
	EventTypes []string
	// Version and Revision label webhookd_build_info ("unknown" when empty).
	Version, Revision string
	// StateTimeout bounds the JetStream reads of one scrape (default 2s).
	StateTimeout time.Duration
}

// Subscriptions lists the subscriptions this replica knows (its mirror).
type Subscriptions interface {
	List() []subscriptions.Subscription
}

// Deps are what the gauges read on scrape. A nil one leaves its gauges out:
// JS the consumer and lag gauges; Subscriptions the breaker and disabled
// gauges and the removal of deleted subscriptions' series; Endpoints the
// breaker gauge; Ready the readiness gauge.
type Deps struct {
	JS            natsjs.JetStream
	Subscriptions Subscriptions
	Endpoints     *endpoint.Endpoints
	// Ready is the replica's readiness check, the one /readyz answers by
	// (nil error: ready). It is asked at most once a second, like JS.
	Ready func() error
	// EventsPurged counts the routed events this replica's purger removed
	// from EVENTS (jetstream.Purger.Purged); nil leaves the counter out.
	EventsPurged func() uint64
	// StoreWritable reports whether the embedded NATS store accepts writes
	// (webhookd_store_writable); nil leaves the gauge out.
	StoreWritable func() bool
}

var (
	_ dispatcher.Observer         = (*Metrics)(nil)
	_ dispatcher.OrderingObserver = (*Metrics)(nil)
)

// Metrics holds one process's collectors and counts what the dispatcher
// reports through its hooks (Event, Attempt, Finished, FilterError). It is safe for
// concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	log       zerolog.Logger
	now       func() time.Time
	events    map[string]*[3]prometheus.Counter // by event type, UnknownEventType included; read-only after New
	attempts  *prometheus.CounterVec
	finished  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	filterErr *prometheus.CounterVec
	rejected  prometheus.Counter // finished{subscription="", status="rejected"}
	// keyErrors counts events delivered unordered because their ordering
	// key failed, by subscription.
	keyErrors *prometheus.CounterVec
	subs      sync.Map      // subscription id → *subSeries
	subsList  Subscriptions // nil: no pruning
	pruneMu   sync.Mutex
	state     *stateCollector
}

// subSeries are one subscription's series, resolved once.
type subSeries struct {
	created   time.Time
	seen      bool // in the mirror at a scrape; guarded by Metrics.pruneMu
	duration  prometheus.Observer
	attempts  [numOutcomes]atomic.Pointer[prometheus.Counter]
	finished  [numStatuses]atomic.Pointer[prometheus.Counter]
	filterErr atomic.Pointer[prometheus.Counter]
}

// New returns the metrics with a registry of their own.
func New(cfg Config, deps Deps, log zerolog.Logger) (*Metrics, error) {
	if cfg.StateTimeout <= 0 {
		cfg.StateTimeout = 2 * time.Second
	}
	if cfg.Version == "" {
		cfg.Version = "unknown"
	}
	if cfg.Revision == "" {
		cfg.Revision = "unknown"
	}
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		log:      log.With().Str("component", "metrics").Logger(),
		now:      time.Now,
		subsList: deps.Subscriptions,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_attempts_total",
			Help: "HTTP delivery attempts recorded, by subscription and outcome (succeeded or the failure reason).",
		}, []string{"subscription", "outcome"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_deliveries_finished_total",
			Help: "Deliveries that left the queue, by subscription and status (succeeded, failed, cancelled, paused, rejected).",
		}, []string{"subscription", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "webhookd_attempt_duration_seconds",
			Help: "Duration of recorded HTTP delivery attempts, by subscription.",
			// From a fast local receiver up to the longest timeouts.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"subscription"}),
		filterErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_filter_errors_total",
			Help: "Events on which a subscription's filter failed (a missing field, the cost limit): each counted as no match, by subscription.",
		}, []string{"subscription"}),
	}
	m.keyErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhookd_ordering_key_errors_total",
		Help: "Events whose ordering key expression failed for a subscription (a missing field, not a string): delivered unordered.",
	}, []string{"subscription"})
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhookd_events_total",
		Help: "Events read from EVENTS, by type (catalog types; others are \"unknown\") and result (routed, no_subscriber, rejected).",
	}, []string{"event_type", "result"})
	m.events = make(map[string]*[3]prometheus.Counter, len(cfg.EventTypes)+1)
	for _, t := range append([]string{UnknownEventType}, cfg.EventTypes...) {
		var cs [3]prometheus.Counter
		for i, r := range Results() {
			cs[i] = events.WithLabelValues(t, r)
		}
		m.events[t] = &cs
	}
	m.rejected = m.finished.WithLabelValues("", string(delivery.StatusRejected))
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "webhookd_build_info",
		Help:        "Always 1; its labels name the running build.",
		ConstLabels: prometheus.Labels{"version": cfg.Version, "revision": cfg.Revision},
	})
	buildInfo.Set(1)
	m.state = newStateCollector(m, cfg.StateTimeout, deps)
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		events, m.attempts, m.finished, m.duration, m.filterErr, buildInfo, m.state, m.keyErrors,
	}
	if purged := deps.EventsPurged; purged != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhookd_events_purged_total",
			Help: "Routed events this replica purged from EVENTS once past their retention (other replicas purge too: sum them).",
		}, func() float64 { return float64(purged()) }))
	}
	if writable := deps.StoreWritable; writable != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhookd_store_writable",
			Help: "1 while the embedded NATS store accepts writes; 0 while it refuses new events (disk below --store-min-free, or a failed write) until space returns.",
		}, func() float64 {
			if writable() {
				return 1
			}
			return 0
		}))
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Handler serves the registry in the Prometheus text format (or protobuf,
// when the scraper asks for it). A collector that fails is logged and left
// out; the rest is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(prometheus.GathererFunc(m.gather), promhttp.HandlerOpts{
		ErrorLog: errorLog{m.log}, ErrorHandling: promhttp.ContinueOnError, Registry: m.reg,
	})
}

// gather removes the series of deleted subscriptions, then gathers: the
// removal comes first, so a scrape never shows a subscription deleted
// before it began.
func (m *Metrics) gather() ([]*dto.MetricFamily, error) {
	if m.subsList != nil {
		subs := m.subsList.List()
		live := make(map[string]bool, len(subs))
		for _, s := range subs {
			live[s.ID] = true
		}
		m.prune(live)
	}
	return m.reg.Gather()
}

// errorLog adapts the logger to promhttp.Logger.
type errorLog struct{ log zerolog.Logger }

func (l errorLog) Println(v ...any) { l.log.Warn().Msg(fmt.Sprintln(v...)) }

// Event counts an event of eventType with its result: "routed",
// "no_subscriber" or "rejected" (other results are ignored). A type outside
// the catalog counts as UnknownEventType.
func (m *Metrics) Event(eventType, result string) {
	i := resultIndex(result)
	if i < 0 {
		return
	}
	cs, ok := m.events[eventType]
	if !ok {
		cs = m.events[UnknownEventType]
	}
	cs[i].Inc()
}

// Attempt counts a recorded attempt of subscription subID: its outcome
// (Outcome(reason)) and its duration.
func (m *Metrics) Attempt(subID, reason string, took time.Duration) {
	s := m.series(subID)
	i := outcomeIndex(reason)
	counter(&s.attempts[i], m.attempts, subID, outcomes[i]).Inc()
	s.duration.Observe(took.Seconds())
}

// Finished counts a delivery of subscription subID that settled with a
// final status (see Statuses; pending and retrying are ignored). A rejected
// event has no subscription: subID is then "".
func (m *Metrics) Finished(subID string, status delivery.Status) {
	i := statusIndex(status)
	switch {
	case i < 0:
		return
	case subID == "" && status == delivery.StatusRejected:
		m.rejected.Inc()
		return
	}
	s := m.series(subID)
	counter(&s.finished[i], m.finished, subID, string(status)).Inc()
}

// FilterError counts an event on which subscription subID's filter failed.
func (m *Metrics) FilterError(subID string) {
	s := m.series(subID)
	if c := s.filterErr.Load(); c != nil {
		(*c).Inc()
		return
	}
	c := m.filterErr.WithLabelValues(subID) // the same child for every caller
	s.filterErr.Store(&c)
	c.Inc()
}

// series returns subID's series, creating them on first use.
func (m *Metrics) series(subID string) *subSeries {
	if s, ok := m.subs.Load(subID); ok {
		return s.(*subSeries)
	}
	s, _ := m.subs.LoadOrStore(subID, &subSeries{created: m.now(), duration: m.duration.WithLabelValues(subID)})
	return s.(*subSeries)
}

// counter returns the child in slot, resolving it from vec on first use.
func counter(slot *atomic.Pointer[prometheus.Counter], vec *prometheus.CounterVec, subID, label string) prometheus.Counter {
	if c := slot.Load(); c != nil {
		return *c
	}
	c := vec.WithLabelValues(subID, label) // the same child for every caller
	slot.Store(&c)
	return c
}

// pruneGrace is how long the series of a subscription this replica's mirror
// has never listed are kept: one created on another replica a moment ago
// reaches the mirror within a second; one deleted before it ever did is
// dropped after this.
const pruneGrace = time.Minute

// prune removes the series of subscriptions that are not live: gone from
// the mirror after being in it, or never in it for pruneGrace.
func (m *Metrics) prune(live map[string]bool) {
	m.pruneMu.Lock()
	defer m.pruneMu.Unlock()
	now := m.now()
	m.subs.Range(func(k, v any) bool {
		id, s := k.(string), v.(*subSeries)
		switch {
		case live[id]:
			s.seen = true
		case s.seen || now.Sub(s.created) > pruneGrace:
			m.subs.Delete(id)
			match := prometheus.Labels{"subscription": id}
			m.attempts.DeletePartialMatch(match)
			m.finished.DeletePartialMatch(match)
			m.duration.DeletePartialMatch(match)
			m.filterErr.DeletePartialMatch(match)
			m.keyErrors.DeletePartialMatch(match)
		}
		return true
	})
}
