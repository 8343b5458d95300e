package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/internal/daemontest"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// previousRelease is the commit of the release before the batched audit
// records (format 2).
const previousRelease = "de48cf8"

// buildPreviousRelease builds webhookd as of previousRelease from this
// repository's history into a temporary directory. Without the history (a
// source archive), the test is skipped, except under CI, where it fails.
func buildPreviousRelease(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	fail := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		fail("not a git checkout, so no previous release to build: %v", err)
	}
	archive := filepath.Join(dir, "src.tar")
	arch := exec.Command("git", "archive", "--format=tar", "-o", archive, previousRelease)
	arch.Dir = strings.TrimSpace(string(root))
	if out, err := arch.CombinedOutput(); err != nil {
		fail("the previous release (%s) is not in this checkout's git history: %v\n%s", previousRelease, err, out)
	}
	src := filepath.Join(dir, "src")
	require.NoError(t, os.Mkdir(src, 0o755))
	if out, err := exec.Command("tar", "-xf", archive, "-C", src).CombinedOutput(); err != nil {
		t.Fatalf("unpack the previous release: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "webhookd-"+previousRelease)
	build := exec.Command("go", "build", "-o", bin, "./cmd/webhookd")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the previous release: %v\n%s", err, out)
	}
	return bin
}

// countingReceiver answers 200 and counts the distinct deliveries of
// eventType it got.
type countingReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	ids map[string]bool
}

func newCountingReceiver(t *testing.T, eventType string) *countingReceiver {
	r := &countingReceiver{ids: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-Webhook-Event") == eventType {
			r.mu.Lock()
			r.ids[req.Header.Get("X-Webhook-Delivery")] = true
			r.mu.Unlock()
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *countingReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

// succeededCount counts the succeeded deliveries of subscription subID that d's
// index lists.
func succeededCount(t *testing.T, d *daemon, subID string) int {
	t.Helper()
	var list client.List[client.Delivery]
	require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/deliveries?limit=1000&status=succeeded&subscription="+subID, d.token, "", &list))
	return len(list.Items)
}

// auditFormats counts AUDIT's messages by record format ("" for format 1).
func auditFormats(t *testing.T, js natsjs.JetStream) map[string]int {
	t.Helper()
	ctx := context.Background()
	str, err := js.Stream(ctx, jetstream.StreamAudit)
	require.NoError(t, err)
	info, err := str.Info(ctx)
	require.NoError(t, err)
	out := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := str.GetMsg(ctx, seq)
		require.NoError(t, err)
		if !strings.HasSuffix(m.Subject, ".job") {
			out[m.Header.Get(history.HeaderAudit)]++
		}
	}
	return out
}

// TestRollingUpgradeFromThePreviousRelease runs a replica of the previous
// release and one of this build on one NATS server, then replaces the old
// one by this build on its data dir, as a rolling upgrade does. Every
// record reaches both indexes at every step: the new build reads the old
// build's records; it writes one record per message (format 1) while the
// old indexer is registered, so the old build reads its records too; and
// once every indexer is of this build, it batches (format 2).
func TestRollingUpgradeFromThePreviousRelease(t *testing.T) {
	oldBin := buildPreviousRelease(t)
	ns := jstest.RunServer(t)
	url := ns.ClientURL()
	publish := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m := nats.NewMsg(jetstream.EventSubject("task.completed"))
			m.Data = []byte(`{"robot_id":"R001"}`)
			m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s-%d", prefix, i))
			_, err := ns.JS.PublishMsg(ctx, m)
			cancel()
			require.NoError(t, err)
		}
	}
	rcv := newCountingReceiver(t, "task.completed")

	// The previous release alone.
	old := daemontest.Start(t, oldBin, "--nats-url", url, "--retry-backoff", "100ms,200ms")
	od := &daemon{api: old.AdminURL(), token: old.Token}
	var sub client.Subscription
	require.Equal(t, http.StatusCreated, od.call(t, "POST", "/v1/subscriptions", od.token,
		fmt.Sprintf(`{"url":%q,"events":["task.completed"]}`, rcv.srv.URL), &sub))
	publish("before", 20)
	waitFor(t, func() bool { return rcv.count() == 20 })

	// This build beside it: it indexes the old build's records.
	nw := start(t, "--nats-url", url)
	waitFor(t, func() bool { return nw.call(t, "GET", "/v1/subscriptions/"+sub.ID, nw.token, "", nil) == http.StatusOK })
	waitFor(t, func() bool { return succeededCount(t, nw, sub.ID) == 20 })

	// Both deliver; each index holds every delivery, whichever build
	// recorded it. A ping through this build is recorded by this build
	// alone, and reaches the old build's index.
	publish("during", 40)
	waitFor(t, func() bool { return rcv.count() == 60 })
	var ping client.PingResult
	require.Equal(t, http.StatusOK, nw.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/ping", nw.token, "", &ping))
	waitFor(t, func() bool {
		return od.call(t, "GET", "/v1/deliveries/"+ping.DeliveryID, od.token, "", nil) == http.StatusOK
	})
	waitFor(t, func() bool { return succeededCount(t, od, sub.ID) == 61 && succeededCount(t, nw, sub.ID) == 61 })
	require.Equal(t, map[string]int{"": auditFormats(t, ns.JS)[""]}, auditFormats(t, ns.JS),
		"format 1 only while an indexer of the previous release is registered")

	// The old replica replaced by this build on its data dir (same
	// replica id): its index is rebuilt in the current format, and once
	// every indexer is of this build the records are batched.
	old.Stop(t)
	nw2 := start(t, "--nats-url", url, "--data-dir", old.DataDir)
	require.Contains(t, nw2.logs.String(), "rebuilding the delivery indexes")
	nw2.token = old.Token
	// A ping's record goes through the recorder's batches (the
	// dispatcher's own records may still be pipelined one per message).
	pings := 1
	for i := 0; auditFormats(t, ns.JS)["2"] == 0; i++ {
		require.Less(t, i, 60, "no batched record 30 s after the last old indexer left")
		require.Equal(t, http.StatusOK, nw.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/ping", nw.token, "", nil))
		pings++
		time.Sleep(500 * time.Millisecond) // pacing: the recorders read the indexers' formats every 5 s
	}
	publish("after", 20)
	// The 20 arrive first; then both indexes hold them and every ping.
	// (Waiting on the counts alone could end before the first "after"
	// event arrived, while the counts still agreed on the 60 before.)
	waitFor(t, func() bool { return rcv.count() == 80 })
	waitFor(t, func() bool {
		return succeededCount(t, nw, sub.ID) == 80+pings && succeededCount(t, nw2, sub.ID) == 80+pings
	})
	require.Equal(t, 80, rcv.count(), "each event once")
}
