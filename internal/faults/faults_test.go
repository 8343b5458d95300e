package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// TestFaults runs every fault in turn, one sub-test each, and prints the
// table. Run one with -run 'TestFaults/<name>'.
func TestFaults(t *testing.T) {
	if os.Getenv(enableEnv) == "" {
		t.Skipf("the fault suite starts real processes for minutes: run make faults (%s=1)", enableEnv)
	}
	faults := []struct {
		name, title string
		run         func(*testing.T, *row)
	}{
		{"kill-replica", "kill -9 of a replica mid-load (2 replicas, one NATS)", killReplica},
		{"sigterm-restart", "SIGTERM and immediate restart (slow receiver, backlog)", sigtermRestart},
		{"nats-restart", "NATS server stopped 2 s and started on its store", natsRestart},
		{"leader-killed", "NATS leader of EVENTS killed (3-node cluster, 2 replicas)", leaderKilled},
		{"disk-full", "disk full, then freed (64 MiB tmpfs)", diskFull},
		{"bbolt-overwritten", "bbolt file overwritten in places while stopped", bboltDamaged(overwrite)},
		{"bbolt-truncated", "bbolt file truncated while stopped", bboltDamaged(truncate)},
		{"hanging-receiver", "a receiver that hangs beside a healthy one", hangingReceiver},
		{"connection-flood", "3,000 connections to the robot listener", connectionFlood},
	}
	var rows []*row
	for _, f := range faults {
		r := newRow(f.title)
		began := time.Now()
		started := false
		ok := t.Run(f.name, func(t *testing.T) { started = true; f.run(t, r) })
		r.took = time.Since(began)
		r.result = r.resultFor(!ok)
		if started { // -run may leave some out
			rows = append(rows, r)
		}
	}
	var b strings.Builder
	printTable(&b, rows)
	fmt.Printf("\nFault suite (%s, %d CPUs):\n\n%s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), b.String())
	for _, r := range rows {
		for _, m := range r.broken {
			fmt.Printf("- %s: promise broken: %s\n", r.fault, m)
		}
	}
	if path := os.Getenv(tableEnv); path != "" {
		require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	}
}

// killReplica: two replicas on one NATS server, a receiver answering after
// 50 ms (8 attempts in flight per replica at most: 320/s for both), 900
// events at 300/s, and the second replica killed with SIGKILL after a
// third. The survivor takes
// over the killed one's unacknowledged jobs after --ack-wait (2 s).
func killReplica(t *testing.T, r *row) {
	ns := jstest.RunRestartable(t)
	a := startDaemon(t, "replica A", ns.URL, "")
	b := startDaemon(t, "replica B", ns.URL, "")
	s := newSink(t, 50*time.Millisecond, false) // each replica has attempts in flight and jobs queued when B dies
	sub := a.subscribe(s)
	b.serves(sub.ID)
	rb := newRobot(t, ns.URL, 256)
	const n = 900
	l := startLoad(rb, 0, n, 300, n/3)
	awaitReached(t, l)
	killed := time.Now()
	b.kill()
	acked := l.wait(t)
	s.waitAll(acked, 20*time.Second, 90*time.Second)
	r.settle(s, acked, killed)
	r.note("--ack-wait 2s; longest publish %s", stall(rb))
	noneLost(t, s, acked, a)
}

// sigtermRestart: one replica, a receiver answering after 1 s, max-in-flight
// 8, 40 events; SIGTERM once 8 attempts are in flight, then a restart on the
// same data dir. The 8 finish and are recorded; the other 32 never started.
// README: "jobs fetched but not started … are returned at once"; so the
// first of them is attempted within seconds of the restart, not after
// --ack-wait (10 s here).
func sigtermRestart(t *testing.T, r *row) {
	p := promisesOf(t, r, "sigterm-handback")
	defer p.done()
	const ackWait = 10 * time.Second
	d := startDaemon(t, "replica", "", "", "--max-in-flight", "8", "--ack-wait", ackWait.String())
	s := newSink(t, time.Second, false)
	d.subscribe(s)
	rb := newRobot(t, d.robots, 256)
	const n = 40
	for i := range uint64(n) {
		require.NoError(t, rb.publish(i, 10*time.Second))
	}
	acked := seqs(0, n)
	require.Eventually(t, func() bool { return len(s.arrivedSeqs()) >= 8 }, 15*time.Second, 10*time.Millisecond, "8 attempts in flight")
	termAt := time.Now()
	require.NoError(t, d.term(30*time.Second), "a clean stop")
	stopped := time.Since(termAt)
	started := s.arrivedSeqs()
	var unstarted []uint64
	for _, q := range acked {
		if _, ok := started[q]; !ok {
			unstarted = append(unstarted, q)
		}
	}
	distinct, _ := s.counts()
	require.Equal(t, len(started), distinct, "the attempts in flight at SIGTERM finished and were answered")
	require.NoError(t, d.start(time.Minute))
	ready := time.Now()
	s.waitAll(acked, 20*time.Second, 90*time.Second)
	r.settle(s, acked, ready)
	first := time.Time{}
	for _, q := range unstarted {
		if at, ok := s.arrivedAt(q); ok && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	r.note("%d in flight at SIGTERM finished (stop took %s); %d unstarted", len(started), stopped.Round(time.Millisecond), len(unstarted))
	if first.IsZero() {
		r.note("no unstarted job attempted")
	} else {
		r.note("first unstarted job attempted %s after the restart was ready (--ack-wait %s)", first.Sub(ready).Round(time.Millisecond), ackWait)
	}
	noneLost(t, s, acked, d)
	p.check(!first.IsZero() && first.Sub(ready) < 3*time.Second,
		"unstarted jobs are attempted within 3 s of the restart, not after --ack-wait %s (took %s)", ackWait, first.Sub(ready).Round(time.Millisecond))
}

// natsRestart: one replica on an external NATS server, 900 events at
// 300/s; after a third the server is stopped for 2 s and started again on
// the same store. The robot retries its publishes; webhookd reconnects.
func natsRestart(t *testing.T, r *row) {
	ns := jstest.RunRestartable(t)
	d := startDaemon(t, "replica", ns.URL, "")
	s := newSink(t, 0, false)
	d.subscribe(s)
	rb := newRobot(t, ns.URL, 256)
	const n = 900
	l := startLoad(rb, 0, n, 300, n/3)
	awaitReached(t, l)
	ns.Stop()
	time.Sleep(2 * time.Second) // the outage itself
	ns.Start()
	back := time.Now()
	acked := l.wait(t)
	s.waitAll(acked, 20*time.Second, 90*time.Second)
	r.settle(s, acked, back)
	r.note("longest publish %s, %d publish retries", stall(rb), rb.retries.Load())
	require.True(t, d.running(), "webhookd rides out a NATS restart")
	noneLost(t, s, acked, d)
}

// leaderKilled: a 3-node cluster, --stream-replicas 3, two replicas, 900
// events at 300/s, and the node leading EVENTS killed with SIGKILL after a
// third.
func leaderKilled(t *testing.T, r *row) {
	c := jstest.Cluster(t, 3)
	args := []string{"--stream-replicas", "3"}
	a := startDaemon(t, "replica A", c.URLs(), "", args...)
	b := startDaemon(t, "replica B", c.URLs(), "", args...)
	s := newSink(t, 0, false)
	sub := a.subscribe(s)
	b.serves(sub.ID)
	_, js := c.Connect(t)
	victim := streamLeader(t, js, jetstream.StreamEvents)
	rb := newRobot(t, c.URLs(), 256)
	const n = 900
	l := startLoad(rb, 0, n, 300, n/3)
	awaitReached(t, l)
	killed := time.Now()
	require.NoError(t, c.Kill(victim))
	acked := l.wait(t)
	s.waitAll(acked, 30*time.Second, 120*time.Second)
	r.settle(s, acked, killed)
	r.note("longest publish %s, %d publish retries", stall(rb), rb.retries.Load())
	noneLost(t, s, acked, a, b)
}

// diskFull is issue 22's setup: the data dir on a 64 MiB tmpfs,
// --max-store 32MiB (JetStream refuses to reserve more than the disk holds;
// --max-event-size 256KiB, as the cap must hold 64 of them), a filler
// leaving 10 MiB free, and 32 KiB events to a receiver answering after 1 s,
// so that jobs pile up, until publishes fail; then the filler is removed
// and the receiver made fast. Promised (issue 22 item 1): a prompt, clear
// refusal while full, /readyz not ready with the reason, and ingestion
// resuming by itself within seconds of space returning. Today's
// workaround, a restart, is applied when it does not, so that the count of
// lost events stays honest.
func diskFull(t *testing.T, r *row) {
	mnt := filepath.Join(t.TempDir(), "disk")
	require.NoError(t, os.Mkdir(mnt, 0o700))
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64m"); err != nil {
		cannotRun(t, r, fmt.Sprintf("mount -t tmpfs: %v (needs root, or CAP_SYS_ADMIN)", err))
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) }) // after the daemon's cleanup
	p := promisesOf(t, r, "disk-full")
	defer p.done()
	d := startDaemon(t, "replica", "", filepath.Join(mnt, "data"), "--max-store", "32MiB", "--max-event-size", "256KiB")
	s := newSink(t, time.Second, false) // slow: the jobs, and their events, pile up on disk
	d.subscribe(s)
	rb := newRobot(t, d.robots, 32<<10)

	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(mnt, &st))
	free := int64(st.Bavail) * st.Bsize
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	require.NoError(t, err)
	require.NoError(t, syscall.Fallocate(int(filler.Fd()), 0, 0, free-10<<20))
	require.NoError(t, filler.Close())

	var acked []uint64
	var seq uint64
	var failures int
	var lastErr error
	var lastTook time.Duration
	for failures < 3 && seq < 2000 {
		began := time.Now()
		err := rb.try(seq, 2*time.Second)
		if err == nil {
			acked = append(acked, seq)
			failures = 0
		} else {
			failures++
			lastErr, lastTook = err, time.Since(began)
		}
		seq++
	}
	require.Error(t, lastErr, "the disk filled up within 2,000 events of 32 KiB")
	code, body := d.ready()
	r.note("full after %d acks: publish answered %q in %s; /readyz %d", len(acked), tail(lastErr.Error(), 60), lastTook.Round(time.Millisecond), code)
	p.check(!errDeadline(lastErr) && lastTook < time.Second, "a publish to a full store is refused at once and clearly (got %v in %s)", lastErr, lastTook.Round(time.Millisecond))
	p.check(code == http.StatusServiceUnavailable && strings.Contains(body, "reason"), "/readyz says not ready, with the reason, while the disk is full (got %d %s)", code, body)

	require.NoError(t, os.Remove(filepath.Join(mnt, "filler")))
	freed := time.Now()
	s.delay.Store(0)
	resumed := time.Time{}
	for time.Since(freed) < 20*time.Second {
		if err := rb.try(seq, time.Second); err == nil {
			acked = append(acked, seq)
			resumed = time.Now()
			seq++
			break
		}
		time.Sleep(250 * time.Millisecond) // a robot's pause before it tries again
	}
	p.check(!resumed.IsZero() && resumed.Sub(freed) < 10*time.Second, "ingestion resumes by itself within 10 s of space returning")
	if resumed.IsZero() {
		r.note("no publish accepted within 20 s of freeing: restarted webhookd (today's workaround)")
		if err := d.term(15 * time.Second); err != nil {
			r.note("%v", err)
		}
		require.NoError(t, d.start(time.Minute))
	} else {
		r.note("first publish accepted %s after freeing", resumed.Sub(freed).Round(time.Millisecond))
	}
	for range 50 {
		require.NoError(t, rb.publish(seq, 30*time.Second))
		acked = append(acked, seq)
		seq++
	}
	// The router backs off up to 30 s from an event it failed to fan out.
	s.waitAll(acked, 45*time.Second, 120*time.Second)
	r.settle(s, acked, freed)
	noneLost(t, s, acked, d)
}

// damage is a way to damage the bbolt file while webhookd is stopped.
type damage struct {
	name string
	do   func(t *testing.T, path string)
}

// overwrite writes random bytes over every other 4 KiB page after the two
// meta pages, so that the file still opens.
var overwrite = damage{"overwritten", func(t *testing.T, path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	info, err := f.Stat()
	require.NoError(t, err)
	rnd := rand.New(rand.NewPCG(22, 2))
	page := make([]byte, 4096)
	for off := int64(2 * 4096); off < info.Size(); off += 2 * 4096 {
		for i := range page {
			page[i] = byte(rnd.Uint32())
		}
		_, err := f.WriteAt(page, off)
		require.NoError(t, err)
	}
}}

// truncate cuts the file after its first 4 pages (of more than 4), as a
// copy that ran out of room would.
var truncate = damage{"truncated", func(t *testing.T, path string) {
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Greater(t, info.Size(), int64(4*4096))
	require.NoError(t, os.Truncate(path, 4*4096))
}}

// bboltDamaged: 100 events delivered, webhookd stopped, its bbolt file
// damaged, webhookd started again, 100 more events. Promised (issue 22 item
// 2): the damaged file set aside, the replica ready and delivering, the
// deliveries API answering, and no crash. When it does not, today's
// workaround (delete the file, restart) is applied, so that the count of
// lost events stays honest.
func bboltDamaged(dm damage) func(*testing.T, *row) {
	return func(t *testing.T, r *row) {
		p := promisesOf(t, r, "bbolt-damaged")
		defer p.done()
		d := startDaemon(t, "replica", "", "")
		s := newSink(t, 0, false)
		d.subscribe(s)
		rb := newRobot(t, d.robots, 256)
		acked := publishAll(t, rb, 0, 100)
		require.True(t, s.waitAll(acked, 10*time.Second, 60*time.Second), "the first 100 delivered")
		require.NoError(t, d.term(30*time.Second))
		dm.do(t, dataFile(d))
		before := dirNames(d.dataDir)

		began := time.Now()
		require.NoError(t, d.launch())
		err := d.waitReady(20 * time.Second)
		why := firstLineOf(err)
		if !d.running() {
			why = fmt.Sprintf("%v; %s", d.exit, orNone(d.firstLine("panic")+d.firstLine("fatal error")))
		}
		p.check(err == nil, "webhookd starts and is ready on the %s bbolt file (%s)", dm.name, why)
		if err == nil {
			var aside []string
			for _, name := range dirNames(d.dataDir) {
				if strings.HasPrefix(name, "webhooks") && !slices.Contains(before, name) {
					aside = append(aside, name)
				}
			}
			p.check(len(aside) > 0, "the damaged file is set aside under a new name (data dir: %v)", dirNames(d.dataDir))
			// While the index is rebuilt from AUDIT the API answers 503;
			// then 200, and never anything else.
			asked := time.Now()
			code := deliveriesCode(d)
			for code == http.StatusServiceUnavailable && time.Since(asked) < 30*time.Second {
				time.Sleep(100 * time.Millisecond) // polling the API: no event to await from outside
				code = deliveriesCode(d)
			}
			p.check(code == http.StatusOK, "GET /v1/deliveries answers 503 while the index rebuilds, then 200 (got %d after %s)",
				code, time.Since(asked).Round(time.Millisecond))
			r.note("history answered 200 %s after ready", time.Since(asked).Round(time.Millisecond))
			acked = append(acked, publishAll(t, rb, 100, 100)...)
			ok := s.waitAll(acked, 10*time.Second, 30*time.Second)
			p.check(ok, "new events are delivered (%d of %d missing)", len(s.missing(acked)), len(acked))
			p.check(d.running(), "the process is still running")
		}
		if !d.running() {
			r.note("exit: %v; first panic: %s", d.exit, orNone(d.firstLine("panic")+d.firstLine("fatal error")))
		} else if len(r.broken) > 0 {
			r.note("ready but broken: %s", orNone(d.firstLine("panic")))
		}
		if len(r.broken) > 0 {
			r.note("workaround applied: file deleted, restarted")
			if d.running() {
				_ = d.term(15 * time.Second)
			}
			require.NoError(t, os.Remove(dataFile(d)))
			require.NoError(t, d.start(time.Minute))
			if len(acked) == 100 {
				acked = append(acked, publishAll(t, rb, 100, 100)...)
			}
		}
		s.waitAll(acked, 20*time.Second, 60*time.Second)
		r.settle(s, acked, began)
		noneLost(t, s, acked, d)
	}
}

// hangingReceiver: a healthy receiver's rate over 1,000 events flat out,
// alone, then beside a subscription whose receiver never answers (attempts
// time out after --delivery-timeout 5s). README: the per-subscription cap
// keeps a hanging receiver from holding more than 8 of the 64 workers; so
// the healthy one keeps at least a third of its rate (a generous bound on
// a shared machine).
func hangingReceiver(t *testing.T, r *row) {
	p := promisesOf(t, r, "isolation")
	defer p.done()
	d := startDaemon(t, "replica", "", "")
	healthy := newSink(t, 0, false)
	d.subscribe(healthy)
	rb := newRobot(t, d.robots, 256)
	const n = 1000
	first := publishAll(t, rb, 0, n)
	require.True(t, healthy.waitAll(first, 10*time.Second, 60*time.Second), "the first 1,000 delivered")
	alone := healthy.rate(first)

	hang := newSink(t, 0, true)
	d.subscribe(hang)
	began := time.Now()
	second := publishAll(t, rb, n, n)
	healthy.waitAll(second, 10*time.Second, 60*time.Second)
	beside := healthy.rate(second)
	acked := append(first, second...)
	r.settle(healthy, acked, began)
	r.next = -1
	r.note("healthy receiver alone %.0f/s, beside the hanging one %.0f/s (%.0f %%); the hanging one got %d attempts",
		alone, beside, 100*beside/alone, len(hang.arrivedSeqs()))
	noneLost(t, healthy, acked, d)
	p.check(beside >= alone/3, "the healthy receiver keeps at least a third of its rate beside a hanging one")
}

// connectionFlood: 3,000 anonymous connections (CONNECT, PING, PONG) to the
// embedded server's robot listener from one address, while a robot already
// connected publishes 300 events at 150/s. Delivery must go on. Promised
// (issue 22 item 4): a default limit refuses some of them, and RSS grows by
// less than 100 MiB.
func connectionFlood(t *testing.T, r *row) {
	p := promisesOf(t, r, "conn-limits")
	defer p.done()
	d := startDaemon(t, "replica", "", "")
	s := newSink(t, 0, false)
	d.subscribe(s)
	rb := newRobot(t, d.robots, 256)
	rssBefore, fdsBefore := d.rssMiB(), d.fds()
	const n = 300
	l := startLoad(rb, 0, n, 150, 1)
	awaitReached(t, l)
	began := time.Now()
	conns, refused := flood(t, strings.TrimPrefix(d.robots, "nats://"), 3000)
	opened := time.Since(began)
	rssAfter, fdsAfter := d.rssMiB(), d.fds()
	acked := l.wait(t)
	s.waitAll(acked, 20*time.Second, 60*time.Second)
	r.settle(s, acked, began)
	r.next = -1
	r.note("%d accepted, %d refused in %s; RSS %.0f → %.0f MiB, fds %d → %d", len(conns), refused, opened.Round(time.Millisecond),
		rssBefore, rssAfter, fdsBefore, fdsAfter)
	for _, c := range conns {
		_ = c.Close()
	}
	noneLost(t, s, acked, d)
	p.check(len(conns) < 3000, "a default limit refuses some of 3,000 anonymous connections from one address (%d accepted)", len(conns))
	p.check(rssAfter-rssBefore < 100, "RSS grows by less than 100 MiB (%.0f → %.0f MiB)", rssBefore, rssAfter)
}

// flood opens k NATS client connections to addr, 100 at a time; each sends
// CONNECT and PING and counts as accepted when PONG comes back. It returns
// the accepted connections, left open, and the number refused.
func flood(t *testing.T, addr string, k int) ([]net.Conn, int) {
	t.Helper()
	var mu sync.Mutex
	var conns []net.Conn
	refused := 0
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	for range k {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := openConn(addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused++
				return
			}
			conns = append(conns, c)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return conns, refused
}

// openConn opens one anonymous NATS connection the raw way.
func openConn(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		c.Close()
		return nil, fmt.Errorf("no INFO: %q %v", line, err)
	}
	if _, err := c.Write([]byte("CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n")); err != nil {
		c.Close()
		return nil, err
	}
	line, err = br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "PONG") {
		c.Close()
		return nil, fmt.Errorf("refused: %q %v", strings.TrimSpace(line), err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// noneLost fails the test unless every acknowledged event reached the
// sink; then it logs the missing seqs and each running daemon's status.
func noneLost(t *testing.T, s *sink, acked []uint64, ds ...*daemon) {
	t.Helper()
	missing := s.missing(acked)
	if len(missing) == 0 {
		return
	}
	for _, d := range ds {
		if !d.running() {
			continue
		}
		st, err := d.status()
		t.Logf("%s status (%v): streams %+v consumers %+v counters %v", d.name, err, st.Streams, st.Consumers, st.Counters)
	}
	t.Fatalf("%d of %d acknowledged events never delivered: %v", len(missing), len(acked), missing[:min(len(missing), 20)])
}

// awaitReached waits until the load reached its mark.
func awaitReached(t *testing.T, l *load) {
	t.Helper()
	select {
	case <-l.reached:
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Fatalf("the load ended before its mark: %v", l.err)
	case <-time.After(time.Minute):
		t.Fatal("the load did not reach its mark within a minute")
	}
}

// publishAll publishes n events from seq from, flat out, and returns them.
func publishAll(t *testing.T, rb *robot, from, n uint64) []uint64 {
	t.Helper()
	return startLoad(rb, from, n, 0, 0).wait(t)
}

// stall returns the robot's longest publish, rounded.
func stall(rb *robot) time.Duration {
	return time.Duration(rb.maxStall.Load()).Round(time.Millisecond)
}

// streamLeader returns the index of the cluster node leading stream name
// (jstest names its nodes n1, n2, …).
func streamLeader(t *testing.T, js natsjs.JetStream, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	require.NoError(t, err)
	leader := st.CachedInfo().Cluster.Leader
	i, err := strconv.Atoi(strings.TrimPrefix(leader, "n"))
	require.NoError(t, err, "leader %q", leader)
	return i - 1
}

// deliveriesCode returns the status code of GET /v1/deliveries.
func deliveriesCode(d *daemon) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := d.client().ListDeliveries(ctx, client.DeliveryQuery{})
	if err == nil {
		return http.StatusOK
	}
	if e := (*client.Error)(nil); errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// dirNames lists a directory's entries.
func dirNames(dir string) []string {
	es, _ := os.ReadDir(dir)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// firstLineOf returns err's first line, or "ok".
func firstLineOf(err error) string {
	if err == nil {
		return "ok"
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	return tail(line, 300)
}

// orNone returns s, or "none".
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
