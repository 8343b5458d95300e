package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/daemontest"
)

// webhookdBin is the real daemon, built once for these end-to-end tests.
var webhookdBin string

func TestMain(m *testing.M) { daemontest.Main(m, &webhookdBin) }

// daemon is a webhookd process.
type daemon struct {
	dataDir, httpAddr, natsAddr string
	args                        []string
	cmd                         *exec.Cmd
	log                         *daemontest.Buffer
	done                        chan error
}

func newDaemon(t *testing.T, extra ...string) *daemon {
	t.Helper()
	d := &daemon{dataDir: t.TempDir(), httpAddr: daemontest.FreeAddr(t), natsAddr: daemontest.FreeAddr(t)}
	d.args = append([]string{"--data-dir", d.dataDir, "--http-addr", d.httpAddr, "--nats-listen", d.natsAddr,
		"--allow-targets", "127.0.0.0/8", "--ack-wait", "2s", "--shutdown-timeout", "5s"}, extra...)
	t.Cleanup(func() {
		if d.cmd != nil && d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			<-d.done
		}
		if t.Failed() {
			t.Logf("webhookd log:\n%s", d.log.String())
		}
	})
	d.start(t)
	return d
}

// start launches the process and waits for /readyz.
func (d *daemon) start(t *testing.T) {
	t.Helper()
	d.log = &daemontest.Buffer{}
	d.cmd = exec.Command(webhookdBin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	require.NoError(t, d.cmd.Start())
	d.done = make(chan error, 1)
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + d.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("webhookd exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("webhookd not ready within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill9 kills the process with SIGKILL, as a crash would.
func (d *daemon) kill9(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Kill())
	<-d.done
}

// ctl runs webhookctl's root command against d and returns stdout, stderr and
// the exit status.
func (d *daemon) ctl(args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := run(args, d.env, &out, &errOut)
	return out.String(), errOut.String(), code
}

// env is webhookctl's environment for d: its server and data dir.
func (d *daemon) env(k string) string {
	switch k {
	case "WEBHOOK_SERVER":
		return "http://" + d.httpAddr
	case "WEBHOOK_DATA_DIR":
		return d.dataDir
	}
	return ""
}

// ctlJSON runs a command with -o json and decodes its output into v.
func (d *daemon) ctlJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, errOut, code := d.ctl(append([]string{"-o", "json"}, args...)...)
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), v), out)
}

// switchable is a receiver whose answer can be changed, recording deliveries.
type switchable struct {
	*httptest.Server
	status atomic.Int32
	got    chan http.Header
}

func newSwitchable(t *testing.T, status int) *switchable {
	s := &switchable{got: make(chan http.Header, 256)}
	s.status.Store(int32(status))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.got <- r.Header.Clone()
		w.WriteHeader(int(s.status.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestCLICreatePublishFailRedeliver(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--retry-backoff", "100ms,200ms")
	ok := newSwitchable(t, http.StatusOK)
	bad := newSwitchable(t, http.StatusBadGateway)

	var good, failing client.Subscription
	d.ctlJSON(t, &good, "subscriptions", "create", "--url", ok.URL, "--events", "task.completed")
	d.ctlJSON(t, &failing, "subscriptions", "create", "--url", bad.URL, "--events", "task.completed", "--timeout", "2s")
	require.NotEmpty(t, good.Secret)
	require.Equal(t, "2s", failing.Timeout)

	out, errOut, code := d.ctl("events", "publish", "task.completed", "--data", `{"task_id":"T1"}`, "--id", "evt-cli")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "evt-cli")

	// The good receiver's delivery succeeds.
	var page client.List[client.Delivery]
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &page, "deliveries", "list", "--subscription", good.ID)
		return len(page.Items) == 1 && page.Items[0].Status == "succeeded"
	}, "good delivery succeeded")

	// The failing one is failed after 3 attempts.
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &page, "deliveries", "list", "--status", "failed")
		return len(page.Items) == 1
	}, "failed delivery")
	failed := page.Items[0]
	require.Equal(t, failing.ID, failed.SubscriptionID)
	require.Len(t, failed.Attempts, 3)
	table, _, code := d.ctl("deliveries", "list", "--status", "failed")
	require.Equal(t, 0, code)
	require.Contains(t, table, failed.ID)
	require.Contains(t, table, "502")

	// Fix the receiver, redeliver: same delivery id, attempt 4, succeeded.
	bad.status.Store(http.StatusOK)
	for range 3 {
		<-bad.got
	}
	_, errOut, code = d.ctl("deliveries", "redeliver", failed.ID)
	require.Equal(t, 0, code, errOut)
	var h http.Header
	select {
	case h = <-bad.got:
	case <-time.After(15 * time.Second):
		t.Fatal("redelivery did not arrive")
	}
	require.Equal(t, failed.ID, h.Get("X-Webhook-Delivery"))
	require.Equal(t, "4", h.Get("X-Webhook-Attempt"))
	var one client.Delivery
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &one, "deliveries", "get", failed.ID)
		return one.Status == "succeeded"
	}, "redelivered delivery succeeded")
	require.Len(t, one.Attempts, 4)

	// list and get never show secrets; the daemon never logged them.
	listOut, _, _ := d.ctl("-o", "json", "subscriptions", "list")
	getOut, _, _ := d.ctl("subscriptions", "get", good.ID)
	for _, s := range []string{listOut, getOut, d.log.String()} {
		require.NotContains(t, s, good.Secret)
		require.NotContains(t, s, failing.Secret)
	}
}

func TestCLIReplayAfterAnOutage(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--retry-backoff", "")
	rcv := newSwitchable(t, http.StatusServiceUnavailable)
	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", rcv.URL, "--events", "alert.triggered")
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for i := range 3 {
		_, errOut, code := d.ctl("events", "publish", "alert.triggered", "--data", `{}`, "--id", fmt.Sprintf("out-%d", i))
		require.Equal(t, 0, code, errOut)
	}
	var page client.List[client.Delivery]
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &page, "deliveries", "list", "--status", "failed", "--subscription", sub.ID)
		return len(page.Items) == 3
	}, "three failed deliveries")
	for range 3 {
		<-rcv.got
	}

	var plan client.ReplayResult
	d.ctlJSON(t, &plan, "deliveries", "replay", "--subscription", sub.ID, "--since", since, "--dry-run")
	require.True(t, plan.DryRun)
	require.Equal(t, 3, plan.Count)
	require.Empty(t, rcv.got, "a dry run sends nothing")

	rcv.status.Store(http.StatusOK)
	out, errOut, code := d.ctl("deliveries", "replay", "--subscription", sub.ID, "--since", since, "--rate", "50")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "replayed 3/3", "progress line")
	require.Contains(t, out, "3 failed deliveries queued again")
	seen := map[string]bool{}
	for range 3 {
		select {
		case h := <-rcv.got:
			seen[h.Get("X-Webhook-Delivery")] = true
			require.Equal(t, "2", h.Get("X-Webhook-Attempt"))
		case <-time.After(15 * time.Second):
			t.Fatal("replayed delivery did not arrive")
		}
	}
	require.Len(t, seen, 3)
}

func TestCLIErrorsAreOneLineWithExitStatus1(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	cases := [][]string{
		{"subscriptions", "get", "no-such-id"},
		{"subscriptions", "create", "--url", "not a url", "--events", "task.completed"},
		{"subscriptions", "create", "--events", "task.completed"}, // missing --url
		{"events", "publish", "task.completed", "--data", "{not json"},
		{"deliveries", "list", "--status", "lost"},
		{"-o", "yaml", "status"},
		{"--token", "wrong", "status"},
		{"--server", "http://" + daemontest.FreeAddr(t), "status"},
	}
	for _, args := range cases {
		out, errOut, code := d.ctl(args...)
		require.Equal(t, 1, code, "%v", args)
		require.Empty(t, out, "%v", args)
		require.True(t, strings.HasPrefix(errOut, "webhookctl: "), "%v: %q", args, errOut)
		require.Equal(t, 1, strings.Count(errOut, "\n"), "%v: one line: %q", args, errOut)
	}
	out, errOut, code := d.ctl("status")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "DELIVERIES/workers")
	out, _, code = d.ctl("events", "types")
	require.Equal(t, 0, code)
	require.Contains(t, out, "maintenance.due")
}

// The process is killed with SIGKILL in the middle of a load and restarted on
// the same data dir: every event published reaches the receiver at least once.
func TestKill9MidLoadLosesNothing(t *testing.T) {
	t.Parallel()
	const events = 1500
	d := newDaemon(t, "--retry-backoff", "200ms,400ms,800ms", "--workers", "32")

	var mu sync.Mutex
	counts := map[string]int{}
	total := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		counts[ev.ID]++
		total++
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	distinct := func() int { mu.Lock(); defer mu.Unlock(); return len(counts) }
	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", rcv.URL, "--events", ">")

	// A robot: publishes each event until the stream acknowledges it,
	// retrying with the same Nats-Msg-Id through the outage.
	nc, err := nats.Connect("nats://"+d.natsAddr, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	published := make(chan error, 1)
	go func() {
		for i := range events {
			for {
				pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := js.Publish(pctx, "events.task.completed", []byte(fmt.Sprintf(`{"n":%d}`, i)), natsjs.WithMsgID(fmt.Sprintf("load-%04d", i)))
				pcancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					published <- ctx.Err()
					return
				}
				time.Sleep(20 * time.Millisecond) // the server is down: retry
			}
		}
		published <- nil
	}()

	waitFor(t, time.Minute, func() bool { return distinct() >= events/3 }, "a third of the events delivered")
	d.kill9(t)
	killedAt := distinct()
	d.start(t) // same data dir, same ports

	require.NoError(t, <-published)
	waitFor(t, 90*time.Second, func() bool { return distinct() == events }, "every event delivered")
	mu.Lock()
	defer mu.Unlock()
	dups := total - events
	t.Logf("kill -9 after %d of %d events delivered; %d deliveries in all, %d duplicates (%.1f%%)",
		killedAt, events, total, dups, 100*float64(dups)/events)
	for i := range events {
		require.GreaterOrEqual(t, counts[fmt.Sprintf("load-%04d", i)], 1)
	}
}
