package main

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// from returns an HTTP client whose connections come from the loopback
// address ip (127.0.0.0/8 is all loopback on Linux), so that a test can
// play several client addresses. It follows no redirects.
func from(t *testing.T, ip string) *http.Client {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: dialer.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// bearer sends GET /v1/subscriptions with token and returns the status and
// the Retry-After header.
func bearer(t *testing.T, c *http.Client, d *daemon, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.api+"/v1/subscriptions", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// login posts the console's login form with token.
func login(t *testing.T, c *http.Client, d *daemon, token string) int {
	t.Helper()
	resp, err := c.PostForm(d.api+"/ui/login", url.Values{"token": {token}})
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestWrongTokensAreThrottledPerAddress guesses bearer tokens from one
// address until it is answered 429: the right token from there is then
// refused unchecked (by the API and by the console login, which share the
// budget), while another address still gets in. Each wrong token is logged
// at warn with the address, never the token.
func TestWrongTokensAreThrottledPerAddress(t *testing.T) {
	t.Parallel()
	d := start(t)
	guesser, other := from(t, "127.0.0.1"), from(t, "127.0.0.2")
	wrong := strings.Repeat("0123456789abcdef", 4)

	for i := range 10 {
		status, _ := bearer(t, guesser, d, wrong)
		require.Equal(t, http.StatusUnauthorized, status, "guess %d is within the burst", i+1)
	}
	status, retry := bearer(t, guesser, d, wrong)
	require.Equal(t, http.StatusTooManyRequests, status, "the 11th guess in a row is throttled")
	require.Equal(t, "1", retry, "one guess is earned back per second")
	status, _ = bearer(t, guesser, d, d.token)
	require.Equal(t, http.StatusTooManyRequests, status, "a throttled address's token is not checked, right or wrong")
	require.Equal(t, http.StatusTooManyRequests, login(t, guesser, d, d.token), "the console login shares the budget")

	status, _ = bearer(t, other, d, d.token)
	require.Equal(t, http.StatusOK, status, "another address is not slowed")
	require.Equal(t, http.StatusSeeOther, login(t, other, d, d.token))

	var e apiErr
	require.Equal(t, http.StatusTooManyRequests, d.call(t, http.MethodGet, "/v1/status", wrong, "", &e))
	require.Equal(t, client.CodeTooManyRequests, e.Error.Code)

	logs := d.logs.String()
	require.Contains(t, logs, `"level":"warn"`)
	require.Regexp(t, `"level":"warn".*"remote_addr":"127\.0\.0\.1:\d+".*"wrong bearer token"`, logs)
	require.NotContains(t, logs, wrong, "the guessed token is never logged")
}

// TestConsoleLoginGuessesAreThrottled guesses at the console's login form
// from one address: ten wrong tokens are answered "Wrong token.", the
// eleventh 429 with Retry-After, and the right one is then refused too.
// Each wrong token is logged at warn with the address.
func TestConsoleLoginGuessesAreThrottled(t *testing.T) {
	t.Parallel()
	d := start(t)
	guesser := from(t, "127.0.0.3")
	wrong := strings.Repeat("fedcba9876543210", 4)
	for i := range 10 {
		require.Equal(t, http.StatusUnauthorized, login(t, guesser, d, wrong), "guess %d", i+1)
	}
	resp, err := guesser.PostForm(d.api+"/ui/login", url.Values{"token": {wrong}})
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, string(body), "Too many wrong tokens")
	require.Equal(t, http.StatusTooManyRequests, login(t, guesser, d, d.token), "the right token is not checked while throttled")

	logs := d.logs.String()
	require.Regexp(t, `"level":"warn".*"remote_addr":"127\.0\.0\.3:\d+".*"console login with a wrong token"`, logs)
	require.NotContains(t, logs, wrong)
}
