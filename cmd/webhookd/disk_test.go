package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// get returns the status and body of an unauthenticated GET, or 0 and the
// error when there is no answer. It may run inside require.Eventually.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

// Issue 22, item 1: the data dir's disk fills while robots publish. Robots
// must be refused promptly (not time out), /readyz and a metric must say so,
// one warn line too; when space returns ingestion resumes by itself, and
// every acked event is delivered.
func TestRunRefusesEventsWhileTheDiskIsFullAndResumes(t *testing.T) {
	t.Parallel()
	dir := jstest.Tmpfs(t, 64<<20)
	data := filepath.Join(dir, "data")

	// The receiver holds every delivery until the disk has space again, so
	// the jobs pile up in the store and fill it quickly.
	var mu sync.Mutex
	delivered := map[string]bool{}
	gate := make(chan struct{})
	var openGate sync.Once
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-gate
		var ev struct{ ID string }
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &ev) == nil {
			mu.Lock()
			delivered[ev.ID] = true
			mu.Unlock()
		}
	}))
	t.Cleanup(rcv.Close)
	t.Cleanup(func() { openGate.Do(func() { close(gate) }) })

	d := start(t, "--data-dir", data, "--max-store", "0", "--store-min-free", "4MiB")
	tok, err := os.ReadFile(filepath.Join(data, tokenFile))
	require.NoError(t, err)
	token := strings.TrimSpace(string(tok))
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", token, `{"url":"`+rcv.URL+`","events":["task.created"]}`, &sub))

	nc, err := nats.Connect(d.nats)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	publish := func(id string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		body := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 128<<10))
		_, err := js.Publish(ctx, "events.task.created", []byte(body), natsjs.WithMsgID(id))
		return err
	}

	release := jstest.Fill(t, dir, 12<<20)
	var acked []string
	for i := 0; ; i++ {
		require.Less(t, i, 5000, "the disk never filled")
		id := fmt.Sprintf("evt-%d", i)
		if err := publish(id, 3*time.Second); err != nil {
			break
		}
		acked = append(acked, id)
	}
	require.NotEmpty(t, acked)

	require.Eventually(t, func() bool {
		code, body := get(d.api + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "nats store cannot write")
	}, 5*time.Second, 20*time.Millisecond, "/readyz says not ready, with the reason")
	start := time.Now()
	err = publish("while-full", 5*time.Second)
	var apiErr *natsjs.APIError
	require.ErrorAs(t, err, &apiErr, "a refusal, not a timeout")
	require.Less(t, time.Since(start), time.Second, "refused promptly")
	_, metrics := get(d.api + "/metrics")
	require.Contains(t, metrics, "\nwebhookd_store_writable 0\n")
	require.Equal(t, 1, strings.Count(d.logs.String(), "nats store cannot write: refusing new events"), "one warn line")

	release()
	require.Eventually(t, func() bool {
		code, _ := get(d.api + "/readyz")
		return code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "ready again within seconds of space returning")
	openGate.Do(func() { close(gate) })
	require.NoError(t, publish("after", 5*time.Second), "ingestion resumed without a restart")
	_, metrics = get(d.api + "/metrics")
	require.Contains(t, metrics, "\nwebhookd_store_writable 1\n")

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range append(acked, "after") {
			if !delivered[id] {
				return false
			}
		}
		return true
	}, 60*time.Second, 50*time.Millisecond, "every acked event is delivered")
	require.False(t, delivered["while-full"])
}
