// Package delivery owns one delivery attempt and its record: the job and
// envelope, signing (subpackage signature), the outbound guard, result
// classification, the retry policy, and the audit trail.
//
// An attempt (Deliverer.Attempt) builds no state of its own: it signs the
// job's payload with the subscription's live secrets, POSTs it with the
// subscription's custom headers within its timeout, follows no redirect, refuses internal addresses
// after name resolution (Guard), and returns a Result. A receiver's non-2xx
// answer or a network failure is data (Result.Reason, see Classify), never a
// Go error: Go errors mean our own fault, such as an audit record that could
// not be written.
//
// Policy decides what follows attempt n: Schedule (a list of delays, one
// retry each) or Exponential (doubling with a cap and jitter).
//
// Endpoints tracks each subscription's endpoint on this replica: a cap on
// attempts in flight and a circuit breaker, which hold jobs back without
// counting an attempt.
//
// Every attempt, and every verdict reached without one (rejected, paused,
// cancelled, requeued), is a Record. Recorder publishes it to the AUDIT
// stream, deduplicated by (delivery id, attempt); AUDIT is the durable
// record, and every replica's Indexer applies it to that replica's Store:
// deliveries by id in bbolt, composite time-ordered indexes (subscription
// and status, subscription, status, event type, event id, each by creation
// time) that List seeks over a time range, and per-subscription attempt
// counters (Health), all dropped after the retention. Records are
// idempotent and
// order-free: the status follows the newest record. They never copy the
// event data: a record after which a delivery leaves the queue unsent
// (failed, held) refers to its job, kept beside it in AUDIT, so it can be
// sent again (redeliver, replay, resume) with the same delivery id.
package delivery
