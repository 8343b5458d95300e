// Package jstest starts real embedded NATS servers with JetStream for tests.
package jstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/jetstream"
)

// Server is a running test server and a client connected to it.
type Server struct {
	*server.Server
	NC *nats.Conn
	JS natsjs.JetStream
}

// RunServer starts a JetStream server on a random loopback port with its
// store in a temporary directory, and stops it when the test ends.
func RunServer(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir() // registered first, so removed after the server stops
	ns, err := server.NewServer(&server.Options{
		JetStream: true, StoreDir: dir, Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("jstest: new server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("jstest: server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatalf("jstest: connect: %v", err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatalf("jstest: jetstream: %v", err)
	}
	t.Cleanup(func() { nc.Close(); ns.Shutdown(); ns.WaitForShutdown() })
	return &Server{Server: ns, NC: nc, JS: js}
}

// Provisioning returns settings with short timings for tests.
func Provisioning() jetstream.Provisioning {
	return jetstream.Provisioning{
		AuditRetention: time.Hour, MaxEventBytes: 1 << 20,
		AckWait: 5 * time.Second, MaxAckPending: 1000, // long enough for a loaded CI machine
	}
}

// RunProvisioned starts a server and provisions it with Provisioning().
func RunProvisioned(t testing.TB) *Server {
	t.Helper()
	s := RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := jetstream.Provision(ctx, s.JS, Provisioning()); err != nil {
		t.Fatalf("jstest: provision: %v", err)
	}
	return s
}
