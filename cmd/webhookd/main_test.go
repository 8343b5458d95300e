package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

// syncBuffer collects the daemon's log output safely across goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func noEnv(string) (string, bool) { return "", false }

// daemon is webhookd's run function running in the test process.
type daemon struct {
	api, nats, dataDir, token string
	logs                      *syncBuffer
	stop                      func() error
}

// start runs webhookd on free ports and a temporary data dir, with loopback
// targets allowed and short retries, and waits until /readyz answers 200.
// A port taken by a parallel test between freeAddr and the listen is
// retried with new ports.
func start(t *testing.T, extra ...string) *daemon {
	t.Helper()
	for try := 1; ; try++ {
		d, err := tryStart(t, extra...)
		if err == nil {
			return d
		}
		if !strings.Contains(err.Error(), "address already in use") || try == 3 {
			t.Fatal(err)
		}
	}
}

func tryStart(t *testing.T, extra ...string) (*daemon, error) {
	t.Helper()
	d := &daemon{dataDir: t.TempDir(), logs: &syncBuffer{}}
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	d.api, d.nats = "http://"+httpAddr, "nats://"+natsAddr
	args := append([]string{
		"--data-dir", d.dataDir, "--http-addr", httpAddr, "--nats-listen", natsAddr,
		"--allow-targets", "127.0.0.0/8", "--retry-backoff", "100ms,200ms", "--ack-wait", "2s",
		"--shutdown-timeout", "5s", "--log-level", "debug",
	}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, noEnv, d.logs) }()
	var once sync.Once
	var stopErr error
	d.stop = func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(d.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			cancel()
			return nil, fmt.Errorf("webhookd exited before ready: %v\n%s", err, d.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = d.stop()
			return nil, fmt.Errorf("webhookd not ready\n%s", d.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { require.NoError(t, d.stop()) })
	b, err := os.ReadFile(filepath.Join(d.dataDir, tokenFile))
	if err == nil {
		d.token = strings.TrimSpace(string(b))
	}
	return d, nil
}

// call sends one API request and decodes the JSON answer into out (if any).
func (d *daemon) call(t *testing.T, method, path, token, body string, out any) int {
	t.Helper()
	status, raw := d.raw(t, method, path, token, body)
	if out != nil && len(raw) > 0 {
		require.NoError(t, json.Unmarshal([]byte(raw), out), raw)
	}
	return status
}

// raw sends one API request and returns the status and the body.
func (d *daemon) raw(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, d.api+path, r)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestRunHelpExitsCleanly(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, noEnv, &out))
	for _, f := range []string{"--data-dir", "--nats-url", "--nats-listen", "--http-addr", "--admin-token",
		"--delivery-timeout", "--retry-backoff", "--allow-targets", "--log-level", "--log-format"} {
		require.Contains(t, out.String(), f)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), []string{"--retry-backoff", "soon"}, noEnv, io.Discard)
	var fe *config.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "retry-backoff", fe.Field)

	env := func(k string) (string, bool) {
		if k == "WEBHOOKD_LOG_FORMAT" {
			return "xml", true
		}
		return "", false
	}
	err = run(context.Background(), nil, env, io.Discard)
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "log-format", fe.Field)
}

func TestRunCreatesDataDirAndToken(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "data")
	d := start(t, "--data-dir", dir) // the later flag wins
	d.dataDir = dir
	info, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "data dir created for its owner only") // umask only removes bits
	info, err = os.Stat(filepath.Join(dir, tokenFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "token readable only by its owner")
	b, err := os.ReadFile(filepath.Join(dir, tokenFile))
	require.NoError(t, err)
	token := strings.TrimSpace(string(b))
	require.Len(t, token, 64)
	_, err = hex.DecodeString(token)
	require.NoError(t, err, "64 hex characters: 32 random bytes")
	require.NotContains(t, d.logs.String(), token, "the token is never logged")
	require.Contains(t, d.logs.String(), filepath.Join(dir, tokenFile), "its location is")
	require.Equal(t, http.StatusOK, d.call(t, http.MethodGet, "/v1/event-types", token, "", nil))
}

func TestRunRefusesADataDirInUse(t *testing.T) {
	t.Parallel()
	d := start(t)
	err := run(context.Background(), []string{"--data-dir", d.dataDir, "--http-addr", freeAddr(t), "--nats-listen", freeAddr(t)}, noEnv, io.Discard)
	require.ErrorContains(t, err, "in use by another webhookd")
}

func TestRunFailsClearlyWhenNATSIsUnreachable(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), []string{"--data-dir", t.TempDir(), "--http-addr", freeAddr(t),
		"--nats-url", "nats://" + freeAddr(t)}, noEnv, io.Discard)
	require.Error(t, err)
	require.ErrorContains(t, err, "NATS unavailable")
}

func TestRunStopsCleanly(t *testing.T) {
	t.Parallel()
	d := start(t)
	require.NoError(t, d.stop())
	require.Contains(t, d.logs.String(), "webhookd stopped")
	// The same data dir starts again: the lock was released.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		errc <- run(ctx, []string{"--data-dir", d.dataDir, "--http-addr", freeAddr(t), "--nats-listen", freeAddr(t)}, noEnv, logs)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "webhookd started") {
		select {
		case err := <-errc:
			t.Fatalf("restart failed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("restart not started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-errc)
	require.NotContains(t, logs.String(), "admin token generated", "the token is kept across restarts")
}

func TestRunServesPprofOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	d := start(t, "--pprof-addr", addr)
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, d.logs.String(), "profiler listening")
	// The admin API does not serve it.
	require.Equal(t, http.StatusNotFound, d.call(t, http.MethodGet, "/debug/pprof/cmdline", d.token, "", nil))

	off := start(t)
	require.NotContains(t, off.logs.String(), "profiler listening", "off by default")
}
