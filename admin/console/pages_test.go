package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPagesAreFormattedForPeople checks what the subscriptions and delivery
// pages show, the way the CLI shows it: a success rate with its attempts,
// times to the second, labels in words, the payload and the request headers
// formatted, and no Redeliver where the API would refuse it.
func TestPagesAreFormattedForPeople(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	b.api.answer["GET /v1/subscriptions"] = `{"items":[{"id":"` + subID + `","url":"https://r.example/x","events":["task.completed"],` +
		`"active":true,"created_at":"2026-11-29T12:00:00.123456789Z","stats":{"attempts_1h":31,"success_rate_1h":0.7741935483870968,` +
		`"attempts_24h":31,"success_rate_24h":0.7741935483870968,"consecutive_failures":2,"last_status_code":500,` +
		`"last_attempt_at":"2026-11-29T12:57:00.987654321Z"},"health":{"breaker":"closed"}}],"next_cursor":""}`
	body := b.do(t, http.MethodGet, "/ui/subscriptions", ck, nil).body
	require.Contains(t, body, "77.42% of 31")
	require.NotContains(t, body, "0.774")
	require.Contains(t, body, `<time datetime="2026-11-29T12:57:00Z" title="2026-11-29T12:57:00Z">2m ago</time>`, "relative, the exact time in a title")
	require.Contains(t, body, "2 failures in a row")
	require.NotContains(t, body, ".98765", "no time shown below the second")
	requireNoSnakeCase(t, body)

	delivery := func(event, status, extra string) string {
		return `{"id":"` + delID + `","event_id":"e1","event":"` + event + `","subscription_id":"` + subID + `",` +
			`"url":"https://r.example/x","status":"` + status + `","created_at":"2026-11-29T12:59:00.5Z","updated_at":"2026-11-29T12:59:01.5Z",` +
			`"attempts":[{"attempt":1,"at":"2026-11-29T12:59:01.25Z","status_code":500,"duration_ms":12,` +
			`"request_headers":{"Content-Type":"application/json","Webhook-Signature":"[redacted]"}}]` + extra + `}`
	}
	b.api.answer["GET /v1/subscriptions/"+subID] = `{"id":"` + subID + `","url":"https://r.example/x","events":["task.completed"],"active":true}`
	b.api.answer["GET /v1/deliveries/"+delID] = delivery("task.completed", "failed", `,"payload":{"id":"e1","data":{"n":1}}`)
	body = b.do(t, http.MethodGet, "/ui/deliveries/"+delID, ck, nil).body
	require.Contains(t, body, `id="redeliver"`, "a failed delivery whose job is kept can be sent again")
	require.Contains(t, body, "<td>Webhook-Signature</td><td class=\"url\">[redacted]</td>", "headers as a table")
	require.Contains(t, body, "&#34;n&#34;: 1", "the body sent, indented")
	require.Contains(t, body, `<time datetime="2026-11-29T12:59:00Z">2026-11-29T12:59:00Z</time>`)
	requireNoSnakeCase(t, body)

	for name, c := range map[string]struct{ event, status, extra, why string }{
		"ping":      {"webhook.ping", "failed", "", "A test ping is sent once"},
		"succeeded": {"task.completed", "succeeded", `,"payload_note":"the audit trail does not copy it"`, "This delivery succeeded"},
		"retrying":  {"task.completed", "retrying", `,"payload":{"id":"e1"}`, "still queued"},
		"gone sub":  {"task.completed", "failed", `,"payload_note":"the event has left EVENTS"`, "Its subscription was deleted"},
	} {
		b.api.answer["GET /v1/subscriptions/"+subID] = `{"id":"` + subID + `","url":"https://r.example/x","events":["task.completed"],"active":true}`
		if name == "gone sub" {
			delete(b.api.answer, "GET /v1/subscriptions/"+subID)
		}
		b.api.answer["GET /v1/deliveries/"+delID] = delivery(c.event, c.status, c.extra)
		body = b.do(t, http.MethodGet, "/ui/deliveries/"+delID, ck, nil).body
		require.NotContains(t, body, `id="redeliver"`, name)
		require.Contains(t, body, c.why, name)
		requireNoSnakeCase(t, body)
		if name == "gone sub" {
			require.Contains(t, body, "The body is not shown: the event has left EVENTS.", "the payload note, as a sentence")
		}
	}
}

// requireNoSnakeCase fails when the page's text (outside tags) shows an
// API field name.
func requireNoSnakeCase(t *testing.T, page string) {
	t.Helper()
	var text strings.Builder
	in := false
	for _, r := range page {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			text.WriteByte(' ')
		case !in:
			text.WriteRune(r)
		}
	}
	require.NotRegexp(t, `\b[a-z]+_[a-z0-9_]+\b`, text.String(), "a snake_case label")
}

// TestARefusedFormIsShownAgainAsSent posts the create form with a mistake
// the API refuses: the form comes back with the API's one-line error and
// every field as typed.
func TestARefusedFormIsShownAgainAsSent(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	b.api.answer["GET /v1/event-types"] = `{"items":["task.completed","task.failed"],"next_cursor":""}`
	page := b.do(t, http.MethodGet, "/ui/subscriptions/new", ck, nil)
	require.Equal(t, http.StatusOK, page.status, page.body)
	require.Contains(t, page.body, `value="task.failed"`, "the catalog's types to tick")
	csrf := csrfOf(t, page.body)

	form := url.Values{"csrf": {csrf}, "url": {"https://r.example/x"}, "event": {"task.failed"},
		"patterns": {"robot.*"}, "description": {"mine"}, "headers": {"X-Key: v\nbroken line"}}
	a := b.do(t, http.MethodPost, "/ui/subscriptions", ck, form)
	require.Equal(t, http.StatusBadRequest, a.status)
	require.Contains(t, a.body, `headers: line 2 is not &#34;Name: value&#34;`)
	require.Contains(t, a.body, `value="mine"`, "the description is kept")
	require.Contains(t, a.body, `value="task.failed" checked`, "the ticked type is kept")
	require.Contains(t, a.body, "X-Key: v\nbroken line</textarea>", "the headers as typed")

	form.Set("headers", "X-Key: v")
	a = b.do(t, http.MethodPost, "/ui/subscriptions", ck, form)
	require.Equal(t, http.StatusNotFound, a.status, "the stub has no create: the API's answer")
	require.Contains(t, a.body, "no stub for POST /v1/subscriptions")
	require.Contains(t, a.body, `value="robot.*"`, "the patterns are kept")
}

// TestEventCatalogShowsSchemasAndSamples reads the catalog in both shapes
// the API has had: names only, and objects with a schema and a sample.
func TestEventCatalogShowsSchemasAndSamples(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	b.api.answer["GET /v1/event-types"] = `{"items":["task.completed","task.failed"],"next_cursor":""}`
	a := b.do(t, http.MethodGet, "/ui/event-types", ck, nil)
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Contains(t, a.body, `<section class="etype" id="type-task.failed">`)
	require.Contains(t, a.body, "The catalog has no schema for this type.")

	b.api.answer["GET /v1/event-types"] = `{"items":["task.completed","task.failed"],"types":[{"type":"task.completed","schema":{"type":"object","required":["task_id"]},` +
		`"sample":{"task_id":"t-1"}},{"type":"task.failed"}]}`
	a = b.do(t, http.MethodGet, "/ui/event-types", ck, nil)
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Contains(t, a.body, "<h3>Schema</h3><pre class=\"schema\">{\n  &#34;type&#34;: &#34;object&#34;,\n  &#34;required&#34;: [\n    &#34;task_id&#34;\n  ]\n}</pre>", "the schema, indented, in its own order")
	require.Contains(t, a.body, "<h3>Sample</h3><pre class=\"sample\">{\n  &#34;task_id&#34;: &#34;t-1&#34;\n}</pre>")
	require.Equal(t, 1, strings.Count(a.body, "The catalog has no schema for this type."), "task.failed has none")

	page := b.do(t, http.MethodGet, "/ui/subscriptions/new", ck, nil).body
	require.Contains(t, page, `name="event" value="task.completed"`, "the form ticks the types")
}
