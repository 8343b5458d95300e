package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/robotlab/webhookd/config"
)

// target is the webhookd under test.
type target struct {
	api, nats, token string
	pid              int // 0: CPU and RSS not measured
	logPath          string
	stop             func() error // nil when attached
}

// startWebhookd starts the binary on free loopback ports with the data dir
// in dir, and waits until it is ready. It runs its embedded NATS server, or
// uses the one at natsURL.
func startWebhookd(ctx context.Context, bin string, extra []string, dir, natsURL string) (*target, error) {
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	natsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	t := &target{api: "http://" + httpAddr, nats: "nats://" + natsAddr, token: hex.EncodeToString(raw),
		logPath: filepath.Join(dir, "webhookd.log")}
	nats := []string{"--nats-listen", natsAddr}
	if natsURL != "" {
		t.nats, nats = natsURL, []string{"--nats-url", natsURL}
	}
	args := append(append([]string{
		"--data-dir", filepath.Join(dir, "data"), "--http-addr", httpAddr,
		"--allow-targets", "127.0.0.0/8", "--log-level", "warn",
	}, nats...), extra...)
	// Appended: a restarted webhookd (--backlog) adds to the first one's log.
	logf, err := os.OpenFile(t.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("webhookd log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The token goes through the environment, not the process list.
	cmd.Env = append(os.Environ(), "WEBHOOKD_ADMIN_TOKEN="+t.token)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	t.pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			return fmt.Errorf("webhookd did not stop within a minute of SIGTERM; killed (log %s)", t.logPath)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(t.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return t, nil
			}
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("webhookd exited before it was ready (%v): %s", err, tail(t.logPath))
		case <-ctx.Done():
			_ = t.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = t.stop()
			return nil, fmt.Errorf("webhookd not ready within a minute: %s", tail(t.logPath))
		}
	}
}

// tail returns the last lines of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// procStat is a process's CPU time and memory, from /proc.
type procStat struct {
	CPU     time.Duration // user + system
	RSS     int64         // resident now, bytes
	PeakRSS int64         // high-water mark (VmHWM), bytes
	RSSFile int64         // of RSS, file pages mapped (the bbolt file, binaries), bytes
}

// clockTick is USER_HZ: Linux reports CPU times in /proc in 1/100 s on
// every architecture Go supports.
const clockTick = 100

// readProc reads pid's CPU time from /proc/PID/stat and its RSS and peak
// RSS from /proc/PID/status.
func readProc(pid int) (procStat, error) {
	var s procStat
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return s, fmt.Errorf("read process stats: %w", err)
	}
	// The command name (field 2) may hold spaces: count fields after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, errors.New("read process stats: unexpected /proc format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, errors.New("read process stats: unexpected /proc format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return s, errors.New("read process stats: unexpected /proc format")
	}
	s.CPU = time.Duration(utime+stime) * time.Second / clockTick
	b, err = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return s, fmt.Errorf("read process status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var p *int64
		switch k {
		case "VmRSS":
			p = &s.RSS
		case "VmHWM":
			p = &s.PeakRSS
		case "RssFile":
			p = &s.RSSFile
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err == nil {
			*p = kb << 10
		}
	}
	return s, nil
}

// loadAvg returns the first three fields of /proc/loadavg, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// startNATS runs a NATS server with JetStream on a free loopback port,
// storing in dir: with --backlog for webhookd to use while it is stopped and
// started, with --floor for the floor pipeline. It fsyncs as webhookd's
// embedded server does by default.
func startNATS(dir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir,
		NoSigs: true, NoLog: true, MaxPayload: 8 << 20,
		SyncInterval: config.Default().StoreSync.Interval, // as webhookd's embedded server
	})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats server not ready within 30s")
	}
	return ns, nil
}
