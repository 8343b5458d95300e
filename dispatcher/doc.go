// Package dispatcher runs webhookd's two stages over JetStream, and the
// operators' requeues next to them (Queue).
//
// # Router and the fast path
//
// The router consumes EVENTS through the shared durable consumer "router",
// Config.Routers goroutines per replica. An event is checked first: its
// type must be in the catalog, its data at most Config.MaxEventBytes and
// one JSON object in valid UTF-8 that passes its type's schema, if
// Deps.Schemas has one (once per event, whatever the number of
// subscriptions), and its id (Nats-Msg-Id) at most
// delivery.MaxEventIDBytes (else it is recorded under the id derived from
// its sequence). A bad event is recorded as rejected with its reason and
// acked at once: it is never retried and never blocks later events.
//
// A good event is a fan-out (fanout): one branch per matching
// subscription. Each branch's first attempt goes the fast path: straight
// to a goroutine of this process, through the same endpoint admission as a
// job (endpoint.Endpoints: the cap of attempts in flight, the breaker, the
// memory queue). A branch is spilled instead, as a job published to
// DELIVERIES with Nats-Msg-Id = delivery id, when it needs one: the
// endpoint is at its cap (and its queue would not get to it in time) or
// its breaker is open (the job is due after that wait), the subscription
// is paused or disabled (the worker holds the job), or the event is a
// redelivery (a replica died mid fan-out: every branch is spilled, and the
// jobs' message ids drop those it had spilled before; a branch it had
// attempted is attempted again, a duplicate the delivery id lets the
// receiver drop). The event is acked once every branch has one of: a
// confirmed record of its attempt's outcome (succeeded, or failed for
// good with the job kept), a confirmed record plus its stored retry job,
// or its stored spilled job. If any branch gets none, the event is nak'ed
// with a growing delay and routed again. While branches run, the event is
// kept in progress every AckWait/3.
//
// The fast path's capacity is Config.Workers tokens (capacity): the router
// pool takes one per event it pulls, and a fan-out to several endpoints
// takes one more for each further branch, so a replica whose attempts fill
// its capacity pulls no more events, and leaves them to its peers. A
// branch waiting in an endpoint's memory queue holds no token, so a slow
// endpoint's backlog holds neither routers nor tokens. A publish of a job
// that can never succeed (larger than the server takes) fails that
// delivery at once with the reason; a passing failure (NATS away,
// DELIVERIES nearly full) naks the event with a growing delay, so it waits
// in EVENTS, which refuses new events once full with an error the robot
// sees.
//
// Delivery ids are a UUIDv5 of the event id, the subscription id and the
// event's EVENTS sequence: a repeated fan-out of one stored event yields the
// same ids, while an event id that a robot reuses after the duplicate window
// is a new event and is delivered as a new delivery (receivers still see the
// robot's id in the payload).
//
// # Jobs and attempt numbers
//
// A job is the event data, byte for byte, as the message body, with its
// metadata in headers (delivery.Job): nothing re-encodes the payload, and a
// job is never larger than its event plus a few hundred bytes. Each job
// carries the number of the attempt it makes. When an attempt fails and the
// policy retries, the worker records the attempt, publishes the next
// attempt's job (number+1, due after the delay, Nats-Msg-Id
// "<delivery>/attempt/<n>") and acks the current one. A job that arrives
// before it is due is nak'ed until then. So the attempt count, the retry
// policy's position and the decision "already finished" never depend on any
// replica's history index: a replica that starts with an empty data dir in
// the middle of an incident continues every delivery exactly where it was.
//
// DELIVERIES is a work queue too: a settled job leaves the stream, and that
// removal survives a crash of the server, so a finished job is not offered
// again. An attempt interrupted by a crash or a shutdown records nothing;
// its job comes back with the same attempt number.
//
// # Workers
//
// The workers consume DELIVERIES through the shared durable consumer
// "workers", Config.Workers goroutines per replica beside the fast path's
// capacity, so retries and spilled jobs always find workers. Each pull is
// a Fetch of its own for no more messages than there are idle goroutines
// (the routers' likewise, within their tokens): no message waits in a
// client buffer with its AckWait running, and a pull request the server
// lost costs its one-second expiry, not a stall (see pool). For each job a
// worker decides, attempts if it may, and settles:
//
//   - not yet due: nak until due;
//   - subscription deleted: recorded cancelled, term;
//   - subscription paused or disabled (checked against the record of truth,
//     so a resume is never missed): recorded paused with the job kept in
//     AUDIT for the resume, term;
//   - endpoint at its cap of attempts in flight: the job waits in memory
//     for a slot if the endpoint should get to it within a third of the
//     AckWait at its pace (endpoint.Endpoints), otherwise it is nak'ed
//     for about as long as the jobs ahead of it need; with its circuit
//     breaker open, nak until the cool-down ends; no attempt is counted;
//   - otherwise the attempt: sign, POST, classify, then succeeded (ack),
//     retrying (next job, ack), or failed after the last attempt (recorded
//     with the job kept, term, and a webhook.delivery_exhausted event).
//
// A 410 Gone, or failing without a success for --disable-after, disables
// the subscription: its jobs are held as in a pause until an operator
// re-enables it (resume), and webhook.subscription_disabled is published.
// Operational events about operational events are not published, so a
// failing receiver of them cannot feed itself.
//
// # Settling
//
// Every path of a job or a branch ends in settle, in a fixed order: the
// record (with the kept job, if any), then the next attempt's job, then
// the message's settlement, then the log line. The record joins the
// recorder's next AUDIT batch (history.Recorder.Record: several records
// per message, the next batch forming while one is in flight); a settler
// goroutine finishes the settlement once the batch is confirmed, so a
// worker waits for its HTTP attempt, not for the stream, and the rule
// "recorded before settled" holds. A record or next job that cannot be
// written naks the job (spills the branch) for its attempt to run again,
// never acks it. At most 4 × Config.Workers settlements wait for their
// records at once; beyond that a worker waits.
//
// One settle funnel (funnel) is the only caller of Ack, Nak,
// NakWithDelay, Term and InProgress for every consumer: the router's
// events as much as the workers' and the ordered partitions' jobs, timers
// and the pool's hand-backs included. A settle that fails is logged once there, with the message's
// stream and sequence, and counted.
//
// While a job's attempt runs the worker sends InProgress every AckWait/3 from
// when the job was pulled (none for an attempt of milliseconds), so a
// slow receiver causes no early redelivery and AckWait can stay short: a
// crashed worker's job comes back after AckWait. A panic while handling a
// message naks it for a while instead of stopping the process.
//
// # Shutdown
//
// When Run's context ends, both pools stop pulling; messages fetched but
// not started are nak'ed at once, and so are jobs waiting in memory for a
// slot, while branches waiting there, or for a token, are spilled to
// DELIVERIES at once: another replica takes all of them without waiting
// for an AckWait, also when the NATS server restarts right after (the
// embedded one stops with its webhookd): from the stop on, every ack and
// nak waits for the server's reply, as the server drops the settles still
// queued when it shuts down; and a nak "at once" carries a delay of a
// millisecond, as the server stores a nak's delay with the consumer's
// state but keeps a plain nak in memory only. In-flight attempts may finish for Config.ShutdownTimeout
// and are settled before Run returns (the recorder outlives Run); after
// the timeout their context is cancelled with ErrStopping and the job is
// nak'ed (the branch spilled) unrecorded.
//
// # Queue
//
// Queue carries out operators' requeues: redeliver, replay, resume after a
// pause, cancel on delete. A requeue publishes the kept job first, under
// the message id "<delivery>/requeue/<kept job's AUDIT sequence>" (a double
// submit queues it once), then records the delivery as pending. Replays
// and resumes run in Queue.Run, under the daemon's errgroup, never in the
// HTTP request that asked for them: paced at their rate (above 250/s up to 64
// requeues overlap, each publishing after the one before), paging through
// every selected delivery (no cap), and
// stopped at shutdown (requeues already started finish). A replay's
// progress is kept in memory by its replica (StartReplay, Replay); one per
// subscription runs at a time, and asking again for the same range joins
// it. Every minute (HeldSweep) Run also resumes the held deliveries of
// subscriptions that are active again, so a resume cut off by a shutdown
// strands nothing.
//
// # Ordered deliveries
//
// A subscription with an ordering key (a CEL expression, see
// subscriptions/expr) never takes the fast path: the router evaluates the
// key and stores every branch as a job in ORDERED, before any other branch
// of the event starts, on subject
// ordered.<partition> (jetstream.OrderedPartition: a hash of subscription
// and key), carrying the key and the event's EVENTS sequence. An event
// whose key fails goes the normal path, unordered, and is counted.
//
// Each partition has a durable consumer with a pinned-client priority
// group, so the server hands its jobs to one replica, the owner, and pins
// another once the owner has not pulled for the consumer's PinnedTTL. The
// owner keeps a FIFO queue per key, sorted by EVENTS sequence, and starts
// each key's head through the endpoint's admission and the attempt and
// settle code every job uses; a head that finds its endpoint full or its
// breaker open, or its subscription paused or disabled, stays the head
// and is tried again later. Every job held is kept in progress.
//
// A head starts only below the partition's horizon (partition.sync): the
// owner reads the routed floor F in EVENTS (routedLog: every event at or
// below it has its ordered jobs stored, as its routers told every replica
// on a core subject, from the router's ack floor on; an event's other
// branches do not hold it back), then its consumer; when
// the consumer has nothing undelivered and every job it delivered and not
// settled is held by the owner, every unsettled job of an event at or
// below F is in the owner's queues, so heads up to F+1 may start. "Held by
// the owner" is checked by count (NumAckPending) when the owner takes the
// partition over, since the jobs a dead owner held come back only after
// their AckWait while newer ones may arrive first, and afterwards by the
// count of the consumer's deliveries. This also orders jobs that routers stored
// out of their events' order.
//
// A failed head is settled as any job: recorded, its next attempt's job
// stored in ORDERED, then acked; the key stays blocked until that job
// arrives and is due, so attempt numbers survive a crash, and no job is
// nak'ed back to the server while its key waits (a nak would let a later
// job of the key pass it). A job that a crashed owner left behind beside
// its successor is acked as superseded. A requeued delivery (redeliver,
// replay) goes to DELIVERIES and is delivered unordered, and does not
// block its key. A replica that finds itself unpinned, or stops, hands
// the jobs it has not started back at once; a stopping replica, and one
// whose partition has been idle for idleRelease, also unpins itself, so
// the partition moves without waiting for PinnedTTL. A replica owns at
// most its share of the partitions, ceil(32 / replicas heard of through
// the routed log): at its share it pulls no other, and above it (alone
// when it took them) it hands the excess over (ordered.balance).
//
// # Guarantees
//
// At-least-once delivery; ordering only per ordering key, as above. A receiver may see an attempt twice
// when a worker dies between the POST and its record, or when the embedded
// server dies with acks in flight; the delivery id lets it deduplicate.
package dispatcher
