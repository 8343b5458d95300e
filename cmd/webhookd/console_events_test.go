package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// TestConsoleMessageLog reads the message log through the console against
// a running webhookd: an event no subscription matches is listed as such
// with its payload; a delivered event lists its delivery, which links back.
func TestConsoleMessageLog(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, got := receiver(t)
	in, err := json.Marshal(client.SubscriptionInput{URL: rcv.URL, Events: []string{"task.completed"}})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", d.token, string(in), nil))
	var lonely, delivered client.Published
	require.Equal(t, http.StatusAccepted, d.call(t, "POST", "/v1/events", d.token, `{"event":"robot.connected","data":{"robot":"r-7"}}`, &lonely))
	require.Equal(t, http.StatusAccepted, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.completed","data":{"task":"t-1"}}`, &delivered))
	next(t, got)
	u := loginConsole(t, d)

	var body string
	waitFor(t, func() bool { // routing is asynchronous
		_, body = u.get("/ui/events")
		return regexpMatch(`(?s)data-id="`+lonely.ID+`".*?no subscriber`, body) &&
			regexpMatch(`(?s)data-id="`+delivered.ID+`".*?routed: 1 delivery`, body)
	})
	status, body := u.get("/ui/events?type=robot.connected")
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `data-id="`+lonely.ID+`"`)
	require.NotContains(t, body, `data-id="`+delivered.ID+`"`, "filtered by type")

	status, body = u.get("/ui/events/" + lonely.ID)
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "&#34;robot&#34;: &#34;r-7&#34;", "its payload")
	require.Contains(t, body, "No subscriber: no subscription matched its type")

	_, body = u.get("/ui/events/" + delivered.ID)
	require.Contains(t, body, "&#34;task&#34;: &#34;t-1&#34;")
	m := regexpFind(`href="/ui/deliveries/([0-9a-f-]{36})"`, body)
	require.NotEmpty(t, m, "its delivery, linked")
	_, body = u.get("/ui/deliveries/" + m)
	require.Contains(t, body, `href="/ui/events/`+delivered.ID+`"`, "the delivery links back to its event")
	require.Contains(t, body, "&#34;task&#34;: &#34;t-1&#34;", "a succeeded delivery shows its payload from the message log")

	var slashed client.Published
	require.Equal(t, http.StatusAccepted, d.call(t, "POST", "/v1/events", d.token, `{"event":"robot.connected","id":"lab/run-1","data":{"robot":"r-8"}}`, &slashed))
	waitFor(t, func() bool {
		_, body = u.get("/ui/events")
		return strings.Contains(body, `href="/ui/events/lab%2Frun-1"`)
	})
	status, body = u.get("/ui/events/lab%2Frun-1")
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "&#34;robot&#34;: &#34;r-8&#34;", "an event id with a slash, through its escaped link")

	status, body = u.get("/ui/events?since=yesterday")
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "since: &#34;yesterday&#34; is not a time")
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// regexpFind returns the first group of re's first match in s, or "".
func regexpFind(re, s string) string {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}
