// Package metrics exposes webhookd's Prometheus metrics on /metrics.
//
// Each process builds its own registry (New): no collector is registered
// with the client library's global default registry, so two webhookd
// instances in one process (as in the tests) never share a series. The
// registry also holds the Go runtime and process collectors.
//
// # What is counted, and where
//
// The dispatcher calls the hooks of its Observer (Metrics implements it)
// at the moment a fact becomes durable: an event is routed, acked without a
// subscriber or recorded as rejected; an attempt's audit record is written;
// a delivery settles with a final status. An attempt whose record turns out
// to be a duplicate (a re-run after a crash) is not counted again, so on one
// replica the counters agree with the audit trail exactly. With several
// replicas each counts what it did: sum over replicas.
//
// The names are a contract: the dashboard and the alert rules in deploy/
// depend on them, and deploy's tests check each name they use against a
// running webhookd.
//
//   - webhookd_events_total{event_type, result}: result is routed,
//     no_subscriber or rejected; event_type is a catalog type, or "unknown";
//   - webhookd_attempts_total{subscription, outcome}: outcome is succeeded
//     or a failure from the closed set Outcomes returns;
//   - webhookd_deliveries_finished_total{subscription, status}: succeeded,
//     failed, cancelled, paused (held for a paused or disabled
//     subscription) or rejected (an event refused before routing: it has no
//     subscription, so its subscription label is empty);
//   - webhookd_attempt_duration_seconds{subscription}: a histogram;
//   - webhookd_filter_errors_total{subscription}: events on which the
//     subscription's filter failed, each counted as no match;
//   - webhookd_consumer_pending{consumer} and
//     webhookd_consumer_ack_pending{consumer}: the router's and the workers'
//     messages not yet delivered, and delivered but not yet settled (retries
//     waiting for their time and jobs held back by a busy endpoint included);
//   - webhookd_oldest_pending_seconds: how long the oldest event or job not
//     yet handed to a router or worker has waited (0 when none waits);
//   - webhookd_circuit_breaker_state{subscription}: 0 closed, 1 half-open,
//     2 open, as this replica sees the endpoint;
//   - webhookd_subscription_disabled{subscription}: 1 while the dispatcher
//     holds the subscription disabled (a 410 Gone, or failing for
//     --disable-after), 0 otherwise (a pause by an operator included);
//   - webhookd_ready: 1 while the replica is ready (what /readyz answers
//     200 for), else 0;
//   - webhookd_store_writable: 1 while the embedded NATS store accepts
//     writes, 0 while it refuses new events (its disk below
//     --store-min-free, or a stream that failed a write) until space
//     returns; absent with an external NATS;
//   - webhookd_ordered_keys_waiting{subscription}: keys of an ordered
//     subscription with deliveries waiting on this replica (0 for an
//     ordered subscription none of whose keys waits here);
//   - webhookd_ordering_key_errors_total{subscription}: events whose
//     ordering key failed, delivered unordered;
//   - webhookd_build_info{version, revision}: always 1.
//
// Label values are bounded: event types only from the catalog, subscription
// ids (never URLs or event ids), outcomes and statuses from closed sets. The
// series of a deleted subscription are removed at the next scrape.
//
// # Cost
//
// The hooks run on the workers' hot path. Their series are resolved once per
// event type (at New) and once per subscription and outcome (on first use),
// then held in a lock-free map: a hook is a map load and an atomic add. The
// JetStream state (consumer info, the oldest waiting message) is read on
// scrape, at most once a second whatever the number of scrapers, with a
// timeout: a consumer info per stage, and one message read per stage with
// a backlog. The readiness check is asked as often.
package metrics
