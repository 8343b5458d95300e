// Package admin serves webhookd's HTTP surface: the admin API under /v1
// (JSON, bearer token compared in constant time), the unauthenticated
// /healthz and /readyz, the OpenAPI description at /v1/openapi.json (no
// token; Server.Routes lists the routes it is checked against) and the web
// console under /ui/ (package console). Every replica serves it; writes go
// through the replicated subscription store and the JetStream streams, so
// any replica answers for all.
//
// Secrets appear only in the answers of create and rotate-secret; they are
// never logged (request logs carry method, path, status and duration only).
// Custom header values are never shown at all (RedactedValue). A ping
// (POST /v1/subscriptions/{id}/ping) makes one attempt itself, through the
// same Deliverer, and records it as a test (PingReason) without a kept job,
// so it is never retried, redelivered or replayed.
// Operator requeues (redeliver, replay, resume, and cancelling the held
// deliveries of a deleted subscription) are carried out by dispatcher.Queue,
// next to the workers: they keep the delivery id, publish the kept job again
// and then record the delivery as pending; attempt numbers continue. A
// replay runs in the answering replica's Queue, not in its request: POST
// /v1/deliveries/replay answers 202 with the replay's id and plan, and GET
// /v1/replays/{id} its progress, on that replica only ("any replica answers
// for all" does not hold for a replay's progress). A dry run answers at once.
package admin
