package console_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/robotlab/webhookd/admin/console"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	token = "console-test-token-0123456789abcdef"
	subID = "0b5d3a52-6f0e-4c1e-9a57-0d7d1c2e3f40"
	delID = "7d1c2e3f-0b5d-4a52-8f0e-4c1e9a570d7d"
)

// apiStub stands in for the admin API's handler: it answers fixed JSON
// (whatever a test puts there, also what the real API would refuse to
// store) and records the calls the console makes.
type apiStub struct {
	mu     sync.Mutex
	calls  []string
	answer map[string]string // "GET /v1/subscriptions" → JSON
}

func (a *apiStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := r.Method + " " + r.URL.Path
	a.calls = append(a.calls, key+" "+r.Header.Get("Authorization"))
	body, ok := a.answer[key]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no stub for `+key+`"}}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

func (a *apiStub) called() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

type bundle struct {
	api   *apiStub
	h     http.Handler
	clock *clock
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func setup(t *testing.T, tok string) *bundle {
	t.Helper()
	b := &bundle{api: &apiStub{answer: map[string]string{
		"GET /v1/subscriptions":                      `{"items":[],"next_cursor":""}`,
		"GET /v1/deliveries":                         `{"items":[],"next_cursor":""}`,
		"POST /v1/subscriptions/" + subID + "/pause": `{}`,
	}}, clock: &clock{now: time.Date(2026, 11, 29, 13, 0, 0, 0, time.UTC)}}
	c, err := console.New(console.Config{Token: tok, SessionTTL: time.Hour, Now: b.clock.Now}, zerolog.Nop())
	require.NoError(t, err)
	b.h = c.Handler(b.api)
	return b
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends one request to the console; form is a POST body.
func (b *bundle) do(t *testing.T, method, target string, cookie *http.Cookie, form url.Values, hdr ...string) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	return answer{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

// login posts the token and returns the session cookie.
func (b *bundle) login(t *testing.T) *http.Cookie {
	t.Helper()
	a := b.do(t, http.MethodPost, "/ui/login", nil, url.Values{"token": {token}})
	require.Equal(t, http.StatusSeeOther, a.status, a.body)
	resp := http.Response{Header: a.header}
	cookies := resp.Cookies()
	require.Len(t, cookies, 1)
	return cookies[0]
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	require.NotNil(t, m, "a form token in the page")
	return m[1]
}

func TestLoginSetsASignedSessionCookie(t *testing.T) {
	t.Parallel()
	b := setup(t, token)

	a := b.do(t, http.MethodGet, "/ui/subscriptions", nil, nil)
	require.Equal(t, http.StatusSeeOther, a.status, "no session: to the login page")
	require.Equal(t, "/ui/login", a.header.Get("Location"))
	require.Empty(t, b.api.called(), "nothing read without a session")

	a = b.do(t, http.MethodPost, "/ui/login", nil, url.Values{"token": {token[:len(token)-1] + "X"}})
	require.Equal(t, http.StatusUnauthorized, a.status)
	require.Empty(t, a.header.Values("Set-Cookie"))
	require.Contains(t, a.body, "Wrong token.")

	a = b.do(t, http.MethodPost, "/ui/login", nil, url.Values{"token": {token}}, "Origin", "https://evil.example")
	require.Equal(t, http.StatusForbidden, a.status, "a cross-origin login is refused")
	require.Empty(t, a.header.Values("Set-Cookie"))

	ck := b.login(t)
	require.Equal(t, "webhookd_console", ck.Name)
	require.True(t, ck.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
	require.Equal(t, "/ui", ck.Path)
	require.False(t, ck.Secure, "plain HTTP: a Secure cookie would never come back")
	require.NotContains(t, ck.Value, token, "the cookie does not hold the token")

	a = b.do(t, http.MethodGet, "/ui/subscriptions", ck, nil)
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Contains(t, b.api.called(), "GET /v1/subscriptions Bearer "+token, "the console reads through the API as the operator")

	// Over TLS the cookie is Secure.
	req := httptest.NewRequest(http.MethodPost, "https://example.com/ui/login", strings.NewReader("token="+token))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.True(t, rec.Result().Cookies()[0].Secure)
	a = b.do(t, http.MethodPost, "/ui/login", nil, url.Values{"token": {token}}, "X-Forwarded-Proto", "https")
	require.Contains(t, a.header.Get("Set-Cookie"), "; Secure", "and behind a TLS proxy")
}

// TestLogoutRevokesTheSession copies the cookie before logging out: the
// copy is refused afterwards, and a new login works.
func TestLogoutRevokesTheSession(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	a := b.do(t, http.MethodGet, "/ui/subscriptions", ck, nil)
	require.Equal(t, http.StatusOK, a.status)
	copied := *ck

	a = b.do(t, http.MethodPost, "/ui/logout", ck, url.Values{"csrf": {csrfOf(t, a.body)}})
	require.Equal(t, http.StatusSeeOther, a.status, a.body)
	require.Contains(t, a.header.Get("Set-Cookie"), "Max-Age=0", "the browser's cookie is cleared")

	a = b.do(t, http.MethodGet, "/ui/subscriptions", &copied, nil)
	require.Equal(t, http.StatusSeeOther, a.status, "a copy of the cookie is refused after logout")
	require.Equal(t, "/ui/login", a.header.Get("Location"))
	a = b.do(t, http.MethodGet, "/ui/login", &copied, nil)
	require.Equal(t, http.StatusOK, a.status, "the login page shows, no redirect loop")
	a = b.do(t, http.MethodPost, "/ui/subscriptions/"+subID+"/pause", &copied, url.Values{"csrf": {"x"}})
	require.Equal(t, http.StatusForbidden, a.status)

	again := b.login(t)
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/ui/subscriptions", again, nil).status)
}

func TestSessionsAreRefusedWhenForgedExpiredOrFromAnotherToken(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	ok := func(c *http.Cookie) bool {
		return b.do(t, http.MethodGet, "/ui/subscriptions", c, nil).status == http.StatusOK
	}
	require.True(t, ok(ck))

	payload, mac, found := strings.Cut(ck.Value, ".")
	require.True(t, found)
	for name, v := range map[string]string{
		"empty": "", "no mac": payload, "token itself": token, "flipped mac": payload + "." + flip(mac),
		"flipped payload": flip(payload) + "." + mac, "garbage": "%%%.%%%",
	} {
		require.False(t, ok(&http.Cookie{Name: ck.Name, Value: v}), name)
	}

	other := setup(t, token+"-rotated")
	require.Equal(t, http.StatusSeeOther, other.do(t, http.MethodGet, "/ui/subscriptions", ck, nil).status,
		"a session signed under another token is refused")

	b.clock.add(59 * time.Minute)
	require.True(t, ok(ck))
	b.clock.add(time.Minute)
	require.False(t, ok(ck), "expired after SessionTTL")
}

func flip(s string) string {
	c := s[len(s)/2]
	r := byte('A')
	if c == 'A' {
		r = 'B'
	}
	return s[:len(s)/2] + string(r) + s[len(s)/2+1:]
}

func TestPostsNeedTheSessionsFormToken(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	b.api.answer["GET /v1/subscriptions"] = `{"items":[{"id":"` + subID + `","url":"https://r.example/x","events":["task.completed"],"active":true}],"next_cursor":""}`
	csrf := csrfOf(t, b.do(t, http.MethodGet, "/ui/subscriptions", ck, nil).body)
	pause := "/ui/subscriptions/" + subID + "/pause"
	paused := func() int {
		n := 0
		for _, c := range b.api.called() {
			if strings.HasPrefix(c, "POST ") {
				n++
			}
		}
		return n
	}

	require.Equal(t, http.StatusForbidden, b.do(t, http.MethodPost, pause, ck, url.Values{}).status, "no form token")
	require.Equal(t, http.StatusForbidden, b.do(t, http.MethodPost, pause, ck, url.Values{"csrf": {csrf + "x"}}).status, "wrong form token")
	ck2 := b.login(t)
	csrf2 := csrfOf(t, b.do(t, http.MethodGet, "/ui/subscriptions", ck2, nil).body)
	require.NotEqual(t, csrf, csrf2, "one form token per session")
	require.NotContains(t, ck.Value, csrf, "the form token is not part of the cookie")
	require.Equal(t, http.StatusForbidden, b.do(t, http.MethodPost, pause, ck, url.Values{"csrf": {csrf2}}).status, "another session's token")
	require.Equal(t, http.StatusForbidden, b.do(t, http.MethodPost, pause, nil, url.Values{"csrf": {csrf}}).status, "no session")
	require.Equal(t, http.StatusForbidden, b.do(t, http.MethodPost, pause, ck, url.Values{"csrf": {csrf}}, "Origin", "https://evil.example").status, "cross-origin")
	require.Zero(t, paused(), "nothing reached the API")

	a := b.do(t, http.MethodPost, pause, ck, url.Values{"csrf": {csrf}}, "Origin", "http://example.com")
	require.Equal(t, http.StatusSeeOther, a.status, a.body)
	require.Equal(t, "/ui/subscriptions?done=pause", a.header.Get("Location"))
	require.Contains(t, b.api.called(), "POST /v1/subscriptions/"+subID+"/pause Bearer "+token)

	b.api.answer["POST /v1/subscriptions/"+subID+"/resume"] = `{}`
	a = b.do(t, http.MethodPost, "/ui/subscriptions/"+subID+"/reenable", ck, url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, a.status, a.body)
	require.Contains(t, b.api.called(), "POST /v1/subscriptions/"+subID+"/resume Bearer "+token, "re-enable is the API's resume")
	before := paused()
	a = b.do(t, http.MethodPost, "/ui/subscriptions/"+subID+"/frobnicate", ck, url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusNotFound, a.status, "no such action")
	a = b.do(t, http.MethodPost, "/ui/subscriptions/"+subID+"/delete", ck, url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusBadRequest, a.status, "delete without its confirmation")
	require.Equal(t, before, paused(), "neither reached the API")
	for _, action := range []string{"delete", "edit", "rotate", "ping"} {
		a = b.do(t, http.MethodPost, "/ui/subscriptions/"+subID+"/"+action, ck, url.Values{"confirm": {"yes"}})
		require.Equal(t, http.StatusForbidden, a.status, action+" without a form token")
	}
	a = b.do(t, http.MethodPost, "/ui/subscriptions", ck, url.Values{"url": {"https://r.example/x"}, "event": {"task.completed"}})
	require.Equal(t, http.StatusForbidden, a.status, "create without a form token")
	require.Equal(t, before, paused(), "nothing reached the API")

	a = b.do(t, http.MethodPost, "/ui/logout", ck, url.Values{"csrf": {csrf}})
	require.Equal(t, http.StatusSeeOther, a.status)
	require.Contains(t, a.header.Get("Set-Cookie"), "Max-Age=0")
}

func TestEveryAnswerHasAStrictContentSecurityPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	for _, target := range []string{"/ui/login", "/ui/subscriptions", "/ui/deliveries", "/ui/nothing-here", "/ui/static/console.css"} {
		a := b.do(t, http.MethodGet, target, ck, nil)
		csp := a.header.Get("Content-Security-Policy")
		require.Contains(t, csp, "default-src 'none'", target)
		require.NotContains(t, csp, "unsafe", target)
		require.NotContains(t, csp, "script-src", target, "no script allowed at all")
		require.Equal(t, "nosniff", a.header.Get("X-Content-Type-Options"), target)
		require.Equal(t, "DENY", a.header.Get("X-Frame-Options"), target)
	}
	a := b.do(t, http.MethodGet, "/ui/static/console.css", ck, nil)
	require.Equal(t, http.StatusOK, a.status)
	require.Contains(t, a.header.Get("Content-Type"), "text/css")
}

// hostile is what an event, a receiver or an operator can put in fields the
// console shows.
const hostile = `<script>alert(1)</script>\"'><img src=x onerror=alert(2)>javascript:alert(3)`

func TestUntrustedDataRendersInert(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	b.api.answer["GET /v1/subscriptions"] = `{"items":[{"id":"` + subID + `","url":"javascript:alert(4)//` + hostile + `",` +
		`"events":["task.completed"],"description":"` + hostile + `","active":false,"disabled_reason":"` + hostile + `",` +
		`"health":{"breaker":"open"},"success_rate_7d":0.5,"tags":{"x":"` + hostile + `"}}],"next_cursor":""}`
	b.api.answer["GET /v1/deliveries"] = `{"items":[{"id":"` + delID + `","event_id":"` + hostile + `","event":"` + hostile + `",` +
		`"subscription_id":"` + subID + `","url":"` + hostile + `","status":"failed","created_at":"2026-11-29T12:59:00Z",` +
		`"attempts":[{"attempt":1,"status_code":500,"reason":"` + hostile + `","response":"` + hostile + `"}]}],"next_cursor":""}`
	b.api.answer["GET /v1/deliveries/"+delID] = `{"id":"` + delID + `","event_id":"e1","event":"task.completed","subscription_id":"` + subID + `",` +
		`"url":"https://r.example/` + hostile + `","status":"failed","reason":"` + hostile + `",` +
		`"payload":{"data":{"x":"</pre>` + hostile + `"}},"attempts":[{"attempt":1,"status_code":500,"error":"` + hostile + `",` +
		`"response":"</pre>` + hostile + `","request_headers":{"X-Evil":"` + hostile + `"}}]}`

	for _, target := range []string{"/ui/subscriptions", "/ui/deliveries", "/ui/deliveries/" + delID} {
		a := b.do(t, http.MethodGet, target, ck, nil)
		require.Equal(t, http.StatusOK, a.status, a.body)
		lower := strings.ToLower(a.body)
		require.NotContains(t, lower, "<script", target)
		require.NotContains(t, lower, "<img", target)
		require.NotRegexp(t, `(?i)(href|src|action)="\s*javascript:`, a.body, target)
		require.Contains(t, a.body, "&lt;script&gt;alert(1)&lt;/script&gt;", target+": shown, as text")
	}
	subs := b.do(t, http.MethodGet, "/ui/subscriptions", ck, nil).body
	require.Contains(t, subs, "<dt>Success rate 7d</dt><dd>50.00%</dd>", "a field the console does not know is shown, labelled, a rate as a percentage")
	require.Contains(t, subs, "<dt>Tags</dt><dd><dl class=\"kv\"><dt>X</dt>", "an unknown object, as its fields")
	require.Contains(t, subs, "Re-enable", "a disabled subscription offers re-enable")
	one := b.do(t, http.MethodGet, "/ui/deliveries/"+delID, ck, nil).body
	require.Contains(t, one, `<pre class="payload" id="payload">{
  &#34;data&#34;: {`, "the payload, indented")
	require.Contains(t, one, "<td>X-Evil</td>", "the request headers, as a table")
	require.Contains(t, one, "<h3>Attempt 1 <span", "the attempt's number")
}

func TestDeliveriesFiltersPassToTheAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	var got url.Values
	api := b.api
	b.h = func() http.Handler {
		c, err := console.New(console.Config{Token: token, SessionTTL: time.Hour, Now: b.clock.Now}, zerolog.Nop())
		require.NoError(t, err)
		return c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/deliveries" && r.URL.Query().Get("limit") == "50" {
				got = r.URL.Query()
			}
			api.ServeHTTP(w, r)
		}))
	}()
	api.answer["GET /v1/deliveries"] = `{"items":[],"next_cursor":"c2"}`
	a := b.do(t, http.MethodGet, "/ui/deliveries?subscription="+subID+"&status=failed&event=e1&type=task.completed&since=-15m&until=2026-11-29T12:50&cursor=c1", ck, nil)
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Equal(t, url.Values{"subscription": {subID}, "status": {"failed"}, "event": {"e1"}, "type": {"task.completed"},
		"since": {"2026-11-29T12:45:00Z"}, "until": {"2026-11-29T12:50:00Z"}, "cursor": {"c1"}, "limit": {"50"}}, got)
	require.Contains(t, a.body, `id="next"`, "a next page link")
	require.Contains(t, a.body, "cursor=c2")
	require.Regexp(t, `<a href="/ui/deliveries\?event=e1&amp;since=-15m&amp;status=failed&amp;subscription=`+subID+`&amp;type=task.completed&amp;until=2026-11-29T12%3A50" id="first">`,
		a.body, "a first page link, with the filters and without the cursor")
	a = b.do(t, http.MethodGet, "/ui/deliveries", ck, nil)
	require.NotContains(t, a.body, `id="first"`, "already on the first page")

	a = b.do(t, http.MethodGet, "/ui/deliveries?since=yesterday", ck, nil)
	require.Equal(t, http.StatusBadRequest, a.status)
	require.Contains(t, a.body, "since: &#34;yesterday&#34; is not a time")

	delete(api.answer, "GET /v1/deliveries")
	a = b.do(t, http.MethodGet, "/ui/deliveries", ck, nil)
	require.Equal(t, http.StatusNotFound, a.status, "an API error is shown with its status")
	require.Contains(t, a.body, "no stub for GET /v1/deliveries")
}

func TestChartCountsDeliveriesPerMinuteByStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, token)
	ck := b.login(t)
	// The clock is 13:00:00; the chart covers 12:01 to 13:01.
	item := func(at, status string) string {
		return `{"id":"` + delID + `","status":"` + status + `","created_at":"2026-11-29T` + at + `Z","attempts":[]}`
	}
	b.api.answer["GET /v1/deliveries"] = `{"items":[` + strings.Join([]string{
		item("12:59:10", "failed"), item("12:59:50", "succeeded"), item("12:59:59", "succeeded"),
		item("12:30:00", "retrying"), item("11:00:00", "succeeded"), // the last one is outside the window
	}, ",") + `],"next_cursor":""}`
	body := b.do(t, http.MethodGet, "/ui/subscriptions", ck, nil).body
	require.Contains(t, body, "<title>12:59 succeeded: 2</title>")
	require.Contains(t, body, "<title>12:59 failed: 1</title>")
	require.Contains(t, body, "<title>12:30 retrying: 1</title>")
	require.Contains(t, body, "12:01 to 13:01 UTC: 4 deliveries, at most 3 in a minute.")
	require.NotContains(t, body, "only the newest")
	// The 12:59 bar is full height (120), failed stacked on succeeded.
	require.Contains(t, body, `<rect x="580" y="40" width="9" height="80" class="st-succeeded">`)
	require.Contains(t, body, `<rect x="580" y="0" width="9" height="40" class="st-failed">`)

	// More pages than the chart reads: it says so.
	b.api.answer["GET /v1/deliveries"] = `{"items":[` + item("12:59:10", "failed") + `],"next_cursor":"more"}`
	body = b.do(t, http.MethodGet, "/ui/subscriptions", ck, nil).body
	require.Contains(t, body, "5 deliveries, at most 5 in a minute (only the newest 5000 counted).")
}
