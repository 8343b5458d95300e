// Package substest runs a real subscription store for tests: another
// replica's mirror of the bucket, in a bbolt file of its own.
package substest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/subscriptions"
)

// Replica opens a subscription store on kv with its own bbolt file in a
// temporary directory, runs its mirror until the test ends and returns it
// once the mirror has caught up.
func Replica(t testing.TB, kv natsjs.KeyValue) *subscriptions.Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "replica.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("substest: open bbolt: %v", err)
	}
	s, err := subscriptions.Open(kv, db, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("substest: open store: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("substest: mirror: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("substest: close bbolt: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("substest: replica mirror not ready")
	}
	return s
}
