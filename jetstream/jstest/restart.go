package jstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Restartable is a JetStream server in this process that a test can stop
// and start again on the same port and store directory, as an operator
// restarting NATS would.
type Restartable struct {
	// URL is the server's client URL; it stays the same across restarts.
	URL string

	t    testing.TB
	opts server.Options
	ns   *server.Server
}

// RunRestartable starts a server on a free loopback port with its store in
// a temporary directory; it is stopped when the test ends.
func RunRestartable(t testing.TB) *Restartable {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("jstest: free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	r := &Restartable{t: t, opts: server.Options{
		JetStream: true, StoreDir: dir, Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
	}}
	r.Start()
	r.URL = r.ns.ClientURL()
	t.Cleanup(r.Stop)
	return r
}

// Start starts the server (again).
func (r *Restartable) Start() {
	r.t.Helper()
	opts := r.opts // the server keeps and changes its options
	ns, err := server.NewServer(&opts)
	if err != nil {
		r.t.Fatalf("jstest: new server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		ns.Shutdown()
		r.t.Fatalf("jstest: server not ready on port %d", r.opts.Port)
	}
	r.ns = ns
}

// Stop shuts the server down and waits until it has; it may be called
// when stopped.
func (r *Restartable) Stop() {
	if r.ns == nil {
		return
	}
	r.ns.Shutdown()
	r.ns.WaitForShutdown()
	r.ns = nil
}

// Server returns the running server, or nil when stopped.
func (r *Restartable) Server() *server.Server { return r.ns }
