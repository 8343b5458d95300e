package publisher_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/publisher"
)

// A robot publishes a task's completion and, not sure the first publish
// arrived, publishes it again with the same id: the stream keeps one.
func ExamplePublisher_Publish() {
	url, stop := exampleServer() // stands for webhookd's NATS listener
	defer stop()

	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	p, err := publisher.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data := map[string]string{"task_id": "T123", "robot_id": "R001"}
	for range 2 {
		ack, err := p.Publish(ctx, publisher.TaskCompleted, data, publisher.WithID("evt-T123-done"))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("id=%s sequence=%d duplicate=%v\n", ack.ID, ack.Sequence, ack.Duplicate)
	}
	// Output:
	// id=evt-T123-done sequence=1 duplicate=false
	// id=evt-T123-done sequence=1 duplicate=true
}

// Bad input is refused before anything is sent.
func ExamplePublisher_Publish_badInput() {
	url, stop := exampleServer()
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	p, _ := publisher.New(nc)
	_, err = p.Publish(context.Background(), "task.finished", []byte(`{"task_id":"T1"}`))
	fmt.Println(err)
	_, err = p.Publish(context.Background(), publisher.TaskFailed, []byte(`"gripper stalled"`))
	fmt.Println(err)
	// Output:
	// publisher: event type not in the catalog: "task.finished" (add server-side types with WithEventTypes)
	// publisher: data is not a JSON object: want one JSON object such as {"task_id":"T1"}
}

// A controller streams telemetry-like events at a high rate; every failure
// is reported, and Flush waits for the last ack before exiting.
func ExampleAsync() {
	url, stop := exampleServer()
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	a, err := publisher.NewAsync(nc, publisher.AsyncConfig{
		OnFailure: func(f publisher.Failure) {
			// Log it, keep it for later, or publish it again with its id.
			fmt.Printf("event %s not stored: %v\n", f.ID, f.Err)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := range 1000 {
		if _, err := a.Publish(publisher.RobotConnected, map[string]any{"robot_id": fmt.Sprintf("R%03d", i)}); err != nil {
			fmt.Println(err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Flush(ctx); err != nil {
		fmt.Println(err)
		return
	}
	acked, failed := a.Counts()
	fmt.Println("acked", acked, "failed", failed)
	// Output: acked 1000 failed 0
}

// exampleServer starts an embedded NATS server with webhookd's streams, as
// webhookd provisions them, and returns its URL and a stop function.
func exampleServer() (string, func()) {
	dir, err := os.MkdirTemp("", "publisher-example")
	if err != nil {
		panic(err)
	}
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		panic("nats-server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := jetstream.Provision(ctx, js, jetstream.Provisioning{AuditRetention: time.Hour, AckWait: 5 * time.Second, MaxAckPending: 1000}); err != nil {
		panic(err)
	}
	return ns.ClientURL(), func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}
}
