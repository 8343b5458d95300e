package examples_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/daemontest"
)

// bins holds the real webhookd and the Go examples, built once.
var bins struct{ webhookd, receiver, robot, sample string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "examples-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.webhookd, err = daemontest.Build(dir)
	for _, b := range []struct {
		dst       *string
		pkg, name string
	}{{&bins.receiver, "./receiver", "go-receiver"}, {&bins.robot, "./robot", "go-robot"}, {&bins.sample, "../testdata/receiver", "sample-receiver"}} {
		if err != nil {
			break
		}
		*b.dst = filepath.Join(dir, b.name)
		out, berr := exec.Command("go", "build", "-o", *b.dst, b.pkg).CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("build %s: %w\n%s", b.pkg, berr, out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daemontest.Run(m, dir)
}

// inCI reports whether the tests run in CI (CI set, as CI systems and
// .ci/run set it): a missing tool is then a failure, not a skip.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// tool returns the path of the program name (Debian package pkg). When it
// is missing the test is skipped, saying why, or fails in CI.
func tool(t *testing.T, name, pkg, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s is not installed (install the %s package %s; .ci/run does)", name, pkg, why)
	if inCI() {
		t.Fatal("CI is set and " + msg)
	}
	t.Skip(msg)
	return ""
}

// proc is a running example whose output lines (stdout and stderr) arrive
// on a channel.
type proc struct {
	lines chan string
	seen  []string
}

func start(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = w, w
	require.NoError(t, cmd.Start(), cmd.Path)
	require.NoError(t, w.Close())
	p := &proc{lines: make(chan string, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(p.lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = r.Close()
		for range p.lines { // drain so the reader can finish
		}
		<-done
		if t.Failed() {
			t.Logf("%s printed:\n%s", filepath.Base(cmd.Path), strings.Join(p.seen, "\n"))
		}
	})
	return p
}

// waitLine returns the first line, printed so far or from now on within
// 30s, containing want (case-insensitive).
func (p *proc) waitLine(t *testing.T, want string) string {
	t.Helper()
	has := func(l string) bool { return strings.Contains(strings.ToLower(l), strings.ToLower(want)) }
	for _, l := range p.seen {
		if has(l) {
			return l
		}
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("the process ended without printing %q", want)
			}
			p.seen = append(p.seen, l)
			if has(l) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line with %q within 30s", want)
		}
	}
}

// waitListening waits until addr accepts connections: some examples print
// "listening" just before they bind.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 30*time.Second, 10*time.Millisecond, "%s listening", addr)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// checkReceiver runs a receiver example against the real dispatcher: a
// delivery signed with its secret verifies (the receiver answers 200 and
// prints it), one signed with another subscription's secret is answered 401.
func checkReceiver(t *testing.T, verified string, command func(addr, secret string) *exec.Cmd) {
	t.Helper()
	d := daemontest.Start(t, bins.webhookd, "--retry-backoff", "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := d.Client(t)
	addr := freeAddr(t)
	good, err := admin.CreateSubscription(ctx, client.SubscriptionInput{URL: "http://" + addr + "/hooks", Events: []string{"task.*"}})
	require.NoError(t, err)
	other, err := admin.CreateSubscription(ctx, client.SubscriptionInput{URL: "http://" + addr + "/other", Events: []string{"task.*"}})
	require.NoError(t, err)

	p := start(t, command(addr, good.Secret))
	p.waitLine(t, "listening")
	waitListening(t, addr)
	_, err = admin.Publish(ctx, client.PublishRequest{Event: "task.completed", ID: "evt-T123-done",
		Data: json.RawMessage(`{"task_id":"T123","robot_id":"R001"}`)})
	require.NoError(t, err)
	p.waitLine(t, verified)
	p.waitLine(t, "rejected")

	status := func(sub string) (string, int) {
		page, err := admin.ListDeliveries(ctx, client.DeliveryQuery{Subscription: sub})
		if err != nil || len(page.Items) != 1 || len(page.Items[0].Attempts) != 1 {
			return "", 0
		}
		return page.Items[0].Status, page.Items[0].Attempts[0].StatusCode
	}
	require.Eventually(t, func() bool { s, code := status(good.ID); return s == "succeeded" && code == 200 },
		30*time.Second, 20*time.Millisecond, "the delivery with the receiver's secret succeeded")
	require.Eventually(t, func() bool { s, code := status(other.ID); return s == "failed" && code == 401 },
		30*time.Second, 20*time.Millisecond, "the delivery with another secret was answered 401")
}

func TestPythonReceiverVerifiesARealDelivery(t *testing.T) {
	t.Parallel()
	python := tool(t, "python3", "python3", "to run examples/python/receiver.py against a real delivery")
	checkReceiver(t, "verified task.completed id=evt-T123-done", func(addr, secret string) *exec.Cmd {
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(python, "python/receiver.py", "--port", port)
		cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret, "PYTHONUNBUFFERED=1")
		return cmd
	})
}

func TestNodeReceiverVerifiesARealDelivery(t *testing.T) {
	t.Parallel()
	node := tool(t, "node", "nodejs", "to run examples/node/receiver.js against a real delivery")
	checkReceiver(t, "verified task.completed id=evt-T123-done", func(addr, secret string) *exec.Cmd {
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(node, "node/receiver.js", "--port", port)
		cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret)
		return cmd
	})
}

func TestGoReceiverVerifiesARealDelivery(t *testing.T) {
	t.Parallel()
	checkReceiver(t, "verified task.completed id=evt-T123-done", func(addr, secret string) *exec.Cmd {
		cmd := exec.Command(bins.receiver, "--addr", addr)
		cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret)
		return cmd
	})
}

// The repository's sample receiver (README quick start) keeps working.
func TestSampleReceiverVerifiesARealDelivery(t *testing.T) {
	t.Parallel()
	checkReceiver(t, "task.completed delivery=", func(addr, secret string) *exec.Cmd {
		return exec.Command(bins.sample, "--addr", addr, "--secret", secret)
	})
}

// The Go robot publishes over webhookd's NATS listener; the Go receiver gets
// its events; run again, the robot's task event is a duplicate.
func TestGoRobotToGoReceiver(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, bins.webhookd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr := freeAddr(t)
	sub, err := d.Client(t).CreateSubscription(ctx, client.SubscriptionInput{URL: "http://" + addr + "/", Events: []string{"task.completed", "robot.>"}})
	require.NoError(t, err)
	cmd := exec.Command(bins.receiver, "--addr", addr)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+sub.Secret)
	rcv := start(t, cmd)
	rcv.waitLine(t, "listening")
	waitListening(t, addr)

	robot := func() string {
		out, err := exec.CommandContext(ctx, bins.robot, "--nats", d.NATSURL(), "--robot", "R7", "--task", "T9").CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	out := robot()
	require.Contains(t, out, "published task.completed id=evt-T9-completed")
	require.Contains(t, out, "duplicate=false")
	rcv.waitLine(t, "verified robot.connected")
	rcv.waitLine(t, `verified task.completed id=evt-T9-completed`)
	require.Contains(t, robot(), "id=evt-T9-completed sequence=2 duplicate=true")
}
