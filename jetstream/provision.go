package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// Provisioning is the configuration Provision applies.
type Provisioning struct {
	// Replicas of each stream (1 for a single server, 3 on a cluster).
	Replicas int
	// AuditRetention is the MaxAge of AUDIT (delivery history).
	AuditRetention time.Duration
	// DuplicateWindow is how long each stream remembers a Nats-Msg-Id
	// (default 2m): EVENTS for robots' retries, DELIVERIES and AUDIT for
	// the jobs and records of work repeated after a crash. Each id
	// remembered costs the server memory until the window passes.
	DuplicateWindow time.Duration
	// AckWait of the router and workers consumers: how long a job whose
	// worker went silent waits before redelivery. Workers extend it with
	// InProgress while an attempt runs, so it need not exceed the timeout.
	AckWait time.Duration
	// MaxAckPending of the workers consumer: unsettled jobs across every
	// replica, retries waiting for their time included.
	MaxAckPending int
	// MaxEventBytes is the largest event data accepted; EVENTS refuses a
	// larger message at publish (headers get EventHeaderAllowance more).
	MaxEventBytes int64
	// EventID names an event published without a Nats-Msg-Id from a
	// stream salt and its sequence (delivery.EventIDFromSequence). The
	// EVENTS migration calls it with an empty salt, as older versions did,
	// so that a copied event keeps its id; without it Provision refuses to
	// migrate.
	EventID func(salt string, seq uint64) string
	// MaxStore caps the bytes of the streams: EVENTS and DELIVERIES a
	// quarter each and ORDERED an eighth, refusing new messages when full;
	// AUDIT the rest (three eighths), dropping its oldest records when
	// full. 0: no cap.
	MaxStore int64
	// SessionTTL is the console's session lifetime: how long a revoked
	// session is remembered (default 12h).
	SessionTTL time.Duration
}

// EventHeaderAllowance is the room left for an event's headers above
// Provisioning.MaxEventBytes.
const EventHeaderAllowance = 16 << 10

// Streams returns the stream configurations for p.
//
// EVENTS is kept under Limits retention: Purger removes events once the
// router has acked them (and their payload's retention has passed), so a
// routed event is never offered again and an unrouted one never dropped.
// DELIVERIES is a work queue: a job leaves when it is settled, and that
// removal survives a crash of the server. Neither has an age limit: at
// their byte cap they refuse new messages (Discard New), which the
// publisher sees as an error. AUDIT is the history, kept for
// AuditRetention.
func (p Provisioning) Streams() []natsjs.StreamConfig {
	dup := p.DuplicateWindow
	if dup <= 0 {
		dup = 2 * time.Minute
	}
	replicas := max(p.Replicas, 1)
	quarter, eighth, audit := int64(-1), int64(-1), int64(-1)
	if p.MaxStore > 0 {
		quarter, eighth = p.MaxStore/4, p.MaxStore/8
		audit = p.MaxStore - 2*quarter - eighth
	}
	maxMsg := int32(-1)
	if p.MaxEventBytes > 0 {
		maxMsg = int32(p.MaxEventBytes + EventHeaderAllowance)
	}
	return []natsjs.StreamConfig{
		{
			Name: StreamEvents, Description: "events published by robots and controllers, purged once routed and retained",
			Subjects: []string{EventsPrefix + ">"}, Retention: natsjs.LimitsPolicy,
			Storage: natsjs.FileStorage, Replicas: replicas, Duplicates: dup,
			MaxBytes: quarter, Discard: natsjs.DiscardNew, MaxMsgSize: maxMsg,
		},
		{
			Name: StreamDeliveries, Description: "one job per delivery attempt, until settled",
			Subjects: []string{DeliveriesPrefix + ">"}, Retention: natsjs.WorkQueuePolicy,
			Storage: natsjs.FileStorage, Replicas: replicas, Duplicates: dup,
			MaxBytes: quarter, Discard: natsjs.DiscardNew,
		},
		{
			Name: StreamAudit, Description: "one record per delivery attempt or verdict, and the jobs kept for requeues",
			Subjects: []string{AuditPrefix + ">"}, Retention: natsjs.LimitsPolicy,
			Storage: natsjs.FileStorage, Replicas: replicas, MaxAge: p.AuditRetention, Duplicates: dup,
			MaxBytes: audit, Discard: natsjs.DiscardOld,
		},
		p.orderedStream(replicas, dup, eighth),
	}
}

// Consumers returns the shared durable consumers, keyed by stream.
// They inherit their stream's replicas, and the server scales them after
// their stream (some seconds later).
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
// buckets (subscriptions, the team tokens, and the console's revoked
// sessions with a TTL of SessionTTL). It is idempotent: replicas may call it concurrently.
// A work-queue EVENTS left by an older version is migrated to Limits
// retention with every message it holds (see migrateEvents); another
// stream left with another retention policy is replaced when its consumer
// holds no unfinished work, and refused with an error otherwise.
//
// Replicas applies to the streams, the buckets and (inherited) the consumers;
// changing it scales the existing streams in place. A count above the
// cluster's JetStream servers fails with an error saying so.
func Provision(ctx context.Context, js natsjs.JetStream, p Provisioning) error {
	if p.Replicas < 0 || p.Replicas > 5 {
		return fmt.Errorf("jetstream: %d stream replicas: want 1 to 5", p.Replicas)
	}
	consumers := p.Consumers()
	for _, sc := range p.Streams() {
		var have *natsjs.StreamConfig
		var err error
		if sc.Name == StreamEvents {
			var oldID func(uint64) string
			if p.EventID != nil {
				oldID = func(seq uint64) string { return p.EventID("", seq) }
			}
			have, err = migrateEvents(ctx, js, sc, consumers[StreamEvents], oldID)
		} else {
			have, err = migrate(ctx, js, sc, consumers[sc.Name].Durable)
		}
		if err != nil {
			return err
		}
		if have != nil && sameStream(*have, sc) {
			continue // an update would wait on a stream still being scaled
		}
		if err := answered(ctx, func(ctx context.Context) error { _, err := js.CreateOrUpdateStream(ctx, sc); return err }); err != nil {
			return fmt.Errorf("jetstream: provision stream %s%s: %w", sc.Name, replicasHint(sc.Replicas), err)
		}
	}
	for stream, cc := range consumers {
		if err := answered(ctx, func(ctx context.Context) error { _, err := js.CreateOrUpdateConsumer(ctx, stream, cc); return err }); err != nil {
			return fmt.Errorf("jetstream: provision consumer %s/%s: %w", stream, cc.Durable, err)
		}
	}
	// The partitions' consumers at once, a few at a time: one after
	// another, 32 replicated consumers took a cluster tens of seconds.
	var g errgroup.Group
	g.SetLimit(8)
	for _, cc := range p.OrderedConsumers() {
		g.Go(func() error {
			if err := answered(ctx, func(ctx context.Context) error {
				_, err := js.CreateOrUpdateConsumer(ctx, StreamOrdered, cc)
				return err
			}); err != nil {
				return fmt.Errorf("jetstream: provision consumer %s/%s: %w", StreamOrdered, cc.Durable, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	sessionTTL := p.SessionTTL
	if sessionTTL <= 0 {
		sessionTTL = 12 * time.Hour
	}
	for _, kc := range []natsjs.KeyValueConfig{
		{
			Bucket: BucketSubscriptions, Description: "webhook subscriptions",
			History: 1, Storage: natsjs.FileStorage, Replicas: max(p.Replicas, 1),
		},
		{
			Bucket: BucketRevokedSessions, Description: "console sessions ended by logout, kept for a session's lifetime",
			History: 1, TTL: sessionTTL, Storage: natsjs.FileStorage, Replicas: max(p.Replicas, 1),
		},
		{
			Bucket: BucketTeamTokens, Description: "team tokens: owner and SHA-256 of each, by name",
			History: 1, Storage: natsjs.FileStorage, Replicas: max(p.Replicas, 1),
		},
	} {
		if err := answered(ctx, func(ctx context.Context) error { return provisionBucket(ctx, js, kc) }); err != nil {
			return err
		}
	}
	return nil
}

// provisionBucket creates or updates the KV bucket kc, unless it exists as
// wanted: an update would wait on a bucket still being scaled.
// requestTimeout bounds one JetStream API request of Provision.
const requestTimeout = 10 * time.Second

// answered runs the idempotent request f within requestTimeout, and again
// while ctx lasts if no answer came: a cluster that is electing a leader,
// or too busy, may drop a request's reply, and one lost reply must not
// hold a replica's start until its deadline.
func answered(ctx context.Context, f func(context.Context) error) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := f(rctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return err
		}
	}
}

func provisionBucket(ctx context.Context, js natsjs.JetStream, kc natsjs.KeyValueConfig) error {
	if str, err := js.Stream(ctx, "KV_"+kc.Bucket); err == nil {
		have := str.CachedInfo().Config
		if have.Replicas == kc.Replicas && have.MaxAge == kc.TTL {
			return nil
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
		return fmt.Errorf("jetstream: provision bucket %s%s: %w", kc.Bucket, replicasHint(kc.Replicas), err)
	}
	return nil
}

// replicasHint names the replica count in a provisioning error when more
// than one copy was asked for: the usual cause is fewer JetStream servers.
func replicasHint(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" with %d replicas (needs a NATS cluster of at least %d JetStream servers)", n, n)
}

// sameStream reports whether stream configuration have already holds every
// setting Provision gives in want.
func sameStream(have, want natsjs.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Replicas == want.Replicas &&
		have.Duplicates == want.Duplicates && have.MaxBytes == want.MaxBytes && have.Discard == want.Discard &&
		have.MaxMsgSize == want.MaxMsgSize && have.MaxAge == want.MaxAge
}

// migrate deletes stream sc.Name if it exists with another retention
// policy (which JetStream cannot change in place) and its consumer has
// nothing left to do. It returns the configuration of the stream it kept,
// or nil when there is none.
func migrate(ctx context.Context, js natsjs.JetStream, sc natsjs.StreamConfig, consumer string) (*natsjs.StreamConfig, error) {
	str, err := js.Stream(ctx, sc.Name)
	if errors.Is(err, natsjs.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream %s: %w", sc.Name, err)
	}
	info := str.CachedInfo()
	if info.Config.Retention == sc.Retention {
		return &info.Config, nil
	}
	if consumer != "" {
		c, err := str.Consumer(ctx, consumer)
		switch {
		case errors.Is(err, natsjs.ErrConsumerNotFound):
		case err != nil:
			return nil, fmt.Errorf("jetstream: consumer %s/%s: %w", sc.Name, consumer, err)
		default:
			ci := c.CachedInfo()
			if ci.NumPending > 0 || ci.NumAckPending > 0 {
				return nil, fmt.Errorf("jetstream: stream %s has %d unfinished messages under the old %s retention; "+
					"let the previous webhookd version drain it (webhookctl status), then start this one",
					sc.Name, ci.NumPending+uint64(ci.NumAckPending), info.Config.Retention)
			}
		}
	}
	if err := js.DeleteStream(ctx, sc.Name); err != nil {
		return nil, fmt.Errorf("jetstream: replace stream %s (retention %s → %s): %w", sc.Name, info.Config.Retention, sc.Retention, err)
	}
	return nil, nil
}
