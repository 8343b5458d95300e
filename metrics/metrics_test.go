package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

// Every reason delivery.Classify gives maps onto the closed set, a status
// code onto its class, and anything else onto "other".
func TestOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ reason, want string }{
		{delivery.ReasonSucceeded, "succeeded"},
		{delivery.ReasonTimeout, "timeout"},
		{delivery.ReasonConnectionRefused, "connection_refused"},
		{delivery.ReasonDNS, "dns_error"},
		{delivery.ReasonTLS, "tls_error"},
		{delivery.ReasonBlockedTarget, "blocked_target"},
		{delivery.ReasonConnection, "connection_error"},
		{delivery.ReasonCancelled, "cancelled"},
		{delivery.ReasonBadRequest, "bad_request"},
		{"http_301", "http_3xx"},
		{"http_404", "http_4xx"},
		{"http_410", "http_4xx"},
		{"http_503", "http_5xx"},
		{"http_101", "http_other"},
		{"http_999", "http_other"},
		{"http_5", "other"},
		{"http_5x3", "other"},
		{"http_abc", "other"},
		{"", "other"},
		{"something_new", "other"},
	} {
		require.Equal(t, tc.want, Outcome(tc.reason), tc.reason)
		require.Contains(t, Outcomes(), Outcome(tc.reason))
	}
	require.Len(t, Statuses(), numStatuses)
	for i, st := range Statuses() {
		require.Equal(t, i, statusIndex(st), st)
	}
	require.Equal(t, -1, statusIndex(delivery.StatusRetrying), "retrying is not final")
	require.Equal(t, -1, statusIndex(delivery.StatusPending), "pending is not final")
	// The classifier's own answers for real status codes stay in the set.
	for code := 100; code < 600; code++ {
		_, reason := delivery.Classify(code, nil)
		require.Contains(t, Outcomes(), Outcome(reason), code)
		if code >= 300 {
			require.Equal(t, fmt.Sprintf("http_%dxx", code/100), Outcome(reason), code)
		}
		if code >= 200 && code < 300 {
			require.Equal(t, "succeeded", Outcome(reason))
		}
	}
}

type bundle struct {
	m    *Metrics
	eps  *endpoint.Endpoints
	subs *list
}

// list is a subscription list the test sets; the real one is the mirror.
// The ids in disabled are listed disabled by the dispatcher.
type list struct {
	ids      []string
	disabled map[string]bool
	listen   map[string]bool // listen subscriptions (webhookctl listen)
}

func (l *list) List() []subscriptions.Subscription {
	out := make([]subscriptions.Subscription, len(l.ids))
	for i, id := range l.ids {
		out[i] = subscriptions.Subscription{ID: id, Active: !l.disabled[id], Listen: l.listen[id]}
		if l.disabled[id] {
			out[i].DisabledReason = "endpoint_gone"
		}
	}
	return out
}

func setup(t *testing.T, deps Deps) *bundle {
	t.Helper()
	b := &bundle{eps: endpoint.NewEndpoints(endpoint.Config{BreakerFailures: 2, BreakerCooldown: time.Hour}, zerolog.Nop()), subs: &list{}}
	if deps.Subscriptions == nil {
		deps.Subscriptions = b.subs
	}
	deps.Endpoints = b.eps
	m, err := New(Config{EventTypes: []string{"task.completed", "task.failed"}, Version: "v1.2.3", Revision: "abc"}, deps, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	b.m = m
	return b
}

// gather returns the value of each series of the registry by name and
// labels, e.g. `webhookd_events_total{event_type="x",result="routed"}`;
// a histogram gives its count.
func (b *bundle) gather(t *testing.T) map[string]float64 {
	t.Helper()
	fams, err := b.m.gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := f.GetName()
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

func TestHooksCount(t *testing.T) {
	t.Parallel()
	b := setup(t, Deps{})
	m := b.m
	m.Event("task.completed", "routed")
	m.Event("task.completed", "routed")
	m.Event("task.failed", "no_subscriber")
	m.Event("robot.exploded", "rejected") // not in the catalog
	m.Event("task.completed", "bogus")    // not a result: ignored
	m.Attempt("sub-a", delivery.ReasonSucceeded, 30*time.Millisecond)
	m.Attempt("sub-a", "http_503", 2*time.Second)
	m.Attempt("sub-a", "http_502", time.Second)
	m.Finished("sub-a", delivery.StatusRetrying) // not final
	m.Finished("sub-a", delivery.StatusSucceeded)
	m.Finished("sub-a", delivery.StatusFailed)
	m.Finished("", delivery.StatusRejected)
	m.FilterError("sub-a")
	m.FilterError("sub-a")
	m.Attempt("sub-t", delivery.ReasonTransform, time.Millisecond)

	g := b.gather(t)
	require.Equal(t, 2.0, g[`webhookd_events_total{event_type="task.completed",result="routed"}`])
	require.Equal(t, 1.0, g[`webhookd_events_total{event_type="task.failed",result="no_subscriber"}`])
	require.Equal(t, 1.0, g[`webhookd_events_total{event_type="unknown",result="rejected"}`])
	require.Equal(t, 1.0, g[`webhookd_attempts_total{outcome="succeeded",subscription="sub-a"}`])
	require.Equal(t, 2.0, g[`webhookd_attempts_total{outcome="http_5xx",subscription="sub-a"}`])
	require.Equal(t, 3.0, g[`webhookd_attempt_duration_seconds{subscription="sub-a"}`])
	require.Equal(t, 1.0, g[`webhookd_deliveries_finished_total{status="succeeded",subscription="sub-a"}`])
	require.Equal(t, 1.0, g[`webhookd_deliveries_finished_total{status="failed",subscription="sub-a"}`])
	require.Equal(t, 1.0, g[`webhookd_deliveries_finished_total{status="rejected",subscription=""}`])
	require.Equal(t, 1.0, g[`webhookd_build_info{revision="abc",version="v1.2.3"}`])
	require.Equal(t, 2.0, g[`webhookd_filter_errors_total{subscription="sub-a"}`])
	require.Equal(t, 1.0, g[`webhookd_attempts_total{outcome="transform_error",subscription="sub-t"}`])
	for k := range g {
		require.NotContains(t, k, "robot.exploded", "only catalog types are label values")
		require.NotContains(t, k, "bogus")
		require.NotContains(t, k, "retrying")
	}
	require.Contains(t, g, "go_goroutines")
	require.Contains(t, g, "process_cpu_seconds_total")

	// Two instances in one process share nothing: no global registry.
	other := setup(t, Deps{})
	require.Zero(t, other.gather(t)[`webhookd_events_total{event_type="task.completed",result="routed"}`])
}

// The breaker gauge follows endpoint.Endpoints; a deleted subscription's
// series go at the next scrape, while one the mirror has not listed yet
// (created on another replica a moment ago) stays for pruneGrace.
func TestBreakerAndDeletedSubscriptions(t *testing.T) {
	t.Parallel()
	b := setup(t, Deps{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.m.now = func() time.Time { return now }
	b.subs.ids = []string{"sub-a", "sub-b"}
	for range 2 { // BreakerFailures 2: open
		slot, _, _ := b.eps.Acquire(endpoint.Endpoint{SubscriptionID: "sub-b", URL: "http://x"}, 1, nil)
		require.NotNil(t, slot)
		slot.Done(delivery.Result{Outcome: delivery.OutcomeFailed, Reason: "http_503", StatusCode: 503})
	}
	for _, id := range []string{"sub-a", "sub-b", "sub-new"} {
		b.m.Attempt(id, "http_503", time.Millisecond)
		b.m.Finished(id, delivery.StatusFailed)
		b.m.FilterError(id)
	}
	g := b.gather(t)
	require.Equal(t, 0.0, g[`webhookd_circuit_breaker_state{subscription="sub-a"}`])
	require.Contains(t, g, `webhookd_circuit_breaker_state{subscription="sub-a"}`)
	require.Equal(t, 2.0, g[`webhookd_circuit_breaker_state{subscription="sub-b"}`])
	require.Contains(t, g, `webhookd_attempts_total{outcome="http_5xx",subscription="sub-new"}`, "not yet in the mirror: kept")

	b.subs.ids = []string{"sub-a"} // sub-b deleted
	g = b.gather(t)
	for k := range g {
		require.NotContains(t, k, "sub-b")
	}
	require.Contains(t, g, `webhookd_attempts_total{outcome="http_5xx",subscription="sub-a"}`)
	require.Contains(t, g, `webhookd_deliveries_finished_total{status="failed",subscription="sub-a"}`)
	require.Contains(t, g, `webhookd_filter_errors_total{subscription="sub-a"}`)
	require.Contains(t, g, `webhookd_attempt_duration_seconds{subscription="sub-new"}`)

	now = now.Add(pruneGrace + time.Second) // sub-new never reached the mirror
	g = b.gather(t)
	for k := range g {
		require.NotContains(t, k, "sub-new")
	}
	require.Contains(t, g, `webhookd_attempt_duration_seconds{subscription="sub-a"}`)

	// A subscription that comes back to life counts afresh.
	b.m.Attempt("sub-b", delivery.ReasonSucceeded, time.Millisecond)
	b.subs.ids = []string{"sub-a", "sub-b"}
	require.Equal(t, 1.0, b.gather(t)[`webhookd_attempts_total{outcome="succeeded",subscription="sub-b"}`])
}

// The disabled gauge says which subscriptions the dispatcher disabled: 1
// for those, 0 for the others, a paused one included (an operator's choice
// is no alarm).
func TestDisabledGauge(t *testing.T) {
	t.Parallel()
	b := setup(t, Deps{})
	b.subs.ids = []string{"sub-ok", "sub-gone"}
	b.subs.disabled = map[string]bool{"sub-gone": true}
	g := b.gather(t)
	require.Equal(t, 1.0, g[`webhookd_subscription_disabled{subscription="sub-gone"}`])
	require.Contains(t, g, `webhookd_subscription_disabled{subscription="sub-ok"}`)
	require.Equal(t, 0.0, g[`webhookd_subscription_disabled{subscription="sub-ok"}`])

	b.subs.disabled = nil // resumed
	require.Equal(t, 0.0, b.gather(t)[`webhookd_subscription_disabled{subscription="sub-gone"}`])
}

// A listen subscription (webhookctl listen) makes no deliveries: it has no
// disabled or breaker series, so it can set off no alert.
func TestListenSubscriptionsHaveNoHealthGauges(t *testing.T) {
	t.Parallel()
	b := setup(t, Deps{})
	b.subs.ids = []string{"sub-ok", "sub-listen"}
	b.subs.listen = map[string]bool{"sub-listen": true}
	g := b.gather(t)
	require.Contains(t, g, `webhookd_subscription_disabled{subscription="sub-ok"}`)
	for k := range g {
		require.NotContains(t, k, "sub-listen")
	}
}

// The readiness gauge follows the check it is given, asked at most once a
// second; without a check it is left out.
func TestReadyGauge(t *testing.T) {
	t.Parallel()
	require.NotContains(t, setup(t, Deps{}).gather(t), "webhookd_ready")

	var notReady error
	asked := 0
	b := setup(t, Deps{Ready: func() error { asked++; return notReady }})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.m.now = func() time.Time { return now }
	require.Equal(t, 1.0, b.gather(t)["webhookd_ready"])

	notReady = errors.New("subscription mirror catching up")
	require.Equal(t, 1.0, b.gather(t)["webhookd_ready"], "within a second the last answer serves")
	require.Equal(t, 1, asked)
	now = now.Add(stateCacheFor)
	g := b.gather(t)
	require.Contains(t, g, "webhookd_ready")
	require.Equal(t, 0.0, g["webhookd_ready"])
	require.Equal(t, 2, asked)
}

// The consumer gauges and the lag come from a real JetStream: events nobody
// routed wait in EVENTS, and the lag is the age of the oldest of them.
func TestQueueGauges(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	b := setup(t, Deps{JS: ns.JS})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := b.gather(t)
	require.Equal(t, 0.0, g[`webhookd_consumer_pending{consumer="router"}`])
	require.Contains(t, g, `webhookd_consumer_ack_pending{consumer="workers"}`)
	require.Contains(t, g, `webhookd_oldest_pending_seconds`)
	require.Equal(t, 0.0, g[`webhookd_oldest_pending_seconds`], "nothing waits")

	var first time.Time
	for i := range 3 {
		ack, err := ns.JS.Publish(ctx, jetstream.EventSubject("task.completed"), []byte(`{}`))
		require.NoError(t, err)
		if i == 0 {
			s, err := ns.JS.Stream(ctx, jetstream.StreamEvents)
			require.NoError(t, err)
			msg, err := s.GetMsg(ctx, ack.Sequence)
			require.NoError(t, err)
			first = msg.Time
		}
	}
	// An hour later (the collector's clock), the oldest has waited an hour.
	later := first.Add(time.Hour)
	b.m.now = func() time.Time { return later }
	g = b.gather(t)
	require.Equal(t, 3.0, g[`webhookd_consumer_pending{consumer="router"}`])
	require.Equal(t, 0.0, g[`webhookd_consumer_pending{consumer="workers"}`])
	require.Equal(t, 3600.0, g[`webhookd_oldest_pending_seconds`])

	// Read at most once a second: within it, a scrape serves the last reading.
	_, err := ns.JS.Publish(ctx, jetstream.EventSubject("task.completed"), []byte(`{}`))
	require.NoError(t, err)
	require.Equal(t, 3.0, b.gather(t)[`webhookd_consumer_pending{consumer="router"}`])
	later = later.Add(stateCacheFor)
	require.Equal(t, 4.0, b.gather(t)[`webhookd_consumer_pending{consumer="router"}`])
}

// Without JetStream (the server gone), the queue gauges are left out and
// the rest is still served.
func TestHandlerServesWhenJetStreamFails(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	b := setup(t, Deps{JS: ns.JS})
	b.m.Event("task.completed", "routed")
	ns.NC.Close()
	srv := httptest.NewServer(b.m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	g := b.gather(t)
	require.Equal(t, 1.0, g[`webhookd_events_total{event_type="task.completed",result="routed"}`])
	require.NotContains(t, g, `webhookd_consumer_pending{consumer="router"}`)
}

// The hot-path hook against resolving the label children on every call.
func BenchmarkAttemptHook(b *testing.B) {
	m, err := New(Config{}, Deps{}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	subs := make([]string, 100)
	for i := range subs {
		subs[i] = fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
	}
	b.Run("cached", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				m.Attempt(subs[i%len(subs)], "http_503", time.Millisecond)
				m.Finished(subs[i%len(subs)], delivery.StatusSucceeded)
				i++
			}
		})
	})
	b.Run("with-label-values", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				sub := subs[i%len(subs)]
				m.attempts.WithLabelValues(sub, Outcome("http_503")).Inc()
				m.duration.WithLabelValues(sub).Observe(0.001)
				m.finished.WithLabelValues(sub, string(delivery.StatusSucceeded)).Inc()
				i++
			}
		})
	})
}

// webhookd_events_purged_total reads the purger's count at each scrape,
// and is left out without one.
func TestEventsPurgedCounter(t *testing.T) {
	t.Parallel()
	var purged uint64 = 7
	b := setup(t, Deps{EventsPurged: func() uint64 { return purged }})
	require.Equal(t, 7.0, b.gather(t)["webhookd_events_purged_total"])
	purged = 12
	require.Equal(t, 12.0, b.gather(t)["webhookd_events_purged_total"])
	require.NotContains(t, setup(t, Deps{}).gather(t), "webhookd_events_purged_total")
}
