package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/internal/daemontest"
)

var (
	dashboardFile    = filepath.Join("grafana", "webhookd-dashboard.json")
	rulesFile        = filepath.Join("prometheus", "webhookd-alerts.yml")
	rulesTestFile    = filepath.Join("prometheus", "webhookd-alerts.test.yml")
	observabilityDoc = filepath.Join("..", "docs", "observability.md")
)

// promtool returns the path of Prometheus's promtool. Outside CI a machine
// without it skips the test; in CI (CI set, as .ci/run sets it) a missing
// promtool fails it, so the rules are never left unchecked there.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("promtool is not on PATH and CI is set: install it (Debian: apt-get install -y prometheus); .ci/run does")
	}
	t.Skip("promtool is not on PATH: install it (Debian: apt-get install -y prometheus) to check the alert rules")
	return ""
}

// runPromtool runs promtool with args in dir, bounded, and returns its
// output and error.
func runPromtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The rules file is valid: promtool check rules parses every expression
// and template.
func TestPromtoolCheckRules(t *testing.T) {
	t.Parallel()
	out, err := runPromtool(t, ".", "check", "rules", rulesFile)
	require.NoError(t, err, "promtool check rules %s:\n%s", rulesFile, out)
	require.Contains(t, out, "SUCCESS")
}

// The alerts fire when and only when they should: promtool test rules runs
// the unit tests in webhookd-alerts.test.yml (a growing and a flat backlog,
// an old pending job, a disabled subscription, breakers open, half-open
// and closed, no replica ready).
func TestPromtoolTestRules(t *testing.T) {
	t.Parallel()
	out, err := runPromtool(t, filepath.Dir(rulesTestFile), "test", "rules", filepath.Base(rulesTestFile))
	require.NoError(t, err, "promtool test rules %s:\n%s", rulesTestFile, out)
	require.Contains(t, out, "SUCCESS")
}

// Every query of the dashboard is valid PromQL: each, with Grafana's
// interval variables set to 5m, goes through promtool as a recording rule.
func TestDashboardQueriesAreValidPromQL(t *testing.T) {
	t.Parallel()
	exprs := dashboardExprs(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	grafanaVars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
	for i, e := range exprs {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard_query_%d", i), Expr: grafanaVars.Replace(e)})
	}
	raw, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dashboard-rules.yml"), raw, 0o600))
	out, err := runPromtool(t, dir, "check", "rules", "dashboard-rules.yml")
	require.NoError(t, err, "the dashboard's queries as rules:\n%s\n%s", raw, out)
}

// alertRule is one rule of the rules file.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// alertRules reads the rules file.
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &f))
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// dashboardExprs returns every PromQL expression of the dashboard: each
// "expr" at any depth (panels, rows' panels, template variables).
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.Unmarshal(raw, &doc))
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	require.NotEmpty(t, exprs, "the dashboard has no queries")
	return exprs
}

// The alerts the issue asks for are there, each with a severity, a summary
// and a runbook section that exists in docs/observability.md.
func TestAlertRulesHaveRunbooks(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(observabilityDoc)
	require.NoError(t, err)
	anchors := map[string]bool{}
	for line := range strings.SplitSeq(string(doc), "\n") {
		if strings.HasPrefix(line, "#") {
			anchors[slug(strings.TrimLeft(line, "# "))] = true
		}
	}
	var names []string
	for _, r := range alertRules(t) {
		names = append(names, r.Alert)
		require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
		require.NotEmpty(t, r.Annotations["summary"], r.Alert)
		page, anchor, ok := strings.Cut(r.Annotations["runbook"], "#")
		require.True(t, ok, "%s: runbook annotation %q: want docs/observability.md#section", r.Alert, r.Annotations["runbook"])
		require.Equal(t, "docs/observability.md", page, r.Alert)
		require.True(t, anchors[anchor], "%s: docs/observability.md has no section #%s", r.Alert, anchor)
	}
	require.ElementsMatch(t, []string{
		"WebhookdConsumerBacklogGrowing", "WebhookdOldestPendingTooOld", "WebhookdSubscriptionDisabled",
		"WebhookdCircuitBreakerOpen", "WebhookdNoReplicaReady",
	}, names)
}

// slug is GitHub's anchor of a Markdown heading: lower case, punctuation
// dropped, spaces as dashes.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// The oldest-pending alert's threshold is what a whole delivery can take
// under the default retry policy: the retry delays plus every attempt at
// its timeout. A change of the defaults fails this until the rule (and its
// comment, the docs and the dashboard's threshold line) follow.
func TestOldestPendingThreshold(t *testing.T) {
	t.Parallel()
	def := config.Default()
	want := def.RetryBackoff.Longest() + time.Duration(def.RetryBackoff.Attempts())*def.DeliveryTimeout
	require.Equal(t, 150*time.Second, want, "the defaults changed: update the rule, its comment, docs/observability.md and the dashboard")

	re := regexp.MustCompile(`^max\(webhookd_oldest_pending_seconds\) > (\d+)$`)
	var got []string
	for _, r := range alertRules(t) {
		if r.Alert == "WebhookdOldestPendingTooOld" {
			got = re.FindStringSubmatch(strings.TrimSpace(r.Expr))
			require.NotNil(t, got, "expr %q: want max(webhookd_oldest_pending_seconds) > SECONDS", r.Expr)
		}
	}
	require.NotNil(t, got, "no WebhookdOldestPendingTooOld rule")
	secs, err := strconv.Atoi(got[1])
	require.NoError(t, err)
	require.Equal(t, want, time.Duration(secs)*time.Second, "the threshold")

	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"value": 150`, "the dashboard's threshold line")
}

// promqlRefs is what one PromQL expression names.
type promqlRefs struct {
	// metrics maps each metric name selected to the label names its
	// matchers use.
	metrics map[string][]string
	// grouping are the label names of by, without, on, ignoring,
	// group_left and group_right clauses.
	grouping []string
}

var (
	promqlString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlToken  = regexp.MustCompile(`\$\{?\w+\}?|[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*|\S`)
	promqlIdent  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	// promqlGrouping are the keywords followed by a list of label names.
	promqlGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	// promqlKeywords are the other words that name no metric.
	promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true}
)

// parsePromQL finds the metric names and label names of expr. It reads
// the subset of PromQL dashboards and alerts use: selectors with matchers,
// functions and aggregations (by/without before or after the arguments),
// binary operators with on/ignoring/group_left/group_right, ranges and
// subqueries (skipped, with any Grafana variables in them). A word
// followed by "(" is a function, or by "by"/"without" an aggregation.
func parsePromQL(expr string) (promqlRefs, error) {
	toks := promqlToken.FindAllString(promqlString.ReplaceAllString(expr, `""`), -1)
	refs := promqlRefs{metrics: map[string][]string{}}
	// closing returns the index of the token that closes the one at i.
	closing := func(i int, open, close string) (int, error) {
		for j := i + 1; j < len(toks); j++ {
			switch toks[j] {
			case close:
				return j, nil
			case open:
				return 0, fmt.Errorf("nested %q in %q", open, expr)
			}
		}
		return 0, fmt.Errorf("unclosed %q in %q", open, expr)
	}
	idents := func(from, to int) []string {
		var out []string
		for _, tok := range toks[from:to] {
			if promqlIdent.MatchString(tok) {
				out = append(out, tok)
			}
		}
		return out
	}
	for i := 0; i < len(toks); i++ {
		tok, next := toks[i], ""
		if i+1 < len(toks) {
			next = toks[i+1]
		}
		switch {
		case tok == "[": // a range or a subquery's range: durations only
			j, err := closing(i, "[", "]")
			if err != nil {
				return refs, err
			}
			i = j
		case tok == "{":
			return refs, fmt.Errorf("a selector without a metric name in %q", expr)
		case strings.HasPrefix(tok, "$"):
			return refs, fmt.Errorf("variable %s outside a range in %q", tok, expr)
		case promqlGrouping[tok]:
			if next != "(" {
				continue // group_left without labels
			}
			j, err := closing(i+1, "(", ")")
			if err != nil {
				return refs, err
			}
			refs.grouping = append(refs.grouping, idents(i+2, j)...)
			i = j
		case promqlKeywords[tok], !promqlIdent.MatchString(tok):
		case next == "(" || next == "by" || next == "without": // a function or an aggregation
		default:
			var labels []string
			if next == "{" {
				j, err := closing(i+1, "{", "}")
				if err != nil {
					return refs, err
				}
				labels = idents(i+2, j)
				i = j
			}
			refs.metrics[tok] = append(refs.metrics[tok], labels...)
		}
	}
	return refs, nil
}

// The parser finds what the expressions name, and nothing else.
func TestParsePromQL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr     string
		metrics  map[string][]string
		grouping []string
	}{
		{`histogram_quantile(0.99, sum by (le) (rate(webhookd_attempt_duration_seconds_bucket[$__rate_interval])))`,
			map[string][]string{"webhookd_attempt_duration_seconds_bucket": nil}, []string{"le"}},
		{`topk(10, sum by (subscription) (rate(webhookd_attempts_total{outcome!="succeeded", subscription=~"a|b"}[5m])) > 0)`,
			map[string][]string{"webhookd_attempts_total": {"outcome", "subscription"}}, []string{"subscription"}},
		{"max by (subscription) (x_state) >= 1\n  unless on (subscription)\nmax(y_disabled) by (subscription) == 1",
			map[string][]string{"x_state": nil, "y_disabled": nil}, []string{"subscription", "subscription", "subscription"}},
		{`absent(webhookd_ready == 1) or vector(0)`, map[string][]string{"webhookd_ready": nil}, nil},
		{`a / on (x) group_left (y) b offset 5m and bool c`, map[string][]string{"a": nil, "b": nil, "c": nil}, []string{"x", "y"}},
		{`min_over_time(max(m{l="}{[("})[15m:1m]) > 1e3`, map[string][]string{"m": {"l"}}, nil},
	} {
		refs, err := parsePromQL(tc.expr)
		require.NoError(t, err, tc.expr)
		require.Equal(t, tc.metrics, refs.metrics, tc.expr)
		require.Equal(t, tc.grouping, refs.grouping, tc.expr)
	}
	for _, bad := range []string{`rate(x[5m)`, `{__name__="x"}`, `rate(x[$i]) + $j`} {
		_, err := parsePromQL(bad)
		require.Error(t, err, bad)
	}
}

// exposed is what a /metrics page offers to PromQL: each series name (a
// histogram's _bucket, _sum and _count) with its label names.
type exposed map[string]map[string]bool

func (e exposed) add(name string, labels []*dto.LabelPair, extra ...string) {
	if e[name] == nil {
		e[name] = map[string]bool{}
	}
	for _, l := range labels {
		e[name][l.GetName()] = true
	}
	for _, l := range extra {
		e[name][l] = true
	}
}

// scrape reads url (a /metrics page, in the text format) into what it
// exposes, and returns the page too.
func scrape(t *testing.T, url string) (exposed, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/plain")
	req.Close = true // no idle connection left behind for goleak
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	require.NoError(t, err)
	out := exposed{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				out.add(name+"_bucket", m.GetLabel(), "le")
				out.add(name+"_sum", m.GetLabel())
				out.add(name+"_count", m.GetLabel())
			case dto.MetricType_SUMMARY:
				out.add(name, m.GetLabel(), "quantile")
				out.add(name+"_sum", m.GetLabel())
				out.add(name+"_count", m.GetLabel())
			default:
				out.add(name, m.GetLabel())
			}
		}
	}
	return out, string(raw)
}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = map[string]bool{"job": true, "instance": true}

// checkNames returns what expr (from where) names that page does not
// expose: metric names, label names of matchers, and grouping labels that
// none of its metrics carries. It adds expr's metric names to used.
func checkNames(expr, where string, page exposed, used map[string]bool) []string {
	refs, err := parsePromQL(expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	var missing []string
	for name, labels := range refs.metrics {
		used[name] = true
		have, ok := page[name]
		if !ok {
			missing = append(missing, fmt.Sprintf("%s: metric %s (in %q)", where, name, expr))
			continue
		}
		for _, l := range labels {
			if !have[l] && !targetLabels[l] {
				missing = append(missing, fmt.Sprintf("%s: label %s on %s (in %q)", where, l, name, expr))
			}
		}
	}
	for _, l := range refs.grouping {
		found := targetLabels[l]
		for name := range refs.metrics {
			found = found || page[name][l]
		}
		if !found {
			missing = append(missing, fmt.Sprintf("%s: label %s is on none of its metrics (in %q)", where, l, expr))
		}
	}
	return missing
}

// Every metric the dashboard and the alert rules name exists on a running
// webhookd's /metrics, with the labels they match and group on. The real
// binary makes one delivery first, so the series with a subscription
// label (attempts, durations, deliveries, breaker, disabled, filter
// errors) exist.
func TestDashboardAndAlertsNameRealMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs webhookd")
	}
	t.Parallel()
	bin, err := daemontest.Build(t.TempDir())
	require.NoError(t, err)
	d := daemontest.Start(t, bin, "--retry-backoff", "100ms")
	rcv, got, _ := daemontest.Receiver(t, http.StatusOK, "")
	c := d.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.CreateSubscription(ctx, client.SubscriptionInput{URL: rcv.URL, Events: []string{"task.completed"}})
	require.NoError(t, err)
	// A filter that fails on the event below (no such field): the filter
	// errors' series exists.
	_, err = c.CreateSubscription(ctx, client.SubscriptionInput{URL: rcv.URL, Events: []string{"task.completed"}, Filter: "data.missing > 0"})
	require.NoError(t, err)
	_, err = c.Publish(ctx, client.PublishRequest{Event: "task.completed", Data: json.RawMessage(`{"task_id":"T1"}`)})
	require.NoError(t, err)
	daemontest.Next(t, got)

	var page exposed
	// The attempt and the delivery are counted once their record is stored,
	// just after the receiver answers.
	require.Eventually(t, func() bool {
		var raw string
		page, raw = scrape(t, d.AdminURL()+"/metrics")
		return strings.Contains(raw, `webhookd_deliveries_finished_total{status="succeeded",subscription=`)
	}, 15*time.Second, 50*time.Millisecond, "the delivery is not counted on /metrics")

	used := map[string]bool{}
	var missing []string
	for _, e := range dashboardExprs(t) {
		missing = append(missing, checkNames(e, dashboardFile, page, used)...)
	}
	dashboard := used
	used = map[string]bool{}
	for _, r := range alertRules(t) {
		missing = append(missing, checkNames(r.Expr, rulesFile+" "+r.Alert, page, used)...)
	}
	slices.Sort(missing)
	require.Empty(t, missing, "named but not on webhookd's /metrics")

	// What the issues ask each to show is there.
	for _, name := range []string{
		"webhookd_deliveries_finished_total", "webhookd_attempt_duration_seconds_bucket", "webhookd_consumer_pending",
		"webhookd_oldest_pending_seconds", "webhookd_circuit_breaker_state", "webhookd_attempts_total",
		"webhookd_filter_errors_total",
	} {
		require.True(t, dashboard[name], "the dashboard shows %s", name)
	}
	for _, name := range []string{
		"webhookd_consumer_pending", "webhookd_oldest_pending_seconds", "webhookd_subscription_disabled",
		"webhookd_circuit_breaker_state", "webhookd_ready",
	} {
		require.True(t, used[name], "the alert rules read %s", name)
	}
}
