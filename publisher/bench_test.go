package publisher_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/publisher"
)

// The cost of waiting for each ack against queueing: 200-byte events to an
// embedded server with webhookd's EVENTS stream (file storage).
func BenchmarkPublish(b *testing.B) {
	ns := jstest.RunServer(b)
	ctx := context.Background()
	p := jetstream.Provisioning{AuditRetention: time.Hour, AckWait: 5 * time.Second, MaxAckPending: 1000}
	if err := jetstream.Provision(ctx, ns.JS, p); err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"task_id":"T123","robot_id":"R001","note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	b.Run("sync", func(b *testing.B) {
		pub, err := publisher.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pub.Publish(ctx, publisher.TaskCompleted, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("async", func(b *testing.B) {
		a, err := publisher.NewAsync(nc, publisher.AsyncConfig{OnFailure: func(f publisher.Failure) { b.Errorf("%s: %v", f.ID, f.Err) }})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Publish(publisher.TaskCompleted, data); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	})
}
