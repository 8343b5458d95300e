package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/daemontest"
)

// vector is a real delivery and the secrets to check it with.
type vector struct {
	Headers map[string]string `json:"headers"` // lower-case names
	Body    string            `json:"body"`
	Secret  string            `json:"secret"`
	Other   string            `json:"other"` // another subscription's secret
}

// readmeBlock returns the first fenced block of the given language in
// docs/receivers.md, the receiver authors' page.
func readmeBlock(t *testing.T, lang string) string {
	t.Helper()
	b, err := os.ReadFile("../docs/receivers.md")
	require.NoError(t, err)
	s := string(b)
	i := strings.Index(s, "## For receiver authors")
	require.GreaterOrEqual(t, i, 0)
	m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindStringSubmatch(s[i:])
	require.NotNil(t, m, "no %s block in docs/receivers.md's receiver section", lang)
	return m[1]
}

// realDelivery captures one delivery from the real dispatcher.
func realDelivery(t *testing.T) vector {
	t.Helper()
	d := daemontest.Start(t, bins.webhookd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := make(chan vector, 4)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		v := vector{Headers: map[string]string{}, Body: string(body)}
		for k := range r.Header {
			v.Headers[strings.ToLower(k)] = r.Header.Get(k)
		}
		got <- v
	}))
	t.Cleanup(rcv.Close)
	admin := d.Client(t)
	sub, err := admin.CreateSubscription(ctx, client.SubscriptionInput{URL: rcv.URL, Events: []string{"alert.triggered"}})
	require.NoError(t, err)
	other, err := admin.CreateSubscription(ctx, client.SubscriptionInput{URL: "https://unused.example/x", Events: []string{"maintenance.due"}})
	require.NoError(t, err)
	_, err = admin.Publish(ctx, client.PublishRequest{Event: "alert.triggered", Data: json.RawMessage(`{"level":"high","robot_id":"R001"}`)})
	require.NoError(t, err)
	select {
	case v := <-got:
		v.Secret, v.Other = sub.Secret, other.Secret
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30s")
		return vector{}
	}
}

// The Python and Node snippets of docs/receivers.md verify a real delivery with its
// secret, and refuse it with another secret or an altered body.
func TestReceiverDocSnippetsVerifyARealDelivery(t *testing.T) {
	t.Parallel()
	_, pyErr := exec.LookPath("python3")
	_, nodeErr := exec.LookPath("node")
	if pyErr != nil && nodeErr != nil && !inCI() {
		t.Skip("neither python3 nor node is installed (install python3 or nodejs to check the snippets of docs/receivers.md)")
	}
	vec, err := json.Marshal(realDelivery(t))
	require.NoError(t, err)
	want := `[[null,null],["signature does not match","signature does not match"],["signature does not match","signature does not match"]]`

	t.Run("python", func(t *testing.T) {
		python := tool(t, "python3", "python3", "to check the Python snippet of docs/receivers.md")
		driver := readmeBlock(t, "python") + `
import json, sys
class Headers(dict):
    def get(self, k, default=None):
        return super().get(k.lower(), default)
v = json.load(sys.stdin)
h, body = Headers(v["headers"]), v["body"].encode()
out = []
for secret, b in ((v["secret"], body), (v["other"], body), (v["secret"], body.replace(b"high", b"low"))):
    out.append([verify_standard(secret, h, b), verify_x_webhook(secret, h, b)])
print(json.dumps(out, separators=(",", ":")))
`
		out := runSnippet(t, exec.Command(python, "-c", driver), vec)
		require.Equal(t, want, out)
	})
	t.Run("node", func(t *testing.T) {
		node := tool(t, "node", "nodejs", "to check the Node.js snippet of docs/receivers.md")
		driver := readmeBlock(t, "js") + `
const v = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const body = Buffer.from(v.body);
const out = [[v.secret, body], [v.other, body], [v.secret, Buffer.from(v.body.replace('high', 'low'))]]
  .map(([s, b]) => [verifyStandard(s, v.headers, b), verifyXWebhook(s, v.headers, b)]);
console.log(JSON.stringify(out));
`
		out := runSnippet(t, exec.Command(node, "-e", driver), vec)
		require.Equal(t, want, out)
	})
}

func runSnippet(t *testing.T, cmd *exec.Cmd, stdin []byte) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errOut
	require.NoError(t, cmd.Run(), errOut.String())
	return strings.TrimSpace(out.String())
}
