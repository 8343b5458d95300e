package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// dumper is a receiver that keeps each request as httputil.DumpRequest
// writes it: a captured delivery.
func dumper(t *testing.T) (*httptest.Server, chan []byte) {
	t.Helper()
	ch := make(chan []byte, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := httputil.DumpRequest(r, true)
		if err != nil {
			t.Errorf("dump: %v", err)
		}
		ch <- b
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func nextDump(t *testing.T, ch chan []byte) []byte {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(15 * time.Second):
		t.Fatal("no delivery within 15s")
		return nil
	}
}

// ctlIn runs webhookctl against d with stdin.
func (d *daemon) ctlIn(stdin io.Reader, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := runIO(args, d.env, stdin, &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestCLITriggerAndVerify: "events trigger" publishes the schema's example
// (or the built-in sample), "events types" shows which types have a
// schema, and "verify" accepts the captured delivery and refuses it
// tampered with.
func TestCLITriggerAndVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "task.completed.json"), []byte(`{
	  "type":"object","required":["task_id"],"examples":[{"task_id":"T-example","robot_id":"R042"}]}`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lab.door.json"), []byte(`{"type":"object"}`), 0o600))
	d := newDaemon(t, "--event-schemas", dir)
	rcv, dumps := dumper(t)
	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", rcv.URL, "--events", "task.completed,task.failed,lab.door")

	data := func(dump []byte) (string, string) {
		_, body, err := parseCaptured(dump)
		require.NoError(t, err)
		var env struct {
			ID   string          `json:"id"`
			Data json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &env), string(body))
		return env.ID, string(env.Data)
	}
	out, errOut, code := d.ctl("events", "trigger", "task.completed")
	require.Equal(t, 0, code, errOut)
	captured := nextDump(t, dumps)
	id, got := data(captured)
	require.JSONEq(t, `{"task_id":"T-example","robot_id":"R042"}`, got, "the schema's example")
	require.Regexp(t, `(?m)^ID\s+`+regexpQuote(id)+`$`, out, "the event id, as publish prints it")

	var pub client.Published
	d.ctlJSON(t, &pub, "events", "trigger", "task.failed")
	id, got = data(nextDump(t, dumps))
	require.Equal(t, pub.ID, id)
	require.JSONEq(t, `{"task_id":"T123","robot_id":"R001","error":"gripper stalled"}`, got, "task.failed's built-in sample")
	oneLineError(t, d, `"lab.door" has no sample`, "events", "trigger", "lab.door")
	oneLineError(t, d, "not in the catalog", "events", "trigger", "nope.never")

	out, errOut, code = d.ctl("events", "types")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^TYPE\s+SCHEMA$`, out)
	require.Regexp(t, `(?m)^task\.completed\s+yes$`, out)
	require.Regexp(t, `(?m)^task\.failed\s+no$`, out)
	require.Regexp(t, `(?m)^lab\.door\s+yes$`, out)

	// verify: the real capture passes both schemes.
	out, errOut, code = d.ctlIn(bytes.NewReader(captured), "verify", "--secret", sub.Secret)
	require.Equal(t, 0, code, errOut+out)
	require.Regexp(t, `(?m)^X-Webhook-Signature\s+yes\s+-$`, out)
	require.Regexp(t, `(?m)^webhook-signature\s+yes\s+-$`, out)
	// Headers and body alone, with LF line ends, verify too.
	_, reqLine, _ := strings.Cut(string(captured), "\r\n")
	headersOnly := strings.ReplaceAll(reqLine, "\r\n", "\n")
	_, errOut, code = d.ctlIn(strings.NewReader(headersOnly), "verify", "--secret", sub.Secret)
	require.Equal(t, 0, code, errOut)

	// One byte of the body changed: neither verifies, exit 1.
	tampered := bytes.Replace(captured, []byte("T-example"), []byte("T-exampla"), 1)
	require.NotEqual(t, captured, tampered)
	out, errOut, code = d.ctlIn(bytes.NewReader(tampered), "verify", "--secret", sub.Secret)
	require.Equal(t, 1, code)
	require.Regexp(t, `(?m)^X-Webhook-Signature\s+no\s+`, out)
	require.Regexp(t, `(?m)^webhook-signature\s+no\s+`, out)
	require.Equal(t, "webhookctl: no signature verified with this secret\n", errOut)
	// Another secret: refused; json output says why.
	other := "whsec_" + strings.Repeat("A", 43) + "="
	out, _, code = d.ctlIn(bytes.NewReader(captured), "-o", "json", "verify", "--secret", other)
	require.Equal(t, 1, code)
	var res verifyResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.False(t, res.Verified)
	// A capture older than the tolerance fails the Standard Webhooks check
	// only; --tolerance 0 accepts any age.
	res = verifyCaptured(sub.Secret, headerOf(t, captured), bodyOf(t, captured), time.Now().Add(time.Hour), 5*time.Minute)
	require.True(t, res.Schemes[0].Verified)
	require.False(t, res.Schemes[1].Verified)
	require.Contains(t, res.Schemes[1].Error, "stale timestamp")
}

func headerOf(t *testing.T, dump []byte) http.Header {
	h, _, err := parseCaptured(dump)
	require.NoError(t, err)
	return h
}

func bodyOf(t *testing.T, dump []byte) []byte {
	_, b, err := parseCaptured(dump)
	require.NoError(t, err)
	return b
}

func TestVerifyBadInputIsAOneLineError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stdin, want string
		args        []string
	}{
		{"POST / HTTP/1.1\r\nX-Webhook-Signature: ab", "no blank line after the headers", []string{"verify", "--secret", "whsec_x"}},
		{"Content-Length: 99\n\n{}", "shorter than its Content-Length", []string{"verify", "--secret", "whsec_x"}},
		{"\n\n{}", "no secret", []string{"verify"}},
		{"\n\n{}", "--tolerance", []string{"verify", "--secret", "s", "--tolerance", "-1s"}},
	} {
		out, errOut, code := ctlNoServer(t, strings.NewReader(tc.stdin), tc.args...)
		requireOneLineError(t, tc.args, out, errOut, code, tc.want)
	}
}
