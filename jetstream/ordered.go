package jetstream

import (
	"hash/fnv"
	"strconv"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// The ordered path: jobs of subscriptions with an ordering key.
const (
	// StreamOrdered holds the jobs of subscriptions with an ordering key,
	// on subjects OrderedPrefix<partition>, until they are settled.
	StreamOrdered = "ORDERED"
	// OrderedPrefix is the subject prefix of ordered jobs.
	OrderedPrefix = "ordered."
	// OrderedPartitions is how many partitions the ordered jobs are spread
	// over: each partition has its own durable consumer, which one replica
	// owns at a time.
	OrderedPartitions = 32
	// OrderedGroup is the priority group of the partitions' consumers: its
	// pinned client is the partition's owner.
	OrderedGroup = "owner"
	// RoutedSubject is the core NATS subject (webhookd's account, no
	// stream) on which each replica tells the others which events it
	// routed far enough for ordered deliveries (their ordered jobs
	// stored), and that it is alive.
	RoutedSubject = "webhookd.routed"
)

// OrderedPartition returns the partition of key's jobs for subscription
// subID: a hash, so every job of one key lands in one partition.
func OrderedPartition(subID, key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(subID))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % OrderedPartitions)
}

// OrderedSubject returns the subject of the jobs of partition p.
func OrderedSubject(p int) string { return OrderedPrefix + strconv.Itoa(p) }

// OrderedConsumer returns the name of partition p's durable consumer.
func OrderedConsumer(p int) string { return "ordered-" + strconv.Itoa(p) }

// orderedStream returns the ORDERED stream's configuration: a work queue,
// like DELIVERIES, sharing its byte cap.
func (p Provisioning) orderedStream(replicas int, dup time.Duration, maxBytes int64) natsjs.StreamConfig {
	return natsjs.StreamConfig{
		Name: StreamOrdered, Description: "delivery jobs of subscriptions with an ordering key, one consumer per partition",
		Subjects: []string{OrderedPrefix + ">"}, Retention: natsjs.WorkQueuePolicy,
		Storage: natsjs.FileStorage, Replicas: replicas, Duplicates: dup,
		MaxBytes: maxBytes, Discard: natsjs.DiscardNew,
	}
}

// OrderedConsumers returns the partitions' durable consumers. Each has a
// priority group with the pinned-client policy: the server hands a
// partition's jobs to one pull client only (the owner), and pins another
// once the owner has sent no pull request for PinnedTTL. Held jobs stay
// pending while they wait for their key (the owner keeps them in progress),
// so MaxAckPending is large.
func (p Provisioning) OrderedConsumers() []natsjs.ConsumerConfig {
	ttl := max(p.AckWait, 5*time.Second)
	out := make([]natsjs.ConsumerConfig, OrderedPartitions)
	for i := range out {
		out[i] = natsjs.ConsumerConfig{
			Durable: OrderedConsumer(i), Description: "delivers the ordered jobs of one partition, owned by one replica",
			FilterSubject: OrderedSubject(i), AckPolicy: natsjs.AckExplicitPolicy, AckWait: p.AckWait,
			MaxAckPending: OrderedMaxAckPending, MaxDeliver: -1, DeliverPolicy: natsjs.DeliverAllPolicy,
			PriorityPolicy: natsjs.PriorityPolicyPinned, PriorityGroups: []string{OrderedGroup}, PinnedTTL: ttl,
		}
	}
	return out
}

// OrderedMaxAckPending is how many jobs one partition's owner may hold.
const OrderedMaxAckPending = 20_000
