// Package history keeps the audit trail of deliveries and the index built
// from it.
//
// Every attempt, and every verdict reached without one (rejected, paused,
// cancelled, requeued), is a Record. Recorder writes records to the AUDIT
// stream in batches, one message per batch (format 2), or one per record
// (format 1) while an indexer of the previous release is registered; AUDIT
// is the durable record. Every replica's Indexer applies both formats to
// that replica's Store: deliveries by id in bbolt, three composite
// time-ordered indexes (subscription and status, status, event id, each by
// creation time) that List seeks over a time range, and per-subscription
// attempt counters (Health), all dropped after the retention. Records are
// idempotent and order-free: attempts merge by number, and the status
// follows the newest record, so a record written twice is applied once.
// They never copy the event data: a record after which a delivery leaves
// the queue unsent (failed, held) refers to its job, kept beside it in
// AUDIT as a message of its own, so it can be sent again (redeliver,
// replay, resume) with the same delivery id.
//
// docs/history.md describes the formats, the batching, the index layout and
// the upgrade path.
package history
