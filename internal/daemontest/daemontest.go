// Package daemontest runs the real webhookd binary for the tests of the
// libraries and examples that talk to it from outside (publisher, receiver,
// examples): a robot connects to its embedded NATS listener, a receiver gets
// its signed deliveries, and the admin API is reached over HTTP.
package daemontest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/robotlab/webhookd/admin/client"
	"go.uber.org/goleak"
)

// Build compiles webhookd into dir and returns the binary's path. Call it
// once from TestMain.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "webhookd")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/robotlab/webhookd/cmd/webhookd")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build webhookd: %w\n%s", err, out)
	}
	return bin, nil
}

// Daemon is one running webhookd process with its own data dir and ports.
type Daemon struct {
	DataDir  string
	HTTPAddr string // admin API, host:port
	NATSAddr string // embedded NATS listener for robots, host:port
	Token    string // the admin token it generated
	cmd      *exec.Cmd
	log      *buffer
	done     chan error
}

// Start runs bin with a temporary data dir, free loopback ports, loopback
// receivers allowed and short timings, plus extra flags, and waits for its
// /readyz. It is stopped with SIGTERM when the test ends; its log is printed
// if the test failed.
func Start(t testing.TB, bin string, extra ...string) *Daemon {
	t.Helper()
	d := &Daemon{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), NATSAddr: freeAddr(t), log: &buffer{}, done: make(chan error, 1)}
	args := append([]string{"--data-dir", d.DataDir, "--http-addr", d.HTTPAddr, "--nats-listen", d.NATSAddr,
		"--allow-targets", "127.0.0.0/8", "--ack-wait", "2s", "--shutdown-timeout", "5s"}, extra...)
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("daemontest: start webhookd: %v", err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			<-d.done
		}
		if t.Failed() {
			t.Logf("webhookd log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + d.HTTPAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemontest: webhookd exited: %v\n%s", err, d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemontest: webhookd not ready within 30s\n%s", d.log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a process we do not control
	}
	tok, err := os.ReadFile(filepath.Join(d.DataDir, "admin-token"))
	if err != nil {
		t.Fatalf("daemontest: read admin token: %v", err)
	}
	d.Token = strings.TrimSpace(string(tok))
	return d
}

// NATSURL is the URL robots connect to.
func (d *Daemon) NATSURL() string { return "nats://" + d.NATSAddr }

// AdminURL is the admin API's base URL.
func (d *Daemon) AdminURL() string { return "http://" + d.HTTPAddr }

// Client returns an admin API client.
func (d *Daemon) Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(d.AdminURL(), d.Token)
	if err != nil {
		t.Fatalf("daemontest: client: %v", err)
	}
	return c
}

// Log returns what the process has logged so far.
func (d *Daemon) Log() string { return d.log.String() }

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("daemontest: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// buffer collects a process's output, written from another goroutine.
type buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Main is a package's TestMain: it builds webhookd into a temporary
// directory, sets *bin to it, runs the tests, and fails the package when a
// test leaves goroutines behind.
func Main(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "webhookd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *bin, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}
