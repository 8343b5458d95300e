package main

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// consoleUser is a browser without script: a cookie jar and forms.
type consoleUser struct {
	t    *testing.T
	d    *daemon
	hc   *http.Client
	csrf string
}

func loginConsole(t *testing.T, d *daemon) *consoleUser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	u := &consoleUser{t: t, d: d, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	status, body := u.post("/ui/login", url.Values{"token": {d.token}})
	require.Equal(t, http.StatusOK, status, body)
	m := csrfInput.FindStringSubmatch(body)
	require.NotNil(t, m, "a form token on the first page")
	u.csrf = m[1]
	return u
}

func (u *consoleUser) get(path string) (int, string) {
	u.t.Helper()
	resp, err := u.hc.Get(u.d.api + path)
	require.NoError(u.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(u.t, err)
	return resp.StatusCode, string(b)
}

func (u *consoleUser) post(path string, form url.Values) (int, string) {
	u.t.Helper()
	resp, err := u.hc.PostForm(u.d.api+path, form)
	require.NoError(u.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(u.t, err)
	return resp.StatusCode, string(b)
}

// form is a form with the session's token.
func (u *consoleUser) form(kv ...string) url.Values {
	v := url.Values{"csrf": {u.csrf}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

var (
	secretShown = regexp.MustCompile(`<code id="secret">([^<]+)</code>`)
	subLink     = regexp.MustCompile(`href="/ui/subscriptions/([0-9a-f-]{36})" id="to-subscription"`)
)

// TestConsoleFormsOverTheRealStack runs a subscription's whole life through
// the console's forms against a running webhookd: create (the secret shown
// once, and it signs), edit, ping, rotate (the new secret shown once),
// delete; and a form without its token changes nothing.
func TestConsoleFormsOverTheRealStack(t *testing.T) {
	t.Parallel()
	d := start(t, "--secret-grace", "0s")
	rcv, got := receiver(t)
	u := loginConsole(t, d)
	count := func() int {
		var list client.List[client.Subscription]
		require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions", d.token, "", &list))
		return len(list.Items)
	}

	// Without the form token nothing is created.
	status, body := u.post("/ui/subscriptions", url.Values{"url": {rcv.URL + "/hook"}, "event": {"task.completed"}})
	require.Equal(t, http.StatusForbidden, status, body)
	require.Contains(t, body, "Missing or wrong form token")
	require.Zero(t, count(), "a form without its token created nothing")

	status, body = u.get("/ui/subscriptions/new")
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `name="event" value="task.completed"`, "the catalog's types to tick")

	// A mistake comes back as one line, the form as typed.
	status, body = u.post("/ui/subscriptions", u.form("url", rcv.URL+"/hook", "description", "lab bench", "timeout", "2h"))
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body, `id="error"`)
	require.Contains(t, body, "events: want at least one event type or pattern")
	require.Contains(t, body, `value="lab bench"`)
	require.Zero(t, count())

	status, body = u.post("/ui/subscriptions", u.form("url", rcv.URL+"/hook", "event", "task.completed",
		"patterns", "robot.*", "description", "lab bench", "headers", "X-Team: lab",
		"filter", `event != "x"`, "ordering_key", "id", "labels", "owner=lab env=test"))
	require.Equal(t, http.StatusCreated, status, body)
	m := secretShown.FindStringSubmatch(body)
	require.NotNil(t, m, "the new secret is shown")
	shown := m[1]
	secret := html.UnescapeString(shown)
	m = subLink.FindStringSubmatch(body)
	require.NotNil(t, m)
	id := m[1]
	var sub client.Subscription
	require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions/"+id, d.token, "", &sub))
	require.Equal(t, []string{"task.completed", "robot.*"}, sub.Events)
	require.Equal(t, "lab bench", sub.Description)
	require.Equal(t, map[string]string{"X-Team": client.RedactedValue}, sub.Headers)
	require.Equal(t, `event != "x"`, sub.Filter)
	require.Equal(t, "id", sub.OrderingKey)
	require.Equal(t, map[string]string{"owner": "lab", "env": "test"}, sub.Labels)

	_, body = u.get("/ui/subscriptions")
	require.Contains(t, body, `data-id="`+id+`"`, "the new subscription is listed")
	require.NotContains(t, body, shown, "the list does not show the secret")
	_, body = u.get("/ui/subscriptions/" + id)
	require.NotRegexp(t, secretShown, body)
	require.NotContains(t, body, shown)
	require.NotContains(t, body, secret, "nor does the subscription's page")

	// Ping: the receiver gets a test event signed with the secret shown.
	status, body = u.post("/ui/subscriptions/"+id+"/ping", u.form())
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "The endpoint answered with HTTP 200")
	r := next(t, got)
	require.True(t, verifies(t, secret, r), "the secret the console showed signs")
	require.Equal(t, "lab", r.Header.Get("X-Team"))
	pingDelivery := regexp.MustCompile(`href="/ui/deliveries/([0-9a-f-]{36})"`).FindStringSubmatch(body)
	require.NotNil(t, pingDelivery)
	_, body = u.get("/ui/deliveries/" + pingDelivery[1])
	require.NotContains(t, body, `id="redeliver"`, "no Redeliver on a ping")
	require.Contains(t, body, "A test ping is sent once")

	// Edit.
	status, body = u.post("/ui/subscriptions/"+id+"/edit", u.form("url", rcv.URL+"/hook2", "event", "task.failed",
		"description", "moved", "timeout", "3s", "remove_header", "X-Team", "headers", "X-Other: 1", "labels", "owner=lab"))
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "Subscription saved.")
	sub = client.Subscription{} // decoding into a used map would merge
	require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions/"+id, d.token, "", &sub))
	require.Equal(t, rcv.URL+"/hook2", sub.URL)
	require.Equal(t, []string{"task.failed"}, sub.Events)
	require.Equal(t, "moved", sub.Description)
	require.Equal(t, "3s", sub.Timeout)
	require.Equal(t, map[string]string{"X-Other": client.RedactedValue}, sub.Headers)
	require.Equal(t, map[string]string{"owner": "lab"}, sub.Labels, "a label no longer written is removed")
	require.Empty(t, sub.Filter, "an emptied filter is cleared")
	status, body = u.post("/ui/subscriptions/"+id+"/edit", u.form("url", rcv.URL+"/hook2", "event", "task.failed",
		"filter", "data.n >"))
	require.Equal(t, http.StatusBadRequest, status)
	require.Regexp(t, `filter: line 1, column \d+: `, body, "the API's error names the field and position")
	require.Contains(t, body, "data.n &gt;</textarea>", "the refused expression as typed")
	status, body = u.post("/ui/subscriptions/"+id+"/edit", u.form("url", "ftp://x", "event", "task.failed"))
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "must be an absolute http(s) URL")
	require.Contains(t, body, `value="ftp://x"`, "the refused form as typed")

	// Rotate: a new secret, shown once, and it signs.
	status, body = u.post("/ui/subscriptions/"+id+"/rotate", u.form("grace", "0s"))
	require.Equal(t, http.StatusOK, status, body)
	m = secretShown.FindStringSubmatch(body)
	require.NotNil(t, m)
	rotated := html.UnescapeString(m[1])
	require.NotEqual(t, secret, rotated)
	require.Contains(t, body, "The previous secret no longer signs.")
	_, body = u.get("/ui/subscriptions/" + id)
	require.NotContains(t, body, rotated, "the next page does not show it")
	require.NotContains(t, body, m[1])
	require.NotRegexp(t, secretShown, body)
	_, _ = u.post("/ui/subscriptions/"+id+"/ping", u.form())
	r = next(t, got)
	require.True(t, verifies(t, rotated, r))
	require.False(t, verifies(t, secret, r), "the old secret no longer signs")

	// Delete, after its confirmation page.
	status, body = u.get("/ui/subscriptions/" + id + "/delete")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "Delete this subscription?")
	status, body = u.post("/ui/subscriptions/"+id+"/delete", u.form())
	require.Equal(t, http.StatusBadRequest, status, "not without the confirmation")
	require.Contains(t, body, "Delete needs its confirmation")
	require.Equal(t, 1, count())
	status, body = u.post("/ui/subscriptions/"+id+"/delete", url.Values{"confirm": {"yes"}})
	require.Equal(t, http.StatusForbidden, status, "not without the form token")
	require.Contains(t, body, "Missing or wrong form token")
	require.Equal(t, 1, count())
	status, body = u.post("/ui/subscriptions/"+id+"/delete", u.form("confirm", "yes"))
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "Subscription deleted.")
	require.NotContains(t, body, `data-id="`+id+`"`)
	require.Equal(t, http.StatusNotFound, d.call(t, "GET", "/v1/subscriptions/"+id, d.token, "", nil))

	require.False(t, strings.Contains(d.logs.String(), secret) || strings.Contains(d.logs.String(), rotated), "no secret logged")
}
