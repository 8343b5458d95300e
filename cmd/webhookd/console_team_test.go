package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// TestConsoleFormsStayInTheTeam logs a team in to the console: what it
// creates with the form is its own, and the forms of another team's
// subscription (its page, edit, rotate, ping, delete) answer 404 and
// change nothing. The message log, the operator's, is not offered.
func TestConsoleFormsStayInTheTeam(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, _ := receiver(t)
	tokA := createToken(t, d, "a-web", "team-a")
	tokB := createToken(t, d, "b-web", "team-b")
	var theirs client.Subscription
	require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", tokB,
		`{"url":"`+rcv.URL+`/b","events":["task.completed"],"description":"board of b"}`, &theirs))

	u := loginConsole(t, &daemon{api: d.api, token: tokA})
	status, body := u.post("/ui/subscriptions", u.form("url", rcv.URL+"/a", "event", "task.completed", "description", "board of a"))
	require.Equal(t, http.StatusCreated, status, body)
	require.Regexp(t, secretShown, body)
	var list client.List[client.Subscription]
	require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions", tokA, "", &list))
	require.Len(t, list.Items, 1, "team a sees the one it made")
	require.Equal(t, "board of a", list.Items[0].Description)

	_, body = u.get("/ui/subscriptions")
	require.NotContains(t, body, theirs.ID)
	require.NotContains(t, body, `href="/ui/events"`, "the message log is the operator's")
	status, _ = u.get("/ui/subscriptions/" + theirs.ID)
	require.Equal(t, http.StatusNotFound, status)
	status, _ = u.get("/ui/subscriptions/" + theirs.ID + "/delete")
	require.Equal(t, http.StatusNotFound, status)
	status, _ = u.get("/ui/subscriptions/try?subscription=" + theirs.ID)
	require.Equal(t, http.StatusNotFound, status)
	for action, form := range map[string]url.Values{
		"edit":   u.form("url", rcv.URL+"/stolen", "event", "task.completed", "description", "mine now"),
		"rotate": u.form("grace", "1h"),
		"ping":   u.form(),
		"delete": u.form("confirm", "yes"),
	} {
		status, body = u.post("/ui/subscriptions/"+theirs.ID+"/"+action, form)
		require.Equal(t, http.StatusNotFound, status, action)
		require.NotRegexp(t, secretShown, body, action)
	}
	var got client.Subscription
	require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions/"+theirs.ID, tokB, "", &got))
	require.Equal(t, rcv.URL+"/b", got.URL, "team b's subscription is unchanged")
	require.Equal(t, "board of b", got.Description)
	require.Zero(t, got.PreviousSecretExpiresAt, "its secret was not rotated")
}
