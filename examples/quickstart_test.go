package examples_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// quickStart returns the commands of the README's first-delivery block, the
// first sh block under "## Your first delivery", one per line.
func quickStart(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	s := string(b)
	i := strings.Index(s, "\n## Your first delivery\n")
	require.GreaterOrEqual(t, i, 0, "the README has a first-delivery section")
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(s[i:])
	require.NotNil(t, m, "no sh block in the README's first-delivery section")
	var cmds []string
	for _, l := range strings.Split(strings.TrimSpace(m[1]), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			cmds = append(cmds, l)
		}
	}
	return cmds
}

// group is a command run in its own process group, so that the processes it
// starts (make's webhookd, go run's receiver) are stopped with it. Its
// output lines arrive on a channel.
type group struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	news  chan struct{}
}

func startGroup(t *testing.T, cmd *exec.Cmd) *group {
	t.Helper()
	g := &group{cmd: cmd, news: make(chan struct{}, 1)}
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start(), strings.Join(cmd.Args, " "))
	require.NoError(t, w.Close())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			g.mu.Lock()
			g.lines = append(g.lines, sc.Text())
			g.mu.Unlock()
			select {
			case g.news <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
		_ = r.Close()
		<-done
		if t.Failed() {
			t.Logf("%s printed:\n%s", strings.Join(cmd.Args, " "), strings.Join(g.output(), "\n"))
		}
	})
	return g
}

func (g *group) output() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.lines...)
}

// wait returns the first line matching re within timeout.
func (g *group) wait(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, l := range g.output() {
			if re.MatchString(l) {
				return l
			}
		}
		select {
		case <-g.news:
		case <-deadline:
			t.Fatalf("no line matching %s within %s", re, timeout)
		}
	}
}

// TestREADMEQuickStart runs the README's first delivery as printed: webhookd
// started by make run, then the four commands after it, and waits for the
// sample receiver to verify the delivery and for deliveries list to show it
// succeeded. The test only keeps itself apart from other runs on this
// machine: make run gets a temporary BIN and data dir and free ports
// (--data-dir, --http-addr, --nats-listen), which webhookctl is pointed at
// with WEBHOOK_SERVER and WEBHOOK_DATA_DIR, and the receiver's port 9000
// becomes a free one. No other flag is added: loopback receivers work
// because make run allows them, with no restart.
func TestREADMEQuickStart(t *testing.T) {
	t.Parallel()
	cmds := quickStart(t)
	require.Len(t, cmds, 5, "five steps")
	require.Equal(t, "make run", cmds[0])
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	bin, data := t.TempDir(), filepath.Join(t.TempDir(), "data")
	httpAddr, natsAddr, rcvAddr := freeAddr(t), freeAddr(t), freeAddr(t)

	run := exec.Command("make", "-s", "-C", repo, "run", "BIN="+bin,
		"ARGS=--data-dir "+data+" --http-addr "+httpAddr+" --nats-listen "+natsAddr)
	d := startGroup(t, run)
	d.wait(t, regexp.MustCompile(`"message":"webhookd started"`), 3*time.Minute) // make builds first
	out := d.output()
	require.Contains(t, out[0], "make run: local development: deliveries to loopback receivers are allowed (--allow-targets 127.0.0.0/8)")
	var logs []string
	for _, l := range out {
		if strings.HasPrefix(l, "{") {
			logs = append(logs, l)
		}
	}
	require.NotEmpty(t, logs)
	require.Contains(t, logs[0], `"allow_targets":"127.0.0.0/8"`, "webhookd's first log line says loopback is allowed")

	env := append(os.Environ(), "WEBHOOK_SERVER=http://"+httpAddr, "WEBHOOK_DATA_DIR="+data)
	local := func(c string) string {
		c = strings.ReplaceAll(c, "bin/webhookctl", filepath.Join(bin, "webhookctl"))
		return strings.ReplaceAll(c, "127.0.0.1:9000", rcvAddr)
	}
	sh := func(c string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", local(c))
		cmd.Dir, cmd.Env = repo, env
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", c, b)
		return string(b)
	}

	created := sh(cmds[1])
	secret := regexp.MustCompile(`(?m)^SECRET\s+(whsec_\S+)`).FindStringSubmatch(created)
	require.NotNil(t, secret, "create prints the secret:\n%s", created)

	require.Contains(t, cmds[2], "whsec_…", "the receiver's command is where the secret goes")
	rcv := exec.Command("sh", "-c", "exec "+local(strings.ReplaceAll(cmds[2], "whsec_…", secret[1])))
	rcv.Dir, rcv.Env = repo, env
	r := startGroup(t, rcv)
	r.wait(t, regexp.MustCompile(`listening`), 2*time.Minute) // go run builds first
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", rcvAddr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 30*time.Second, 10*time.Millisecond, "the receiver listens")

	sh(cmds[3])
	r.wait(t, regexp.MustCompile(`^task\.completed delivery=\S+ attempt=1 -> 200 \{"id":"[^"]+","event":"task.completed","timestamp":"[^"]+","data":\{"task_id":"T123","robot_id":"R001"\}\}$`), 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	succeeded := regexp.MustCompile(`(?m)^\S+\s+task\.completed\s+\S+\s+\S+\s+succeeded\s+1\s+200\s+\S+Z$`)
	for !succeeded.MatchString(sh(cmds[4])) {
		select {
		case <-ctx.Done():
			t.Fatalf("deliveries list never showed the delivery succeeded:\n%s", sh(cmds[4]))
		case <-time.After(100 * time.Millisecond): // polling a CLI
		}
	}
}
