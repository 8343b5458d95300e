package jetstream

import (
	"context"
	"fmt"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Provisioning is the configuration Provision applies.
type Provisioning struct {
	// Replicas of each stream (1 for a single server, 3 on a cluster).
	Replicas int
	// EventRetention is the MaxAge of EVENTS and DELIVERIES. It must exceed
	// the longest retry schedule.
	EventRetention time.Duration
	// AuditRetention is the MaxAge of AUDIT (delivery history).
	AuditRetention time.Duration
	// DuplicateWindow is how long a Nats-Msg-Id is remembered (default 2m).
	DuplicateWindow time.Duration
	// AckWait of the router and workers consumers: how long a job whose
	// worker went silent waits before redelivery. Workers extend it with
	// InProgress while an attempt runs, so it need not exceed the timeout.
	AckWait time.Duration
	// MaxAckPending of the workers consumer: unsettled jobs across every
	// replica, retries waiting on NakWithDelay included.
	MaxAckPending int
}

// Streams returns the stream configurations for p.
func (p Provisioning) Streams() []natsjs.StreamConfig {
	dup := p.DuplicateWindow
	if dup <= 0 {
		dup = 2 * time.Minute
	}
	replicas := max(p.Replicas, 1)
	return []natsjs.StreamConfig{
		{
			Name: StreamEvents, Description: "events published by robots and controllers",
			Subjects: []string{EventsPrefix + ">"}, Retention: natsjs.LimitsPolicy,
			Storage: natsjs.FileStorage, Replicas: replicas, MaxAge: p.EventRetention, Duplicates: dup,
		},
		{
			Name: StreamDeliveries, Description: "one delivery job per event and matching subscription",
			Subjects: []string{DeliveriesPrefix + ">"}, Retention: natsjs.LimitsPolicy,
			Storage: natsjs.FileStorage, Replicas: replicas, MaxAge: p.EventRetention, Duplicates: dup,
		},
		{
			Name: StreamAudit, Description: "one record per delivery attempt or verdict",
			Subjects: []string{AuditPrefix + ">"}, Retention: natsjs.LimitsPolicy,
			Storage: natsjs.FileStorage, Replicas: replicas, MaxAge: p.AuditRetention, Duplicates: dup,
		},
	}
}

// Consumers returns the shared durable consumers, keyed by stream.
func (p Provisioning) Consumers() map[string]natsjs.ConsumerConfig {
	return map[string]natsjs.ConsumerConfig{
		StreamEvents: {
			Durable: ConsumerRouter, Description: "fans events out into delivery jobs",
			AckPolicy: natsjs.AckExplicitPolicy, AckWait: p.AckWait, MaxAckPending: 10_000,
			MaxDeliver: -1, DeliverPolicy: natsjs.DeliverAllPolicy,
		},
		StreamDeliveries: {
			Durable: ConsumerWorkers, Description: "delivers jobs to HTTP endpoints",
			AckPolicy: natsjs.AckExplicitPolicy, AckWait: p.AckWait, MaxAckPending: p.MaxAckPending,
			// The worker counts attempts and terminates exhausted jobs itself,
			// recording why; a server-side MaxDeliver would drop them silently.
			MaxDeliver: -1, DeliverPolicy: natsjs.DeliverAllPolicy,
		},
	}
}

// Provision creates or updates the streams, the shared consumers and the
// subscription bucket. It is idempotent: replicas may call it concurrently.
func Provision(ctx context.Context, js natsjs.JetStream, p Provisioning) error {
	for _, sc := range p.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("jetstream: provision stream %s: %w", sc.Name, err)
		}
	}
	for stream, cc := range p.Consumers() {
		if _, err := js.CreateOrUpdateConsumer(ctx, stream, cc); err != nil {
			return fmt.Errorf("jetstream: provision consumer %s/%s: %w", stream, cc.Durable, err)
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, natsjs.KeyValueConfig{
		Bucket: BucketSubscriptions, Description: "webhook subscriptions",
		History: 1, Storage: natsjs.FileStorage, Replicas: max(p.Replicas, 1),
	}); err != nil {
		return fmt.Errorf("jetstream: provision bucket %s: %w", BucketSubscriptions, err)
	}
	return nil
}
