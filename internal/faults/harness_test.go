package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/daemontest"
	"github.com/robotlab/webhookd/jetstream"
)

// eventType is the type of every event the suite publishes.
const eventType = "task.completed"

// logsEnv names a directory where every webhookd's whole log is kept.
const logsEnv = "WEBHOOKD_FAULTS_LOGS"

// daemon is one webhookd process that a fault may kill, stop and start
// again on the same data dir and ports.
type daemon struct {
	t       *testing.T
	name    string
	bin     string
	args    []string
	env     []string
	dataDir string
	api     string // admin API base URL
	robots  string // the NATS URL robots publish to
	token   string
	log     *daemontest.Buffer

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	exit error         // cmd.Wait's answer, once done is closed
}

// newDaemon prepares a webhookd with its data dir in dataDir (a temporary
// one when empty), free loopback ports, loopback receivers allowed and the
// short timings of internal/daemontest, on the NATS at natsURL (its
// embedded server when empty), plus extra flags. Start runs it.
func newDaemon(t *testing.T, name, natsURL, dataDir string, extra ...string) *daemon {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	httpAddr := daemontest.FreeAddr(t)
	d := &daemon{t: t, name: name, bin: webhookdBin, dataDir: dataDir, api: "http://" + httpAddr,
		token: hex.EncodeToString(raw), log: &daemontest.Buffer{}}
	// The token goes through the environment, as an operator's secret would.
	d.env = append(os.Environ(), "WEBHOOKD_ADMIN_TOKEN="+d.token)
	d.args = []string{"--data-dir", dataDir, "--http-addr", httpAddr,
		"--allow-targets", "127.0.0.0/8", "--ack-wait", "2s", "--retry-backoff", "100ms,200ms",
		"--shutdown-timeout", "5s", "--delivery-timeout", "5s", "--log-level", "info"}
	if natsURL == "" {
		natsAddr := daemontest.FreeAddr(t)
		d.args = append(d.args, "--nats-listen", natsAddr)
		d.robots = "nats://" + natsAddr
	} else {
		d.args = append(d.args, "--nats-url", natsURL)
		d.robots = natsURL
	}
	d.args = append(d.args, extra...) // a later flag wins
	t.Cleanup(func() {
		if d.running() {
			_ = d.term(30 * time.Second)
		}
		if dir := os.Getenv(logsEnv); dir != "" {
			name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name() + "-" + d.name + ".log")
			if err := os.WriteFile(filepath.Join(dir, name), []byte(d.log.String()), 0o644); err != nil {
				t.Logf("keep %s log: %v", d.name, err)
			}
		}
		if t.Failed() {
			t.Logf("%s log (last 4 KB):\n%s", d.name, tail(d.log.String(), 4096))
		}
	})
	return d
}

// startDaemon is newDaemon and Start, failing the test if it is not ready.
func startDaemon(t *testing.T, name, natsURL, dataDir string, extra ...string) *daemon {
	t.Helper()
	d := newDaemon(t, name, natsURL, dataDir, extra...)
	require.NoError(t, d.start(time.Minute))
	return d
}

// start runs the process and waits up to timeout for /readyz to answer 200.
func (d *daemon) start(timeout time.Duration) error {
	if err := d.launch(); err != nil {
		return err
	}
	return d.waitReady(timeout)
}

// launch runs the process without waiting for it.
func (d *daemon) launch() error {
	fmt.Fprintf(d.log, "---- %s: start\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.bin, d.args...)
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	done := make(chan struct{})
	d.cmd, d.done = cmd, done
	go func() {
		err := cmd.Wait()
		d.exit = err
		close(done)
	}()
	return nil
}

// waitReady waits up to timeout for /readyz to answer 200. It fails at once
// if the process exits.
func (d *daemon) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if code, _ := d.ready(); code == http.StatusOK {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("%s exited before it was ready (%v): %s", d.name, d.exit, tail(d.log.String(), 2000))
		case <-time.After(50 * time.Millisecond): // polling a process we do not control
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %s", d.name, timeout, tail(d.log.String(), 2000))
		}
	}
}

// ready returns /readyz's status code and body (0 when it does not answer).
func (d *daemon) ready() (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(d.api + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// running reports whether the process was started and has not exited.
func (d *daemon) running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (d *daemon) kill() {
	d.t.Helper()
	fmt.Fprintf(d.log, "---- %s: SIGKILL\n", time.Now().Format(time.RFC3339Nano))
	require.NoError(d.t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.done
}

// term sends SIGTERM and waits up to timeout for the exit (then SIGKILL).
// It returns the process's exit error.
func (d *daemon) term(timeout time.Duration) error {
	fmt.Fprintf(d.log, "---- %s: SIGTERM\n", time.Now().Format(time.RFC3339Nano))
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return d.exit
	case <-time.After(timeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM: killed", d.name, timeout)
	}
}

// client returns an admin API client.
func (d *daemon) client() *client.Client {
	d.t.Helper()
	c, err := client.New(d.api, d.token)
	require.NoError(d.t, err)
	return c
}

// subscribe subscribes the sink to eventType. (The sink does not check
// signatures: webhook-bench and the delivery tests do.)
func (d *daemon) subscribe(s *sink) client.Subscription {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := d.client().CreateSubscription(ctx, client.SubscriptionInput{URL: s.srv.URL, Events: []string{eventType}})
	require.NoError(d.t, err)
	return sub
}

// serves waits until d serves subscription id (another replica wrote it).
func (d *daemon) serves(id string) {
	d.t.Helper()
	require.Eventually(d.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := d.client().GetSubscription(ctx, id)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "%s serves subscription %s", d.name, id)
}

// status returns /v1/status, or the error.
func (d *daemon) status() (client.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return d.client().Status(ctx)
}

// procValue returns one value of the process's /proc status, such as
// VmRSS (in kB).
func (d *daemon) procValue(key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// rssMiB returns the process's resident memory in MiB.
func (d *daemon) rssMiB() float64 { return float64(d.procValue("VmRSS")) / 1024 }

// fds returns the file descriptors the process has open.
func (d *daemon) fds() int {
	es, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid))
	return len(es)
}

// firstLine returns the first log line containing s, or "".
func (d *daemon) firstLine(s string) string {
	for _, line := range strings.Split(d.log.String(), "\n") {
		if strings.Contains(line, s) {
			return tail(line, 300)
		}
	}
	return ""
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}

// receipt is one answered request of a sink.
type receipt struct {
	seq uint64
	at  time.Time // when the answer was written
}

// sink is a loopback receiver. It reads each event's seq from the body,
// records when each attempt arrived and when it was answered, and answers
// 204 after delay; a hanging sink never answers (until the test ends).
type sink struct {
	srv   *httptest.Server
	delay atomic.Int64 // ns
	hang  bool
	stop  chan struct{} // closed at cleanup: releases hanging requests

	mu       sync.Mutex
	arrived  map[uint64]time.Time // first arrival of each seq
	answered map[uint64]int       // answers per seq
	receipts []receipt            // every answer, in order
	changed  chan struct{}        // signalled after every answer
}

// newSink starts a receiver answering after delay (hang: never).
func newSink(t *testing.T, delay time.Duration, hang bool) *sink {
	t.Helper()
	s := &sink{hang: hang, stop: make(chan struct{}), arrived: map[uint64]time.Time{},
		answered: map[uint64]int{}, changed: make(chan struct{}, 1)}
	s.delay.Store(int64(delay))
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() { close(s.stop); s.srv.Close() })
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	seq, ok := seqOf(body)
	if !ok {
		http.Error(w, "no seq", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if _, seen := s.arrived[seq]; !seen {
		s.arrived[seq] = time.Now()
	}
	s.mu.Unlock()
	if s.hang {
		select {
		case <-s.stop:
		case <-r.Context().Done():
		}
		return
	}
	if delay := time.Duration(s.delay.Load()); delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
	s.mu.Lock()
	s.answered[seq]++
	s.receipts = append(s.receipts, receipt{seq, time.Now()})
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// seqOf reads "seq":N from a delivered envelope.
func seqOf(body []byte) (uint64, bool) {
	const key = `"seq":`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	return n, err == nil
}

// counts returns the distinct events answered and the duplicate answers.
func (s *sink) counts() (distinct, dupes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.answered), len(s.receipts) - len(s.answered)
}

// missing returns the seqs of want never answered.
func (s *sink) missing(want []uint64) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for _, q := range want {
		if s.answered[q] == 0 {
			out = append(out, q)
		}
	}
	return out
}

// arrivedAt returns when seq's first attempt arrived.
func (s *sink) arrivedAt(seq uint64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.arrived[seq]
	return at, ok
}

// arrivedSeqs returns the seqs whose attempts have arrived, and when.
func (s *sink) arrivedSeqs() map[uint64]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint64]time.Time, len(s.arrived))
	for q, at := range s.arrived {
		out[q] = at
	}
	return out
}

// nextAfter returns the first answer after t0 (zero if none).
func (s *sink) nextAfter(t0 time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.receipts {
		if r.at.After(t0) {
			return r.at
		}
	}
	return time.Time{}
}

// lastFirst returns when the last of want was first answered (zero if
// one never was).
func (s *sink) lastFirst(want []uint64) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := map[uint64]time.Time{}
	for _, r := range s.receipts {
		if _, ok := first[r.seq]; !ok {
			first[r.seq] = r.at
		}
	}
	var last time.Time
	for _, q := range want {
		at, ok := first[q]
		if !ok {
			return time.Time{}
		}
		if at.After(last) {
			last = at
		}
	}
	return last
}

// rate returns the events of want answered per second, from the first
// first answer to the last.
func (s *sink) rate(want []uint64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := map[uint64]bool{}
	for _, q := range want {
		set[q] = true
	}
	var first, last time.Time
	n := 0
	for _, r := range s.receipts {
		if !set[r.seq] {
			continue
		}
		delete(set, r.seq)
		if n == 0 {
			first = r.at
		}
		last = r.at
		n++
	}
	if n < 2 {
		return 0
	}
	return float64(n-1) / last.Sub(first).Seconds()
}

// waitAll waits until every seq of want was answered, as long as answers
// keep coming: false once none came for stall, or after limit in all.
func (s *sink) waitAll(want []uint64, stall, limit time.Duration) bool {
	end := time.Now().Add(limit)
	last, lastAt := -1, time.Now()
	for {
		left := len(s.missing(want))
		if left == 0 {
			return true
		}
		now := time.Now()
		if left != last {
			last, lastAt = left, now
		}
		if now.Sub(lastAt) > stall || now.After(end) {
			return false
		}
		select {
		case <-s.changed:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// robot publishes events over a real NATS connection, as a robot does.
type robot struct {
	js       natsjs.JetStream
	size     int          // bytes of event data
	retries  atomic.Int64 // publishes that failed and were retried
	maxStall atomic.Int64 // longest time one event took to be acknowledged, ns
}

// newRobot connects to url; it reconnects for ever.
func newRobot(t *testing.T, url string, size int) *robot {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("faults robot"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	return &robot{js: js, size: size}
}

// data returns the event data of seq: {"seq":N,"pad":"xx…"} of r.size bytes.
func (r *robot) data(seq uint64) []byte {
	b := fmt.Appendf(nil, `{"seq":%d,"pad":"`, seq)
	b = append(b, bytes.Repeat([]byte("x"), max(0, r.size-len(b)-2))...)
	return append(b, `"}`...)
}

// try publishes seq once, waiting up to timeout for the acknowledgement.
func (r *robot) try(seq uint64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := r.js.Publish(ctx, jetstream.EventSubject(eventType), r.data(seq), natsjs.WithMsgID("fault-"+strconv.FormatUint(seq, 10)))
	return err
}

// publish publishes seq until it is acknowledged, with the same message id
// each time (JetStream drops the copies), for up to limit.
func (r *robot) publish(seq uint64, limit time.Duration) error {
	began := time.Now()
	for {
		err := r.try(seq, 2*time.Second)
		if err == nil {
			break
		}
		if time.Since(began) > limit {
			return fmt.Errorf("publish %d: still failing after %s: %w", seq, limit, err)
		}
		r.retries.Add(1)
		time.Sleep(50 * time.Millisecond) // a robot's pause before it tries again
	}
	stall := int64(time.Since(began))
	for {
		old := r.maxStall.Load()
		if stall <= old || r.maxStall.CompareAndSwap(old, stall) {
			return nil
		}
	}
}

// load is a robot publishing seqs from, from+1, … from+n-1 at rate per
// second (flat out when 0) over 4 concurrent publishers, each retrying
// until acknowledged. After the at-th acknowledgement it closes reached.
type load struct {
	reached chan struct{}
	done    chan struct{}

	mu    sync.Mutex
	acked []uint64
	err   error
}

// startLoad runs a load on r in the background; wait returns the
// acknowledged seqs.
func startLoad(r *robot, from, n uint64, rate int, at uint64) *load {
	l := &load{reached: make(chan struct{}), done: make(chan struct{})}
	const publishers = 4
	var wg sync.WaitGroup
	var count atomic.Uint64
	began := time.Now()
	for w := range uint64(publishers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += publishers {
				if rate > 0 {
					time.Sleep(time.Until(began.Add(time.Duration(i) * time.Second / time.Duration(rate)))) // pacing, not synchronisation
				}
				if err := r.publish(from+i, 60*time.Second); err != nil {
					l.mu.Lock()
					l.err = firstErr(l.err, err)
					l.mu.Unlock()
					return
				}
				l.mu.Lock()
				l.acked = append(l.acked, from+i)
				l.mu.Unlock()
				if count.Add(1) == at {
					close(l.reached)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

// firstErr returns old, or err when old is nil.
func firstErr(old, err error) error {
	if old != nil {
		return old
	}
	return err
}

// wait waits for the load to end and returns the acknowledged seqs.
func (l *load) wait(t *testing.T) []uint64 {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the load did not end within 3 minutes")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	require.NoError(t, l.err, "every event is acknowledged in the end")
	slices.Sort(l.acked)
	return slices.Clone(l.acked)
}

// seqs returns from, from+1, … from+n-1.
func seqs(from, n uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = from + uint64(i)
	}
	return out
}

// errDeadline reports whether err is a timeout rather than an answer.
func errDeadline(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// dataFile is webhookd's bbolt file in its data dir.
func dataFile(d *daemon) string { return filepath.Join(d.dataDir, "webhooks.db") }
