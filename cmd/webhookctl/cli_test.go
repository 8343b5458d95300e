package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// ctlNoServer runs webhookctl against a server that fails the test if any
// request reaches it: the commands here must fail (or succeed) on their own.
func ctlNoServer(t *testing.T, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("%v reached the server: %s %s", args, r.Method, r.URL)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	env := func(k string) string {
		switch k {
		case "WEBHOOK_SERVER":
			return srv.URL
		case "WEBHOOK_TOKEN":
			return "test-token"
		}
		return ""
	}
	var out, errOut bytes.Buffer
	code := runIO(args, env, stdin, &out, &errOut)
	return out.String(), errOut.String(), code
}

// requireOneLineError checks the failure contract: exit 1, nothing on
// stdout, one line on stderr starting with "webhookctl: " and containing want.
func requireOneLineError(t *testing.T, args []string, out, errOut string, code int, want string) {
	t.Helper()
	require.Equal(t, 1, code, "%v: %s", args, errOut)
	require.Empty(t, out, "%v", args)
	require.True(t, strings.HasPrefix(errOut, "webhookctl: "), "%v: %q", args, errOut)
	require.Equal(t, 1, strings.Count(errOut, "\n"), "%v: one line: %q", args, errOut)
	require.Contains(t, errOut, want, "%v", args)
}

func TestUnknownCommandsExit1WithASuggestion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"subscription", "lst"}, `unknown command "lst" for "webhookctl subscriptions"; did you mean "list"`},
		{[]string{"subscriptions", "rotate", "6f1c"}, `did you mean "rotate-secret"?`},
		{[]string{"statsu"}, `unknown command "statsu" for "webhookctl"; did you mean "status"?`},
		{[]string{"deliveries", "lsit"}, `did you mean "list"?`},
		{[]string{"dl", "replya"}, `did you mean "replay"?`},
		{[]string{"events", "pub", "task.completed"}, `did you mean "publish"?`},
		{[]string{"--token", "x", "frobnicate"}, `unknown command "frobnicate" for "webhookctl"; want one of `},
		{[]string{"events", "zzz"}, `want one of "get", "list", "publish", "trigger" or "types"`},
		{[]string{"subscriptions", "list", "extra"}, `unknown command "extra" for "webhookctl subscriptions list"`},
		{[]string{"help", "subscriptions", "lst"}, `did you mean "list"`},
		{[]string{"help", "statsu"}, `did you mean "status"?`},
	} {
		out, errOut, code := ctlNoServer(t, nil, tc.args...)
		requireOneLineError(t, tc.args, out, errOut, code, tc.want)
	}
}

func TestGroupsAloneShowTheirHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"subscriptions"}, {"deliveries"}, {"events"}, {"help"}, {"help", "deliveries"}} {
		out, errOut, code := ctlNoServer(t, nil, args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		require.Contains(t, out, "Available Commands:", "%v", args)
	}
}

func TestHelpOfACommand(t *testing.T) {
	t.Parallel()
	out, errOut, code := ctlNoServer(t, nil, "help", "deliveries", "replay")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "--dry-run")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, errOut, code := ctlNoServer(t, nil, "--version")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `^webhookctl \S+ \(revision \S+.*\) `+regexpQuote(runtime.Version())+"\n$", out)
}

func regexpQuote(s string) string { return strings.ReplaceAll(s, ".", `\.`) }

func TestHelpListsTheEnvironment(t *testing.T) {
	t.Parallel()
	out, _, code := ctlNoServer(t, nil, "--help")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^  WEBHOOK_SERVER\s+admin API`, out)
	require.Regexp(t, `(?m)^  WEBHOOK_TOKEN\s+admin API token`, out)
	require.Contains(t, out, "--version")
}

func TestUpdateWithNothingToChangeIsAnError(t *testing.T) {
	t.Parallel()
	args := []string{"subscriptions", "update", "6fe5356a-e105-49d3-9e8e-48fe475be2d5"}
	out, errOut, code := ctlNoServer(t, nil, args...)
	requireOneLineError(t, args, out, errOut, code, "nothing to change: give at least one of ")
	require.Contains(t, errOut, "--url")
	require.Contains(t, errOut, "--events")
	// Global flags are not changes.
	args = append([]string{"-o", "json"}, args...)
	out, errOut, code = ctlNoServer(t, nil, args...)
	requireOneLineError(t, args, out, errOut, code, "nothing to change")
}

func TestBadDataIsAOneLineError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("{\"a\":\n"), 0o600))
	empty := filepath.Join(dir, "empty.json")
	require.NoError(t, os.WriteFile(empty, []byte(" \n"), 0o600))
	for _, tc := range []struct {
		data, stdin, want string
	}{
		{"{not json", "", "--data: not valid JSON"},
		{"@" + bad, "", "--data @" + bad + ": not valid JSON"},
		{"@" + empty, "", "--data @" + empty + ": empty"},
		{"@" + filepath.Join(dir, "missing.json"), "", "--data: open " + filepath.Join(dir, "missing.json") + ": no such file or directory"},
		{"@", "", "--data @: want a file name after @"},
		{"@" + dir, "", "is a directory"},
		{"-", "", "--data - (stdin): empty"},
		{"-", "[1,2", "--data - (stdin): not valid JSON"},
	} {
		args := []string{"events", "publish", "task.completed", "--data", tc.data}
		out, errOut, code := ctlNoServer(t, strings.NewReader(tc.stdin), args...)
		requireOneLineError(t, args, out, errOut, code, tc.want)
	}
}

func TestTimesAreUTCWithZ(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 29, 7, 8, 9, 0, time.FixedZone("CET", 3600))
	require.Equal(t, "2026-11-29T06:08:09Z", ts(at))
	require.Equal(t, "-", ts(time.Time{}))
}

// bodies is a receiver that sends every request body to a channel.
func bodies(t *testing.T) (*httptest.Server, chan []byte) {
	t.Helper()
	got := make(chan []byte, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got <- b
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestCLIDataFromFileAndStdinBadCursorAndTimes(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--max-event-size", "3MiB")
	rcv, got := bodies(t)
	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", rcv.URL, "--events", "task.completed")

	// Every table shows times the one way.
	out, errOut, code := d.ctl("subscriptions", "get", sub.ID)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^CREATED\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, out)

	receive := func(id string) map[string]json.RawMessage {
		t.Helper()
		select {
		case b := <-got:
			var env map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(b, &env))
			require.JSONEq(t, `"`+id+`"`, string(env["id"]))
			return env
		case <-time.After(30 * time.Second):
			t.Fatalf("event %s not delivered", id)
			return nil
		}
	}

	// 2 MB of data from a file: delivered byte for byte.
	big := `{"blob":"` + strings.Repeat("x", 2_000_000) + `"}`
	file := filepath.Join(t.TempDir(), "big.json")
	require.NoError(t, os.WriteFile(file, []byte(big), 0o600))
	out, errOut, code = d.ctl("events", "publish", "task.completed", "--data", "@"+file, "--id", "evt-big")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "evt-big")
	require.Equal(t, big, string(receive("evt-big")["data"]))

	// From stdin.
	var stdout, stderr bytes.Buffer
	code = runIO([]string{"events", "publish", "task.completed", "--data", "-", "--id", "evt-stdin"}, d.env,
		strings.NewReader(`{"task_id":"T9"}`+"\n"), &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	require.JSONEq(t, `{"task_id":"T9"}`, string(receive("evt-stdin")["data"]))

	// Over the server's limit: refused with the limit, on one line.
	huge := filepath.Join(t.TempDir(), "huge.json")
	require.NoError(t, os.WriteFile(huge, []byte(`{"blob":"`+strings.Repeat("x", 4<<20)+`"}`), 0o600))
	args := []string{"events", "publish", "task.completed", "--data", "@" + huge}
	out, errOut, code = d.ctl(args...)
	requireOneLineError(t, args, out, errOut, code, "larger than")
	require.Contains(t, errOut, "too_large")

	// A cursor the server did not issue.
	args = []string{"deliveries", "list", "--cursor", "garbage!"}
	out, errOut, code = d.ctl(args...)
	requireOneLineError(t, args, out, errOut, code, "cursor")
	select {
	case b := <-got:
		t.Fatalf("unexpected delivery of %d bytes", len(b))
	default:
	}
}
