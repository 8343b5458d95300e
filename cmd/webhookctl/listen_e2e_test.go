package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/internal/daemontest"
)

// ctlBuild builds the real webhookctl once, beside webhookd (TestMain
// removes that directory).
var ctlBuild struct {
	once sync.Once
	path string
	err  error
}

func webhookctlBin(t *testing.T) string {
	t.Helper()
	ctlBuild.once.Do(func() {
		ctlBuild.path = filepath.Join(filepath.Dir(webhookdBin), "webhookctl")
		out, err := exec.Command("go", "build", "-o", ctlBuild.path, "github.com/robotlab/webhookd/cmd/webhookctl").CombinedOutput()
		if err != nil {
			ctlBuild.err = fmt.Errorf("build webhookctl: %w\n%s", err, out)
		}
	})
	require.NoError(t, ctlBuild.err)
	return ctlBuild.path
}

// listener is a webhookctl listen process; its output lines arrive on lines.
type listener struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *strings.Builder
	mu     sync.Mutex
	done   chan struct{}
}

// startListen runs `webhookctl <args>` against d as a real process.
func startListen(t *testing.T, d *daemon, args ...string) *listener {
	t.Helper()
	l := &listener{lines: make(chan string, 4096), stderr: &strings.Builder{}, done: make(chan struct{})}
	l.cmd = exec.Command(webhookctlBin(t), append([]string{"--server", "http://" + d.httpAddr, "--data-dir", d.dataDir}, args...)...)
	stdout, err := l.cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := l.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, l.cmd.Start())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l.mu.Lock()
			l.stderr.WriteString(sc.Text() + "\n")
			l.mu.Unlock()
		}
	}()
	go func() { wg.Wait(); _ = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		if l.cmd.ProcessState == nil {
			_ = l.cmd.Process.Kill()
		}
		<-l.done
		if t.Failed() {
			t.Logf("webhookctl listen stderr:\n%s", l.errText())
		}
	})
	return l
}

func (l *listener) errText() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stderr.String()
}

// next returns the next output line that matches re, skipping others.
func (l *listener) next(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line := <-l.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no output line matching %s within 20s; stderr:\n%s", re, l.errText())
		}
	}
}

// robot connects to d's embedded NATS as a robot does.
func robot(t *testing.T, d *daemon) natsjs.JetStream {
	t.Helper()
	nc, err := nats.Connect("nats://" + d.natsAddr)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	return js
}

func publish(t *testing.T, js natsjs.JetStream, typ, id, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := js.Publish(ctx, "events."+typ, []byte(data), natsjs.WithMsgID(id))
	require.NoError(t, err)
}

var (
	secretLine = regexp.MustCompile(`^Signing secret: (whsec_\S+)$`)
	subLine    = regexp.MustCompile(`listen subscription ([0-9a-f-]{36})`)
	readyLine  = regexp.MustCompile(`^Ready\.`)
)

// A robot publishes; `webhookctl listen --forward-to` POSTs the event to a
// local receiver with both signatures valid under the secret it printed,
// while a real subscription beside it gets the event too. While the CLI is
// connected its subscription outlives several grace periods; once the CLI
// is killed (SIGKILL: it cannot clean up), the sweeper deletes the
// subscription within the grace period and its quarter.
func TestListenForwardsSignedDeliveriesAndIsSweptAfterKill(t *testing.T) {
	t.Parallel()
	const grace = 2 * time.Second
	d := newDaemon(t, "--listen-grace", grace.String())
	real := newSwitchable(t, http.StatusOK)
	var realSub client.Subscription
	d.ctlJSON(t, &realSub, "subscriptions", "create", "--url", real.URL, "--events", "task.completed")

	type got struct {
		h    http.Header
		body []byte
	}
	local := make(chan got, 16)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		local <- got{r.Header.Clone(), b}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(rcv.Close)

	l := startListen(t, d, "listen", "--events", "task.*", "--forward-to", rcv.URL+"/hook")
	id := l.next(t, subLine)[1]
	secret := l.next(t, secretLine)[1]
	l.next(t, readyLine)

	js := robot(t, d)
	publish(t, js, "task.completed", "evt-listen-1", `{"task_id":"T1"}`)
	var g got
	select {
	case g = <-local:
	case <-time.After(20 * time.Second):
		t.Fatal("the local receiver got nothing")
	}
	var env struct {
		ID    string          `json:"id"`
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(g.body, &env))
	require.Equal(t, "evt-listen-1", env.ID)
	require.Equal(t, "task.completed", env.Event)
	require.JSONEq(t, `{"task_id":"T1"}`, string(env.Data))
	require.Equal(t, id, g.h.Get("X-Webhook-ID"))
	require.Equal(t, "1", g.h.Get("X-Webhook-Attempt"))
	require.Equal(t, "application/json", g.h.Get("Content-Type"))
	// Both schemes verify under the printed secret: webhookd's own and
	// Standard Webhooks, computed here from its specification.
	require.True(t, signature.Verify(secret, g.body, g.h.Get("X-Webhook-Signature")), "X-Webhook-Signature")
	msgID, stamp := g.h.Get("webhook-id"), g.h.Get("webhook-timestamp")
	require.Equal(t, g.h.Get("X-Webhook-Delivery"), msgID)
	require.NoError(t, signature.VerifyStandard(secret, msgID, stamp, g.h.Get("webhook-signature"), g.body, time.Now(), time.Minute))
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID + "." + stamp + "."))
	mac.Write(g.body)
	require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), g.h.Get("webhook-signature"))
	require.Contains(t, l.next(t, regexp.MustCompile(`evt-listen-1  -> POST .*$`))[0], "/hook: 202 Accepted")
	h := <-real.got
	require.Equal(t, realSub.ID, h.Get("X-Webhook-ID"), "the real subscription got it too")

	// Listed, marked, without a secret; no deliveries recorded for it.
	out, errOut, code := d.ctl("subscriptions", "list")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, id+`\s+-\s+task\.\*\s+listen \(expires `, out)
	require.NotContains(t, out, secret)
	var page client.List[client.Delivery]
	d.ctlJSON(t, &page, "deliveries", "list", "--subscription", id)
	require.Empty(t, page.Items, "a listener's events are not deliveries")

	// While connected, its expiry moves on: it outlives two grace periods.
	var s client.Subscription
	d.ctlJSON(t, &s, "subscriptions", "get", id)
	require.True(t, s.Listen)
	first := s.ExpiresAt
	waitFor(t, 20*time.Second, func() bool {
		d.ctlJSON(t, &s, "subscriptions", "get", id)
		return s.ExpiresAt.After(first.Add(2 * grace))
	}, "the expiry moved on by two grace periods")
	publish(t, js, "task.completed", "evt-listen-2", `{"task_id":"T2"}`)
	l.next(t, regexp.MustCompile(`evt-listen-2  -> POST .*: 202 Accepted`))

	// Killed, it cannot delete its subscription: the sweeper does.
	require.NoError(t, l.cmd.Process.Signal(syscall.SIGKILL))
	<-l.done
	killed := time.Now()
	_, _, code = d.ctl("subscriptions", "get", id)
	require.Equal(t, 0, code, "still there right after the kill")
	waitFor(t, grace+grace/4+5*time.Second, func() bool {
		_, _, code := d.ctl("subscriptions", "get", id)
		return code != 0
	}, "the killed listener's subscription deleted")
	t.Logf("listen subscription deleted %s after the CLI was killed (grace %s, sweep every %s)",
		time.Since(killed).Round(10*time.Millisecond), grace, grace/4)
	require.Contains(t, d.log.String(), "expired listen subscription deleted")
	d.ctlJSON(t, &s, "subscriptions", "get", realSub.ID)
	require.Equal(t, "active", s.State(), "the real subscription is untouched")
}

// Two listeners at once each get every event (printed as JSON lines, -o
// json); stopped with SIGTERM, as Ctrl-C would, each deletes its own
// subscription at once, long before the grace period.
func TestListenTwoListenersEachGetEveryEvent(t *testing.T) {
	t.Parallel()
	d := newDaemon(t) // the default grace: 45s
	var ls []*listener
	var ids []string
	for range 2 {
		l := startListen(t, d, "-o", "json", "listen", "--events", "alert.triggered,robot.>")
		var sub client.Subscription
		require.NoError(t, json.Unmarshal([]byte(l.next(t, regexp.MustCompile(`^\{.*"listen":true.*\}$`))[0]), &sub))
		require.True(t, strings.HasPrefix(sub.Secret, "whsec_"))
		ls, ids = append(ls, l), append(ids, sub.ID)
	}
	// Ready: the first line of the stream is not printed in JSON mode, so
	// wait for the server's side instead.
	waitFor(t, 20*time.Second, func() bool { return strings.Count(d.log.String(), `"listener connected"`) == 2 }, "both streams connected")
	js := robot(t, d)
	want := map[string]bool{}
	for i := range 5 {
		typ := "alert.triggered"
		if i%2 == 1 {
			typ = "robot.connected"
		}
		id := fmt.Sprintf("evt-two-%d", i)
		publish(t, js, typ, id, fmt.Sprintf(`{"n":%d}`, i))
		want[id] = true
	}
	publish(t, js, "task.completed", "evt-not-listened", `{}`)
	for i, l := range ls {
		seen := map[string]bool{}
		for len(seen) < len(want) {
			var ev client.ListenEvent
			require.NoError(t, json.Unmarshal([]byte(l.next(t, regexp.MustCompile(`^\{"delivery_id".*$`))[0]), &ev))
			require.Equal(t, ids[i], ev.Headers.Get("X-Webhook-ID"))
			require.True(t, want[ev.EventID], "unexpected event %s", ev.EventID)
			seen[ev.EventID] = true
		}
	}
	for _, l := range ls {
		require.NoError(t, l.cmd.Process.Signal(syscall.SIGTERM))
		<-l.done
		require.Equal(t, 0, l.cmd.ProcessState.ExitCode(), l.errText())
	}
	for _, id := range ids {
		_, errOut, code := d.ctl("subscriptions", "get", id)
		require.Equal(t, 1, code, "listen subscription %s deleted by its CLI on exit", id)
		require.Contains(t, errOut, "not found")
	}
}

// A listener that does not read is told how many deliveries it missed
// ("dropped N"): every event routed while it was connected is either
// streamed or counted. A real subscription beside it keeps delivering;
// its rate without and with the stalled listener is logged.
func TestListenSlowListenerIsToldWhatItDroppedAndSlowsNobody(t *testing.T) {
	t.Parallel()
	const n = 150
	d := newDaemon(t, "--listen-buffer", "4", "--max-event-size", "1MiB")
	var delivered atomic.Int64
	real := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		delivered.Add(1)
	}))
	t.Cleanup(real.Close)
	var realSub client.Subscription
	d.ctlJSON(t, &realSub, "subscriptions", "create", "--url", real.URL, "--events", "maintenance.due")
	js := robot(t, d)
	// 128 KiB events: the stalled stream fills the sockets' buffers soon.
	data := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 128<<10))
	burst := func(round string) float64 {
		before := delivered.Load()
		start := time.Now()
		for i := range n {
			publish(t, js, "maintenance.due", fmt.Sprintf("%s-%d", round, i), data)
		}
		waitFor(t, 60*time.Second, func() bool { return delivered.Load() == before+n }, round+": every event delivered")
		return n / time.Since(start).Seconds()
	}
	burst("warm-up")
	alone := burst("alone")

	token, err := os.ReadFile(filepath.Join(d.dataDir, "admin-token"))
	require.NoError(t, err)
	c, err := client.New("http://"+d.httpAddr, strings.TrimSpace(string(token)))
	require.NoError(t, err)
	var sub client.Subscription
	sub, err = c.CreateListener(context.Background(), client.ListenerInput{Events: []string{"maintenance.due"}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, release := make(chan struct{}), make(chan struct{})
	var got, dropped atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- c.Listen(ctx, sub.ID, client.ListenHandler{
			Ready: func(client.ListenReady) { close(ready) },
			Event: func(client.ListenEvent) error {
				<-release // stalled until the burst is delivered
				got.Add(1)
				return nil
			},
			Dropped: func(k int64) { dropped.Add(k) },
		})
	}()
	<-ready
	beside := burst("beside")
	close(release)
	waitFor(t, 30*time.Second, func() bool { return got.Load()+dropped.Load() == n }, "every event streamed or counted as dropped")
	require.Positive(t, dropped.Load(), "the stalled listener dropped some")
	require.Positive(t, got.Load())
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.NoError(t, c.DeleteSubscription(context.Background(), sub.ID))
	after := burst("after")
	t.Logf("real subscription (%d events of 128 KiB, published one at a time): %.0f events/s alone, %.0f beside a stalled listener, %.0f alone again; the listener got %d and was told of %d dropped",
		n, alone, beside, after, got.Load(), dropped.Load())
}

// A replica that stops ends its listener streams at once (it exits
// cleanly, without waiting for them); the CLI reconnects when a replica
// is back and resumes with the same subscription and secret.
func TestListenSurvivesAReplicaRestart(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--listen-grace", "45s")
	l := startListen(t, d, "listen", "--events", "alert.triggered")
	id := l.next(t, subLine)[1]
	l.next(t, secretLine)
	l.next(t, readyLine)

	stopped := time.Now()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.done:
		require.NoError(t, err, "webhookd exits cleanly with a listener connected")
	case <-time.After(20 * time.Second):
		t.Fatal("webhookd did not stop")
	}
	t.Logf("webhookd stopped %s after SIGTERM with a listener connected", time.Since(stopped).Round(time.Millisecond))
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(l.errText(), "stream lost") }, "the CLI noticed")
	d.start(t)
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(l.errText(), "reconnected") }, "the CLI reconnected")
	publish(t, robot(t, d), "alert.triggered", "evt-after-restart", `{"level":"high"}`)
	line := l.next(t, regexp.MustCompile(`alert\.triggered  evt-after-restart  .*$`))[0]
	require.Contains(t, line, `"level":"high"`)
	var s client.Subscription
	d.ctlJSON(t, &s, "subscriptions", "get", id)
	require.True(t, s.Listen)
}

// --filter becomes the listen subscription's filter: one that does not
// compile is refused in one line, and the router applies it to what the
// listener gets; run's context cancelled (Ctrl-C) ends
// listen with status 0 and deletes its subscription at once.
func TestListenFilterAndCancel(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	_, errOut, code := d.ctl("listen", "--events", "alert.triggered", "--filter", "data.level ==")
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(errOut, "webhookctl: "), errOut)
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	require.Contains(t, errOut, "filter")
	_, errOut, code = d.ctl("listen", "--events", "alert.triggered", "--forward-to", "localhost:3000")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--forward-to")
	// A listener receives every event it matches, whichever team's: a
	// team token may not listen.
	created, errOut, code := d.ctl("tokens", "create", "--name", "team-a-cli", "--owner", "team-a")
	require.Equal(t, 0, code, errOut)
	tok := regexp.MustCompile(`wht\.team-a-cli\.\S+`).FindString(created)
	require.NotEmpty(t, tok, created)
	_, errOut, code = d.ctl("--token", tok, "listen", "--events", "alert.triggered")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "needs the operator's token")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs daemontest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"-o", "json", "listen", "--events", "alert.triggered", "--filter", `data.level == "high"`},
			d.env, strings.NewReader(""), &out, &errs)
	}()
	var sub client.Subscription
	waitFor(t, 20*time.Second, func() bool {
		line, _, _ := strings.Cut(out.String(), "\n")
		return json.Unmarshal([]byte(line), &sub) == nil && sub.ID != ""
	}, "the listen subscription printed")
	require.Equal(t, `data.level == "high"`, sub.Filter)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(d.log.String(), `"listener connected"`) }, "the stream connected")
	// evt-low is routed (a real subscription got it) before evt-high is
	// published: had the listener been sent evt-low, it would have come
	// first, on the same connection.
	real := newSwitchable(t, http.StatusOK)
	d.ctlJSON(t, &client.Subscription{}, "subscriptions", "create", "--url", real.URL, "--events", "alert.triggered")
	js := robot(t, d)
	publish(t, js, "alert.triggered", "evt-low", `{"level":"low"}`)
	select {
	case <-real.got:
	case <-time.After(20 * time.Second):
		t.Fatal("evt-low not routed")
	}
	publish(t, js, "alert.triggered", "evt-high", `{"level":"high"}`)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), `"event_id":"evt-high"`) }, "the event the filter lets through")
	require.NotContains(t, out.String(), "evt-low", "filtered out")
	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errs.String())
	case <-time.After(20 * time.Second):
		t.Fatal("listen did not end when its context was cancelled")
	}
	_, _, code = d.ctl("subscriptions", "get", sub.ID)
	require.Equal(t, 1, code, "deleted at once")
}
