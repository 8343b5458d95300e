package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/daemontest"
)

// publish publishes an event with webhookctl and returns its id.
func (d *daemon) publish(t *testing.T, eventType, data string, extra ...string) string {
	t.Helper()
	var p client.Published
	d.ctlJSON(t, &p, append([]string{"events", "publish", eventType, "--data", data}, extra...)...)
	return p.ID
}

// The message log as an operator reads it: the payload of a delivery that
// succeeded at once, an event nobody subscribed to, listed and shown.
func TestCLIMessageLog(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	rcv := newSwitchable(t, 200)
	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", rcv.URL, "--events", "task.completed")

	d.publish(t, "task.completed", `{"task_id":"T1","robot_id":"R1"}`, "--id", "evt-cli-1")
	var page client.List[client.Delivery]
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &page, "deliveries", "list", "--event", "evt-cli-1")
		return len(page.Items) == 1 && page.Items[0].Status == "succeeded"
	}, "the delivery succeeded")
	out, errOut, code := d.ctl("deliveries", "get", page.Items[0].ID)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^PAYLOAD\s*$`, out, "a delivery that succeeded at once shows its payload")
	require.Contains(t, out, `"task_id": "T1"`)
	require.Contains(t, out, `"id": "evt-cli-1"`)

	alone := d.publish(t, "alert.triggered", `{"level":"high"}`)
	var events client.List[client.Event]
	waitFor(t, 15*time.Second, func() bool {
		d.ctlJSON(t, &events, "events", "list", "--type", "alert.triggered")
		return len(events.Items) == 1 && events.Items[0].Status == client.EventNoSubscriber
	}, "the event without subscriber is routed")
	require.Equal(t, alone, events.Items[0].ID)

	out, errOut, code = d.ctl("events", "list")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `SEQ\s+ID\s+TYPE\s+TIMESTAMP\s+SIZE\s+STATUS\s+DELIVERIES`, out)
	require.Regexp(t, `(?m)^1\s+evt-cli-1\s+task.completed\s+\S+Z\s+32\s+routed\s+1\s*$`, out)
	require.Regexp(t, `(?m)^2\s+`+alone+`\s+alert.triggered\s+\S+Z\s+16\s+no subscriber\s+0\s*$`, out)

	out, errOut, code = d.ctl("events", "get", alone)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^STATUS\s+no subscriber$`, out)
	require.Contains(t, out, "no subscription matches alert.triggered now")
	require.Contains(t, out, `"level": "high"`)
	require.NotContains(t, out, "DELIVERY")

	out, errOut, code = d.ctl("events", "get", "evt-cli-1")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^STATUS\s+routed$`, out)
	require.Regexp(t, `(?m)^`+page.Items[0].ID+`\s+`+sub.ID+`\s+succeeded\s+1\s+200\s`, out)

	for args, want := range map[string]string{
		"events get no-such-event":       `event "no-such-event" not found`,
		"events list --type task.*":      "wildcards are not taken here",
		"events get x --since yesterday": "want RFC 3339",
		"deliveries list -f --until 1h":  "--follow has no end",
	} {
		out, errOut, code := d.ctl(strings.Fields(args)...)
		requireOneLineError(t, strings.Fields(args), out, errOut, code, want)
	}
}

// follower is webhookctl run as a process with --follow, until SIGINT.
type follower struct {
	cmd      *exec.Cmd
	out, err *daemontest.Buffer
	done     chan error
}

func (d *daemon) follow(t *testing.T, bin string, args ...string) *follower {
	t.Helper()
	f := &follower{cmd: exec.Command(bin, args...), out: &daemontest.Buffer{}, err: &daemontest.Buffer{}, done: make(chan error, 1)}
	f.cmd.Env = []string{"WEBHOOK_SERVER=" + d.env("WEBHOOK_SERVER"), "WEBHOOK_DATA_DIR=" + d.dataDir}
	f.cmd.Stdout, f.cmd.Stderr = f.out, f.err
	require.NoError(t, f.cmd.Start())
	go func() { f.done <- f.cmd.Wait() }()
	t.Cleanup(func() {
		if f.cmd.ProcessState == nil {
			_ = f.cmd.Process.Kill()
			<-f.done
		}
	})
	return f
}

// interrupt sends SIGINT, as Ctrl-C does, and requires exit status 0.
func (f *follower) interrupt(t *testing.T) {
	t.Helper()
	require.NoError(t, f.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-f.done:
		require.NoError(t, err, "exit status 0 on Ctrl-C; stderr: %s", f.err.String())
	case <-time.After(10 * time.Second):
		t.Fatal("webhookctl did not stop on SIGINT")
	}
	require.Empty(t, f.err.String())
}

// --follow prints each row published after it started, once, and stops
// with status 0 on Ctrl-C.
func TestCLIFollowPrintsEachNewRowOnce(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "webhookctl")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	d := newDaemon(t)
	rcv := newSwitchable(t, 200)
	d.ctl("subscriptions", "create", "--url", rcv.URL, "--events", "task.completed")
	d.publish(t, "task.completed", `{"n":0}`, "--id", "evt-before") // before the follows: not printed
	<-rcv.got

	events := d.follow(t, bin, "events", "list", "--follow")
	deliveries := d.follow(t, bin, "-o", "json", "deliveries", "list", "--follow")
	waitFor(t, 15*time.Second, func() bool { return strings.Contains(events.out.String(), "SEQ") }, "the events table's header")

	ids := []string{"evt-follow-1", "evt-follow-2", "evt-follow-3"}
	for _, id := range ids {
		d.publish(t, "task.completed", `{"n":1}`, "--id", id)
		waitFor(t, 15*time.Second, func() bool {
			return strings.Contains(events.out.String(), id) && strings.Contains(deliveries.out.String(), id)
		}, id+" followed")
	}
	// The third row was printed by a later poll than the first two: they
	// were asked for again and not printed twice.
	events.interrupt(t)
	deliveries.interrupt(t)
	table := events.out.String()
	require.NotContains(t, table, "evt-before")
	require.Equal(t, 1, strings.Count(table, "SEQ"), table)
	for _, id := range ids {
		require.Equal(t, 1, strings.Count(table, id), table)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(deliveries.out.String()), "\n") {
		var dl client.Delivery
		require.NoError(t, json.Unmarshal([]byte(l), &dl), l)
		got = append(got, dl.EventID)
	}
	require.Equal(t, ids, got, "one JSON line per delivery, each once, oldest first")
}
