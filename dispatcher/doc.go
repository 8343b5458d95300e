// Package dispatcher runs webhookd's two stages over JetStream.
//
// The router consumes EVENTS through the shared durable consumer "router".
// For each event it publishes one delivery job per matching subscription to
// DELIVERIES with Nats-Msg-Id = delivery id (a UUIDv5 of event id and
// subscription id), waits for every publish acknowledgement and only then acks
// the event. A router that crashes mid fan-out sees the event again and its
// republished jobs are dropped by the stream's duplicate window. An event with
// no subscriber is acked and counted. An event whose body is not a JSON object,
// or whose type is not in the catalog, is recorded as rejected with the reason
// and acked: it is never retried and never blocks later events.
//
// The workers consume DELIVERIES through the shared durable consumer
// "workers", a pool of Config.Workers goroutines per replica. Each job runs
// three steps in a fixed order: attempt (sign, POST, classify), record the
// attempt in the audit trail, settle — Ack on a 2xx, NakWithDelay(next
// backoff) on a failure, Term after recording "failed" on the last attempt.
// If the record cannot be written the job is nak'ed, never acked. The final
// record keeps the job, so an operator can send it again later.
//
// Jobs of a paused subscription are recorded as "paused" (no attempt
// counted) and leave the queue; resuming requeues them. Jobs of a deleted
// subscription are recorded as "cancelled".
//
// Attempt numbers are counted from the audit trail (the highest recorded
// attempt of the delivery, plus one), not from JetStream's NumDelivered,
// which also rises on ack timeouts, shutdown naks and prefetched messages.
// So an attempt cut off by a crash or a shutdown records nothing and uses up
// no retry: the job comes back with the same attempt number. NumDelivered is
// only a safety net: a job delivered more than Config.MaxDeliveries times
// (a worker that keeps crashing on it) is recorded as failed and terminated.
//
// While an attempt runs, the worker sends InProgress every AckWait/3, so a
// receiver slower than AckWait causes no early redelivery, and AckWait can
// stay short: a crashed worker's job comes back after AckWait.
//
// Guarantees: at-least-once delivery; no ordering. A job offered again after
// its delivery was recorded as finished (consumer state lost in a crash) is
// acked without sending.
//
// Shutdown: when Run's context ends, both consumers stop pulling; messages
// already buffered are nak'ed at once so another replica takes them;
// in-flight attempts may finish for Config.ShutdownTimeout, after which their
// context is cancelled with ErrStopping and the job is nak'ed unrecorded.
package dispatcher
