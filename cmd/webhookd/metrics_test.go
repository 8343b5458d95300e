package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// scrape is one reading of /metrics, parsed from the text format.
type scrape struct {
	raw      string
	families map[string]*dto.MetricFamily
}

// scrapeMetrics GETs /metrics (with token, when given) over HTTP and parses it.
func (d *daemon) scrapeMetrics(t *testing.T, token string) scrape {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.api+"/metrics", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "text/plain") // the classic text format, not protobuf
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	require.NoError(t, err)
	return scrape{raw: string(raw), families: families}
}

// matches reports whether m carries every label in want.
func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// sum adds the values of name's series that carry the labels in want: the
// counter or gauge value, or a histogram's sample count.
func (s scrape) sum(name string, want map[string]string) float64 {
	var total float64
	f := s.families[name]
	for _, m := range f.GetMetric() {
		if !matches(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// has reports whether name has a series carrying the labels in want.
func (s scrape) has(name string, want map[string]string) bool {
	for _, m := range s.families[name].GetMetric() {
		if matches(m, want) {
			return true
		}
	}
	return false
}

type labels = map[string]string

// The known workload of issue 9 on one replica: 10 deliveries that succeed
// at once and 2 that fail all 4 attempts of their policy. Scraped over HTTP
// from the real daemon, the counters count it exactly; the gauges, the
// build info and the runtime collectors are there; robots cannot make new
// label values; a deleted subscription's series go away.
func TestMetricsCountAKnownWorkloadExactly(t *testing.T) {
	t.Parallel()
	// 3 retries: 4 attempts. The breaker must not hold the 8 failures back.
	d := start(t, "--retry-backoff", "50ms,50ms,50ms", "--breaker-failures", "50")
	var okHits, badHits atomic.Int32
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { okHits.Add(1) }))
	t.Cleanup(ok.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		badHits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(bad.Close)
	const queryToken = "receiver-query-token-never-logged"
	var good, failing client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+ok.URL+`","events":["task.completed"]}`, &good))
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token,
		`{"url":"`+bad.URL+`/hooks?token=`+queryToken+`","events":["task.failed"]}`, &failing))

	for i := range 10 {
		require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, fmt.Sprintf(`{"event":"task.completed","data":{"n":%d},"id":"evt-ok-%d"}`, i, i), nil))
	}
	for _, id := range []string{"evt-bad-a", "evt-bad-b"} {
		require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.failed","data":{},"id":"`+id+`"}`, nil))
	}
	// A robot's event of a type outside the catalog is rejected under a
	// fixed label: robots cannot create series.
	require.NoError(t, publishAsRobot(t, d.nats, "bogus.kind", `{}`, "evt-bogus"))

	// Everything has settled when both deliveries are failed, all ten
	// succeeded, the robot's event is rejected, the two
	// webhook.delivery_exhausted events (no subscriber) went through and
	// nothing waits in the queues.
	var s scrape
	waitFor(t, func() bool {
		s = d.scrapeMetrics(t, "")
		return s.sum("webhookd_deliveries_finished_total", labels{"status": "failed"}) >= 2 &&
			s.sum("webhookd_deliveries_finished_total", labels{"status": "succeeded"}) >= 10 &&
			s.sum("webhookd_events_total", labels{"result": "rejected"}) >= 1 &&
			s.sum("webhookd_events_total", labels{"event_type": "webhook.delivery_exhausted", "result": "no_subscriber"}) >= 2 &&
			s.has("webhookd_oldest_pending_seconds", nil) && s.sum("webhookd_oldest_pending_seconds", nil) == 0 // read at most once a second
	})
	require.EqualValues(t, 10, okHits.Load())
	require.EqualValues(t, 8, badHits.Load())

	require.Equal(t, 10.0, s.sum("webhookd_attempts_total", labels{"outcome": "succeeded"}))
	require.Equal(t, 18.0, s.sum("webhookd_attempts_total", nil), "attempts in all")
	require.Equal(t, 10.0, s.sum("webhookd_attempts_total", labels{"subscription": good.ID, "outcome": "succeeded"}))
	require.Equal(t, 8.0, s.sum("webhookd_attempts_total", labels{"subscription": failing.ID, "outcome": "http_5xx"}))
	require.Equal(t, 2.0, s.sum("webhookd_deliveries_finished_total", labels{"status": "failed"}))
	require.Equal(t, 2.0, s.sum("webhookd_deliveries_finished_total", labels{"subscription": failing.ID, "status": "failed"}))
	require.Equal(t, 10.0, s.sum("webhookd_deliveries_finished_total", labels{"subscription": good.ID, "status": "succeeded"}))
	require.Equal(t, 1.0, s.sum("webhookd_deliveries_finished_total", labels{"status": "rejected"}))
	require.Equal(t, 13.0, s.sum("webhookd_deliveries_finished_total", nil), "no retrying attempt counts as finished")
	require.Equal(t, 12.0, s.sum("webhookd_events_total", labels{"result": "routed"}))
	require.Equal(t, 10.0, s.sum("webhookd_events_total", labels{"event_type": "task.completed", "result": "routed"}))
	require.Equal(t, 2.0, s.sum("webhookd_events_total", labels{"event_type": "task.failed", "result": "routed"}))
	require.Equal(t, 1.0, s.sum("webhookd_events_total", labels{"event_type": "unknown", "result": "rejected"}))
	require.Equal(t, 2.0, s.sum("webhookd_events_total", labels{"result": "no_subscriber"}))
	require.Equal(t, 18.0, s.sum("webhookd_attempt_duration_seconds", nil), "histogram count")
	require.Equal(t, 8.0, s.sum("webhookd_attempt_duration_seconds", labels{"subscription": failing.ID}))

	for _, c := range []string{"router", "workers"} {
		require.True(t, s.has("webhookd_consumer_pending", labels{"consumer": c}), c)
		require.True(t, s.has("webhookd_consumer_ack_pending", labels{"consumer": c}), c)
	}
	require.True(t, s.has("webhookd_circuit_breaker_state", labels{"subscription": failing.ID}))
	require.Equal(t, 1.0, s.sum("webhookd_build_info", nil))
	var names []string
	for _, l := range s.families["webhookd_build_info"].GetMetric()[0].GetLabel() {
		names = append(names, l.GetName())
	}
	require.ElementsMatch(t, []string{"version", "revision"}, names)
	require.Contains(t, s.families, "go_goroutines", "the Go collector")
	require.Contains(t, s.families, "process_cpu_seconds_total", "the process collector")

	// Bounded labels: no URL, no event id, no unknown type.
	for _, leak := range []string{ok.URL, bad.URL, queryToken, "evt-ok-1", "evt-bad-a", "evt-bogus", "bogus.kind", "127.0.0.1"} {
		require.False(t, strings.Contains(s.raw, leak), "%q in /metrics", leak)
	}

	// The exhausted deliveries are logged at warn with the receiver's host
	// only: its query carries a token.
	logs := d.logs.String()
	require.False(t, strings.Contains(logs, queryToken), "the receiver's query token is logged")
	u, err := url.Parse(bad.URL)
	require.NoError(t, err)
	badHost := u.Host
	exhausted := 0
	for line := range strings.SplitSeq(logs, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil || l["message"] != "delivery.attempted" || l["delivery_status"] != "failed" {
			continue
		}
		require.Equal(t, "warn", l["level"], line)
		require.Equal(t, badHost, l["host"], line)
		exhausted++
	}
	require.Equal(t, 2, exhausted)

	// A deleted subscription's series go at the next scrape; the others stay.
	require.Equal(t, 204, d.call(t, "DELETE", "/v1/subscriptions/"+failing.ID, d.token, "", nil))
	s = d.scrapeMetrics(t, "")
	require.False(t, strings.Contains(s.raw, failing.ID), "the deleted subscription's series are still there")
	require.Equal(t, 10.0, s.sum("webhookd_attempts_total", labels{"subscription": good.ID}))
	require.True(t, s.has("webhookd_circuit_breaker_state", labels{"subscription": good.ID}))
}

// /metrics needs no token by default (above); --metrics-require-token asks
// for the admin token.
func TestMetricsRequireToken(t *testing.T) {
	t.Parallel()
	d := start(t, "--metrics-require-token")
	resp, err := http.Get(d.api + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	s := d.scrapeMetrics(t, d.token)
	require.Equal(t, 1.0, s.sum("webhookd_build_info", nil))
}

// A subscription disabled by a 410 Gone is logged at warn with its host,
// never the path or query.
func TestDisabledSubscriptionLogsTheHostOnly(t *testing.T) {
	t.Parallel()
	d := start(t)
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) }))
	t.Cleanup(gone.Close)
	const queryToken = "gone-query-token-never-logged"
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token,
		`{"url":"`+gone.URL+`/secret-path?token=`+queryToken+`","events":["maintenance.due"]}`, &sub))
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"maintenance.due","data":{}}`, nil))
	var line map[string]any
	waitFor(t, func() bool {
		for l := range strings.SplitSeq(d.logs.String(), "\n") {
			if json.Unmarshal([]byte(l), &line) == nil && line["message"] == "subscription.disabled" {
				return true
			}
		}
		return false
	})
	u, err := url.Parse(gone.URL)
	require.NoError(t, err)
	require.Equal(t, "warn", line["level"])
	require.Equal(t, u.Host, line["host"])
	require.False(t, strings.Contains(d.logs.String(), queryToken), "the receiver's query token is logged")
	require.False(t, strings.Contains(d.logs.String(), "secret-path"), "the receiver's path is logged")
}

// What the alerts in deploy/ read: a subscription the dispatcher disabled
// (a 410 Gone) reads 1 on webhookd_subscription_disabled, a healthy one 0,
// and a ready replica reads 1 on webhookd_ready.
func TestMetricsShowDisabledSubscriptionsAndReadiness(t *testing.T) {
	t.Parallel()
	d := start(t)
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) }))
	t.Cleanup(gone.Close)
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(ok.Close)
	var goneSub, okSub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+gone.URL+`","events":["maintenance.due"]}`, &goneSub))
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+ok.URL+`","events":["task.created"]}`, &okSub))

	s := d.scrapeMetrics(t, "")
	require.Equal(t, 1.0, s.sum("webhookd_ready", nil))
	require.True(t, s.has("webhookd_subscription_disabled", labels{"subscription": goneSub.ID}))
	require.Equal(t, 0.0, s.sum("webhookd_subscription_disabled", labels{"subscription": goneSub.ID}))

	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"maintenance.due","data":{}}`, nil))
	waitFor(t, func() bool {
		s = d.scrapeMetrics(t, "")
		return s.sum("webhookd_subscription_disabled", labels{"subscription": goneSub.ID}) == 1
	})
	require.True(t, s.has("webhookd_subscription_disabled", labels{"subscription": okSub.ID}))
	require.Equal(t, 0.0, s.sum("webhookd_subscription_disabled", labels{"subscription": okSub.ID}))
	require.Equal(t, 1.0, s.sum("webhookd_ready", nil))
}
