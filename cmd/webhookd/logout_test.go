package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream/jstest"
)

// TestLogoutHoldsOnEveryReplica runs two replicas on one NATS server with
// the same admin token: a session from replica A works on both; after a
// logout on A, a copy of its cookie taken before is refused on A and on B.
func TestLogoutHoldsOnEveryReplica(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	const token = "0f5e9c2a7b1d4e8f3a6c0b9d2e7f1a4c"
	a := start(t, "--nats-url", ns.ClientURL(), "--admin-token", token)
	b := start(t, "--nats-url", ns.ClientURL(), "--admin-token", token)
	c := from(t, "127.0.0.1")

	get := func(d *daemon, ck *http.Cookie) (int, string) {
		req, err := http.NewRequest(http.MethodGet, d.api+"/ui/subscriptions", nil)
		require.NoError(t, err)
		req.AddCookie(ck)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	resp, err := c.PostForm(a.api+"/ui/login", url.Values{"token": {token}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Len(t, resp.Cookies(), 1)
	copied := resp.Cookies()[0]

	status, page := get(a, copied)
	require.Equal(t, http.StatusOK, status)
	status, _ = get(b, copied)
	require.Equal(t, http.StatusOK, status, "a session works on every replica")

	m := csrfInput.FindStringSubmatch(page)
	require.NotNil(t, m)
	req, err := http.NewRequest(http.MethodPost, a.api+"/ui/logout", strings.NewReader(url.Values{"csrf": {m[1]}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(copied)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/ui/login", resp.Header.Get("Location"))

	status, _ = get(a, copied)
	require.Equal(t, http.StatusSeeOther, status, "the copied cookie is refused where it logged out")
	status, _ = get(b, copied)
	require.Equal(t, http.StatusSeeOther, status, "and on the other replica")
	require.Contains(t, a.logs.String(), "console session ended by logout")
}
