// Command robot is a robot that publishes events to webhookd with the
// publisher package: it connects, reports a task done, and retries with the
// same event id until the stream acknowledges it, so a retry is never
// delivered twice.
//
//	go run ./examples/robot --nats nats://127.0.0.1:4222 --robot R001 --task T123
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/robotlab/webhookd/publisher"
)

func main() {
	url := flag.String("nats", "nats://127.0.0.1:4222", "webhookd's NATS listener (--nats-listen)")
	robot := flag.String("robot", "R001", "robot id")
	task := flag.String("task", "T123", "task id")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *url, *robot, *task); err != nil {
		log.Fatalf("robot: %v", err)
	}
}

func run(ctx context.Context, url, robot, task string) error {
	nc, err := nats.Connect(url, nats.Name("robot-"+robot), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	p, err := publisher.New(nc)
	if err != nil {
		return err
	}
	events := []struct {
		typ  publisher.EventType
		id   string
		data map[string]string
	}{
		{publisher.RobotConnected, "evt-" + robot + "-connected-" + publisher.NewID(), map[string]string{"robot_id": robot}},
		// A stable id: if this program is run again for the same task, the
		// duplicate (within 2 minutes) is dropped.
		{publisher.TaskCompleted, "evt-" + task + "-completed", map[string]string{"task_id": task, "robot_id": robot}},
	}
	for _, e := range events {
		ack, err := publishWithRetry(ctx, p, e.typ, e.data, e.id)
		if err != nil {
			return err
		}
		fmt.Printf("published %s id=%s sequence=%d duplicate=%v\n", e.typ, ack.ID, ack.Sequence, ack.Duplicate)
	}
	return nil
}

// publishWithRetry publishes until acknowledged, always with the same id.
func publishWithRetry(ctx context.Context, p *publisher.Publisher, typ publisher.EventType, data any, id string) (publisher.Ack, error) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := p.Publish(actx, typ, data, publisher.WithID(id))
		cancel()
		if err == nil || !publisher.Retryable(err) || errors.Is(ctx.Err(), context.Canceled) {
			return ack, err
		}
		log.Printf("robot: %v; retrying in %s", err, wait)
		select {
		case <-ctx.Done():
			return publisher.Ack{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}
