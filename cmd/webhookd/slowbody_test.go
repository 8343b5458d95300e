package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// trickle opens a connection to addr from the loopback address ip, sends
// the head of a POST to path announcing a 100-byte body, then one byte
// every 100 ms (10 s in all) until the server stops reading. It returns the
// connection, when the head was sent, and the count of body bytes sent.
func trickle(t *testing.T, ctx context.Context, addr, ip, path, auth string) (net.Conn, time.Time, *atomic.Int64) {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	head := "POST " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n"
	if auth != "" {
		head += "Authorization: Bearer " + auth + "\r\n"
	}
	_, err = io.WriteString(conn, head+"\r\n")
	require.NoError(t, err)
	sent := time.Now()
	var n atomic.Int64
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 100 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return conn, sent, &n
}

// TestSlowBodiesAreCutOff trickles request bodies, one byte every 100 ms,
// at the console's login (no credential needed) and at the API with a
// wrong token (which is answered without reading the body, leaving
// net/http to discard it): with --http-read-timeout 1s each connection is
// answered and closed after about a second, long before its body is done.
func TestSlowBodiesAreCutOff(t *testing.T) {
	t.Parallel()
	d := start(t, "--http-read-timeout", "1s")
	addr := strings.TrimPrefix(d.api, "http://")
	for _, tc := range []struct{ path, auth string }{
		{"/ui/login", ""},
		{"/v1/events", "wrong-token-0123456789abcdef0123456789"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			conn, sent, n := trickle(t, ctx, addr, "127.0.0.1", tc.path, tc.auth)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(8*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err, "an answer before the body is done")
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// The server closes the connection: a read ends at once.
			_, err = conn.Read(make([]byte, 1))
			require.Error(t, err)
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "closed by the server, not waiting: %v", err)
			took := time.Since(sent)
			t.Logf("%s: answered %d and closed after %s, %d of 100 body bytes sent", tc.path, resp.StatusCode, took.Round(time.Millisecond), n.Load())
			require.Less(t, took, 3*time.Second, "cut off about --http-read-timeout after the head")
			require.Less(t, n.Load(), int64(50), "long before the body was complete")
			if tc.auth == "" {
				require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
			}
		})
	}
}

// TestReadTimeoutSparesLongHandlers checks the other side of
// --http-read-timeout: a handler that reads its body and then works past
// the timeout is neither cut off nor cancelled.
func TestReadTimeoutSparesLongHandlers(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = httpServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select { // the handler's work outlasts the read timeout
		case <-time.After(3 * timeout):
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(body)
	}), timeout)
	srv.Start()
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL, "text/plain", strings.NewReader("payload"))
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(got))
	require.Equal(t, "payload", string(got))
}

// TestPublicPathsCapRequestsPerClient holds --http-public-per-client 3
// requests in flight at /ui/login from one address (slow bodies): that
// address's next request to a public path is answered 429 at once, another
// address is served, and once the slow bodies are cut off the first address
// is served again.
func TestPublicPathsCapRequestsPerClient(t *testing.T) {
	t.Parallel()
	d := start(t, "--http-public-per-client", "3", "--http-read-timeout", "3s")
	addr := strings.TrimPrefix(d.api, "http://")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 3 {
		trickle(t, ctx, addr, "127.0.0.4", "/ui/login", "")
	}
	crowded, other := from(t, "127.0.0.4"), from(t, "127.0.0.5")
	get := func(c *http.Client, path string) int {
		resp, err := c.Get(d.api + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	// The three are in flight once the server has read their heads.
	require.Eventually(t, func() bool { return get(crowded, "/ui/login") == http.StatusTooManyRequests }, 5*time.Second, 20*time.Millisecond,
		"the 4th request in flight from one address is refused")
	for _, path := range []string{"/healthz", "/readyz", "/v1/openapi.json", "/ui/static/console.css"} {
		require.Equal(t, http.StatusTooManyRequests, get(crowded, path), path)
	}
	require.Equal(t, http.StatusOK, get(other, "/ui/login"), "another address is served")
	require.Equal(t, http.StatusOK, get(other, "/healthz"))
	// Authenticated paths are not capped: the token is the gate there.
	req, err := http.NewRequest(http.MethodGet, d.api+"/v1/subscriptions", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := crowded.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.Eventually(t, func() bool { return get(crowded, "/ui/login") == http.StatusOK }, 10*time.Second, 50*time.Millisecond,
		"served again once the slow bodies are cut off")
}
