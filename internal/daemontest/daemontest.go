// Package daemontest runs the real webhookd binary for the tests of the
// libraries and examples that talk to it from outside (publisher, receiver,
// examples): a robot connects to its embedded NATS listener, a receiver gets
// its signed deliveries, and the admin API is reached over HTTP.
package daemontest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
	log      *Buffer
	done     chan error
}

// Start runs bin with a temporary data dir, free loopback ports, loopback
// receivers allowed and short timings, plus extra flags, and waits for its
// /readyz. It is stopped with SIGTERM when the test ends; its log is printed
// if the test failed.
func Start(t testing.TB, bin string, extra ...string) *Daemon {
	t.Helper()
	d := &Daemon{DataDir: t.TempDir(), HTTPAddr: FreeAddr(t), NATSAddr: FreeAddr(t), log: &Buffer{}, done: make(chan error, 1)}
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

// Request is one request a Receiver got.
type Request struct {
	Header http.Header
	Body   []byte
}

// Receiver is a real HTTP endpoint that answers status with body to every
// request, counts the requests and hands each to the channel. It is
// closed when the test ends.
func Receiver(t testing.TB, status int, body string) (*httptest.Server, chan Request, *atomic.Int64) {
	t.Helper()
	ch := make(chan Request, 64)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.Add(1)
		ch <- Request{r.Header.Clone(), b}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, ch, &n
}

// Next waits up to 15 s for the next request on ch.
func Next(t testing.TB, ch chan Request) Request {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("daemontest: no request within 15s")
		return Request{}
	}
}

// Stop stops the daemon with SIGTERM and waits up to 30 s for it to exit,
// before the test ends (for a test that replaces it).
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("daemontest: stop webhookd: %v", err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("daemontest: webhookd exited: %v\n%s", err, d.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemontest: webhookd still running 30s after SIGTERM\n%s", d.log.String())
	}
}

// Kill ends the process with SIGKILL, as a crash would: nothing of it
// runs any more, no ack, record or shutdown step. It waits until the
// process is gone.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("daemontest: kill webhookd: %v", err)
	}
	<-d.done
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

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("daemontest: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Buffer collects a process's output, written from another goroutine.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Main is a package's TestMain: it builds webhookd into a temporary
// directory, sets *bin to it, runs the tests, and fails the package when a
// test leaves goroutines behind (but those opts ignore).
func Main(m *testing.M, bin *string, opts ...goleak.Option) {
	dir, err := os.MkdirTemp("", "webhookd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *bin, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	Run(m, dir, opts...)
}

// Run runs the tests, removes dir (where TestMain built its binaries), fails
// the package when a test leaves goroutines behind (but those opts ignore),
// and exits.
func Run(m *testing.M, dir string, opts ...goleak.Option) {
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}
