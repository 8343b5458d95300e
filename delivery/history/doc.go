// Package history keeps the audit trail of deliveries and the index built
// from it.
//
// Every attempt, and every verdict reached without one (rejected, paused,
// cancelled, requeued), is a Record. Recorder publishes it to the AUDIT
// stream, deduplicated by (delivery id, attempt); AUDIT is the durable
// record, and every replica's Indexer applies it to that replica's Store:
// deliveries by id in bbolt, composite time-ordered indexes (subscription
// and status, subscription, status, event type, event id, each by creation
// time) that List seeks over a time range, and per-subscription attempt
// counters (Health), all dropped after the retention. Records are
// idempotent and order-free: the status follows the newest record. They
// never copy the event data: a record after which a delivery leaves the
// queue unsent (failed, held) refers to its job, kept beside it in AUDIT, so
// it can be sent again (redeliver, replay, resume) with the same delivery
// id.
package history
