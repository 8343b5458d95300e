// Package dispatcher runs webhookd's two stages over JetStream, and the
// operators' requeues next to them (Queue).
//
// # Router
//
// The router consumes EVENTS (a work queue) through the shared durable
// consumer "router". An event is checked first: its type must be in the
// catalog, its data at most Config.MaxEventBytes and one JSON object in
// valid UTF-8, and its id (Nats-Msg-Id) at most delivery.MaxEventIDBytes (else
// it is recorded under the id derived from its sequence). A bad event is
// recorded as rejected with its reason and
// acked at once: it is never retried and never blocks later events. A good
// event is fanned out into one job per matching subscription, published to
// DELIVERIES with Nats-Msg-Id = delivery id, and acked only when every job
// is stored. A router that crashes mid fan-out sees the event again, and
// the stream's duplicate window drops the republished jobs. A publish that
// can never succeed (the job too large for the server) rejects the event
// with the reason; a passing failure (NATS away, DELIVERIES nearly full)
// naks it with a growing delay, so the event waits in EVENTS, and EVENTS,
// once full, refuses new events with an error the robot sees.
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
// "workers", Config.Workers goroutines per replica (the routers, EVENTS
// alike). Each pull is a Fetch of its own for no more jobs than there are
// idle goroutines: no job waits in a client buffer with its AckWait
// running, and a pull request the server lost costs its one-second expiry,
// not a stall (see pool). For each job a worker
// decides, attempts if it may, and settles (settle is the one place every
// path ends: record, queue the next attempt, then ack, nak with a delay or
// term, then log; a job whose record cannot be written is nak'ed, never
// acked):
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
// The audit writes are pipelined: a worker publishes a record without a
// kept job asynchronously and hands the job to a few settlers, which
// settle it only once AUDIT has confirmed the record (on an error or no
// confirmation within 10s, the job is nak'ed and its attempt re-run). So a
// worker waits for its HTTP attempt, not for the stream, and the rule
// "recorded before settled" still holds.
//
// While an attempt runs the worker sends InProgress every AckWait/3 from
// when the job was pulled (none for an attempt of milliseconds), so a
// slow receiver causes no early redelivery and AckWait can stay short: a
// crashed worker's job comes back after AckWait. A panic while handling a
// message naks it for a while instead of stopping the process.
//
// # Shutdown
//
// When Run's context ends, both consumers stop pulling; messages already
// buffered are nak'ed at once so another replica takes them; in-flight
// attempts may finish for Config.ShutdownTimeout, after which their context
// is cancelled with ErrStopping and the job is nak'ed unrecorded.
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
// # Guarantees
//
// At-least-once delivery, no ordering. A receiver may see an attempt twice
// when a worker dies between the POST and its record, or when the embedded
// server dies with acks in flight; the delivery id lets it deduplicate.
package dispatcher
