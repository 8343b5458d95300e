package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// TestConsoleTryPanel tries filters and transforms on sample events
// through the console's try panel against a running webhookd: the verdict,
// the body that would be sent, an error pointed at its position, and a
// subscription's own expressions when the fields are left empty. Nothing
// is delivered.
func TestConsoleTryPanel(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, got := receiver(t)
	in, err := json.Marshal(client.SubscriptionInput{URL: rcv.URL, Events: []string{"task.completed"},
		Filter: "data.n > 1", Transform: `{"text": "n is " + string(data.n)}`})
	require.NoError(t, err)
	var sub client.Subscription
	require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", d.token, string(in), &sub))
	u := loginConsole(t, d)

	status, body := u.get("/ui/subscriptions/try?subscription=" + sub.ID)
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `data.n &gt; 1</textarea>`, "the subscription's filter, filled in")
	require.Contains(t, body, `<option selected>task.completed</option>`, "its first type")
	try := func(kv ...string) string {
		t.Helper()
		status, body := u.post("/ui/subscriptions/try", u.form(kv...))
		require.Equal(t, http.StatusOK, status, body)
		return body
	}

	body = try("event", "task.completed", "data", `{"n": 2}`, "filter", "data.n > 1", "transform", `{"text": "n is " + string(data.n)}`)
	require.Contains(t, body, "The filter lets this event through")
	require.Regexp(t, `(?s)<pre class="payload" id="try-body">\{\s+&#34;text&#34;: &#34;n is 2&#34;\s+\}</pre>`, body, "the transformed body")

	body = try("event", "task.completed", "data", `{"n": 0}`, "filter", "data.n > 1")
	require.Contains(t, body, "The filter drops this event")
	require.Contains(t, body, "&#34;event&#34;: &#34;task.completed&#34;", "no transform: the envelope")

	body = try("event", "task.completed", "data", `{"n": 2}`, "filter", "data.n >")
	col := regexp.MustCompile(`<strong>Filter, line 1, column (\d+)</strong>\s+\(does not compile: the API would refuse it\)`).FindStringSubmatch(body)
	require.NotNil(t, col, "the error, its position and stage")
	m := regexp.MustCompile(`<pre class="code pointer">data.n &gt;\n( *)\^</pre>`).FindStringSubmatch(body)
	require.NotNil(t, m, "the source line, a caret under the column")
	require.Equal(t, col[1], strconv.Itoa(len(m[1])+1), "the caret is under the column")
	require.Contains(t, body, `data.n &gt;</textarea>`, "the expression as typed")

	body = try("event", "task.completed", "data", `{"n": 3}`, "subscription_id", sub.ID)
	require.Contains(t, body, "The filter lets this event through", "empty fields: the subscription's expressions")
	require.Contains(t, body, "&#34;n is 3&#34;")

	status, body = u.post("/ui/subscriptions/try", u.form("event", "task.completed", "data", `{"n":`))
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "data: not valid JSON")
	require.Contains(t, body, `{&#34;n&#34;:</textarea>`, "the data as typed")
	status, _ = u.post("/ui/subscriptions/try", url.Values{"event": {"task.completed"}})
	require.Equal(t, http.StatusForbidden, status, "a try needs the form token too")

	select {
	case r := <-got:
		t.Fatalf("a try sent a request: %s", r.Body)
	default:
	}
}
