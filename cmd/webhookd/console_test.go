package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// hostile is put in every field an event, a receiver or an operator
// controls; the console must show it as text.
const hostile = `<script>document.title='pwned'</script>"'><img src=x onerror="document.title='pwned'">javascript:alert(1)`

// flakyReceiver answers 500 with a hostile body until ok is set, then 200.
func flakyReceiver(t *testing.T) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	var ok atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if ok.Load() {
			_, _ = io.WriteString(w, "thanks")
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, hostile)
	}))
	t.Cleanup(srv.Close)
	return srv, &ok
}

// failedDelivery creates a subscription to rcv with a hostile description
// (and a hostile path in its URL), publishes an event with hostile data and
// waits until its delivery has failed every attempt.
func failedDelivery(t *testing.T, d *daemon, rcv string) (client.Subscription, client.Delivery) {
	t.Helper()
	in, err := json.Marshal(client.SubscriptionInput{URL: rcv + "/hook?q=" + url.QueryEscape(hostile), Events: []string{"task.failed"}, Description: hostile})
	require.NoError(t, err)
	var sub client.Subscription
	require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", d.token, string(in), &sub))
	ev, err := json.Marshal(map[string]any{"event": "task.failed", "data": map[string]string{"note": hostile}})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, d.call(t, "POST", "/v1/events", d.token, string(ev), nil))
	var list client.List[client.Delivery]
	waitFor(t, func() bool {
		d.call(t, "GET", "/v1/deliveries?status=failed&subscription="+sub.ID, d.token, "", &list)
		return len(list.Items) == 1
	})
	return sub, list.Items[0]
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestConsoleOverTheRealStack logs in to a running webhookd's console with
// a plain HTTP client, checks that every page shows the hostile fields as
// text, and redelivers a failed delivery with the console's button.
func TestConsoleOverTheRealStack(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, ok := flakyReceiver(t)
	sub, del := failedDelivery(t, d, rcv.URL)

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(d.api + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		if strings.HasPrefix(path, "/ui/") {
			require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
		}
		return resp.StatusCode, string(b)
	}
	post := func(path string, form url.Values) (int, string) {
		t.Helper()
		resp, err := hc.PostForm(d.api+path, form)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}

	status, body := get("/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `name="token"`, "/ sends a browser to the console, and it to the login page")
	status, body = post("/ui/login", url.Values{"token": {"wrong"}})
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, body, "Wrong token.")
	status, body = post("/ui/login", url.Values{"token": {d.token}})
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, sub.ID, "logged in: the subscriptions page lists it")
	require.NotContains(t, d.logs.String(), d.token, "the token is never logged")

	for _, path := range []string{"/ui/subscriptions", "/ui/deliveries", "/ui/deliveries?status=failed", "/ui/deliveries/" + del.ID} {
		status, body = get(path)
		require.Equal(t, http.StatusOK, status, path)
		lower := strings.ToLower(body)
		require.NotContains(t, lower, "<script", path)
		require.NotContains(t, lower, "<img", path)
		require.NotRegexp(t, `(?i)(href|src|action)="\s*javascript:`, body, path)
	}
	_, body = get("/ui/subscriptions")
	require.Contains(t, body, "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;", "the description, as text")
	_, body = get("/ui/deliveries/" + del.ID)
	require.Contains(t, body, `id="status">failed<`)
	require.Contains(t, body, "&lt;img src=x onerror=", "the receiver's response, as text")
	require.Equal(t, 3, strings.Count(body, `class="attempt"`), "three attempts: --retry-backoff 100ms,200ms")

	ok.Store(true)
	m := csrfInput.FindStringSubmatch(body)
	require.NotNil(t, m)
	status, body = post("/ui/deliveries/"+del.ID+"/redeliver", url.Values{"csrf": {"forged"}})
	require.Equal(t, http.StatusForbidden, status, "a forged form token")
	require.Contains(t, body, "Missing or wrong form token")
	status, body = post("/ui/deliveries/"+del.ID+"/redeliver", url.Values{"csrf": {m[1]}})
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "Delivery queued again.")
	waitFor(t, func() bool {
		_, body = get("/ui/deliveries/" + del.ID)
		return strings.Contains(body, `id="status">succeeded<`)
	})
	require.Equal(t, 4, strings.Count(body, `class="attempt"`), "the attempt count continues")

	// Pause, then resume, through the console's buttons.
	status, body = post("/ui/subscriptions/"+sub.ID+"/pause", url.Values{"csrf": {m[1]}})
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "Subscription paused.")
	var got client.Subscription
	d.call(t, "GET", "/v1/subscriptions/"+sub.ID, d.token, "", &got)
	require.Equal(t, "paused", got.State())
	status, body = post("/ui/subscriptions/"+sub.ID+"/resume", url.Values{"csrf": {m[1]}})
	require.Equal(t, http.StatusOK, status, body)
	d.call(t, "GET", "/v1/subscriptions/"+sub.ID, d.token, "", &got)
	require.Equal(t, "active", got.State())

	status, body = post("/ui/deliveries/not-an-id/redeliver", url.Values{"csrf": {m[1]}})
	require.Equal(t, http.StatusNotFound, status, "the API's answer, shown")
	require.Contains(t, body, "ids are UUIDs")

	status, _ = get("/v1/openapi.json")
	require.Equal(t, http.StatusOK, status, "the OpenAPI description needs no token")
}

// chromiumPath returns Debian's chromium. Without it the test is skipped,
// saying so, or fails when CI is set (as CI systems and .ci/run set it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "chromium is not on PATH: install it (Debian: apt-get install -y chromium) to run the browser test; .ci/run does"
	if v := os.Getenv("CI"); v != "" && v != "false" && v != "0" {
		t.Fatal("CI is set and " + msg)
	}
	t.Skip(msg)
	return ""
}

// TestConsoleInABrowser drives Debian's chromium through the console: log
// in with the token, see the subscription, open its failed delivery, let the
// receiver recover, press Redeliver and see the delivery succeed. The
// hostile fields must not run (the page title stays). Then it creates a
// subscription with the form (the secret shown once), and checks the main
// pages at 1280 and 400 px: no sideways scrolling, the row's buttons on
// screen, no serious or critical axe-core violation; it saves a screenshot
// of each (pageCheck).
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	d := start(t)
	rcv, ok := flakyReceiver(t)
	sub, del := failedDelivery(t, d, rcv.URL)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	// The first action starts the browser: no timeout on its context (a
	// timeout there would stop the browser), a timeout on the rest.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate("about:blank")))
	var dialogs atomic.Int32
	require.NoError(t, chromedp.Listen(bctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	}))
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	run := func(a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		require.NoError(t, err)
		return v
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}

	do(chromedp.Navigate(d.api+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	require.Equal(t, d.api+"/ui/login", run(chromedp.Location()), "not logged in: sent to the login page")
	axe := axeCore(t)
	pageCheck(t, ctx, axe, "login", 1280)
	do(chromedp.SendKeys(chromedp.ID("token"), d.token), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("subscriptions")))
	subsText := run(chromedp.Text(chromedp.ID("subscriptions")))
	require.Contains(t, subsText, sub.ID, "the subscription is listed")
	require.Contains(t, subsText, hostile, "its description, as text")

	row := chromedp.CSS(`tr.delivery[data-id="` + del.ID + `"] a`)
	do(chromedp.Navigate(d.api+"/ui/deliveries?status=failed"), chromedp.WaitVisible(row), chromedp.Click(row),
		chromedp.WaitVisible(chromedp.ID("status")))
	require.Equal(t, "failed", run(chromedp.Text(chromedp.ID("status"))))
	require.Equal(t, d.api+"/ui/deliveries/"+del.ID, run(chromedp.Location()))

	ok.Store(true)
	do(chromedp.Click(chromedp.ID("redeliver")), chromedp.WaitVisible(chromedp.ID("flash")))
	require.Eventually(t, func() bool { // the page has no script: reload it as an operator would
		do(chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("status")))
		return run(chromedp.Text(chromedp.ID("status"))) == "succeeded"
	}, 30*time.Second, 200*time.Millisecond)

	title := run(chromedp.Title())
	require.True(t, strings.HasPrefix(title, "Delivery "), "no injected script ran: title %q", title)
	require.Zero(t, dialogs.Load(), "no injected script opened a dialog")
	require.NotContains(t, run(chromedp.Text(chromedp.ID("delivery"))), "payload_note", "no field names for labels")

	// Create a subscription with the form: its secret is shown once.
	do(chromedp.Navigate(d.api+"/ui/subscriptions/new"), chromedp.WaitVisible(chromedp.ID("create")),
		chromedp.SendKeys(chromedp.ID("f-url"), rcv.URL+"/created"),
		chromedp.Click(chromedp.CSS(`input[name="event"][value="task.completed"]`)),
		chromedp.SendKeys(chromedp.ID("f-description"), "made in the browser"),
		chromedp.Click(chromedp.ID("create-submit")), chromedp.WaitVisible(chromedp.ID("secret")))
	secret := run(chromedp.Text(chromedp.ID("secret")))
	require.NotEmpty(t, secret)
	do(chromedp.Click(chromedp.ID("to-subscription")), chromedp.WaitVisible(chromedp.ID("edit")))
	require.NotContains(t, run(chromedp.OuterHTML(chromedp.CSS("html"))), secret, "the secret is not shown again")
	require.Contains(t, run(chromedp.Text(chromedp.ID("subscription"))), "made in the browser")

	// The main pages at two widths: no sideways scrolling, no serious
	// accessibility violation, a screenshot of each.
	for _, width := range []int{1280, 400} {
		do(chromedp.EmulateViewport(int64(width), 900))
		for _, pg := range consolePages(del.ID, sub.ID, del.EventID) {
			do(chromedp.Navigate(d.api+pg[1]), chromedp.WaitVisible(chromedp.CSS(pg[2])))
			pageCheck(t, ctx, axe, pg[0], width)
			if pg[0] == "subscriptions" {
				inView(t, ctx, `tr[data-id="`+sub.ID+`"] button.pause`)
			}
		}
	}
	// A try with a mistake: the error under its position, at 400 px.
	do(chromedp.Navigate(d.api+"/ui/subscriptions/try?subscription="+sub.ID), chromedp.WaitVisible(chromedp.ID("try")),
		chromedp.SetValue(chromedp.ID("t-filter"), `data.note == "x" &&`),
		chromedp.SetValue(chromedp.ID("t-transform"), `{"text": event + ": " + data.note}`),
		chromedp.Click(chromedp.ID("try-submit")), chromedp.WaitVisible(chromedp.ID("try-result")))
	require.Contains(t, run(chromedp.Text(chromedp.ID("try-result"))), "Filter, line 1, column")
	pageCheck(t, ctx, axe, "try-result", 400)

	// At 400 px the header's Log out button is on screen too.
	inView(t, ctx, `.logout button`)
	do(chromedp.Click(chromedp.CSS(".logout button")), chromedp.WaitVisible(chromedp.ID("token")))
	pageCheck(t, ctx, axe, "login", 400)
}
