// Package receiver is the Go library for endpoints that receive webhookd's
// deliveries: an http.Handler middleware that verifies each delivery's
// signature, answers 401 when it does not verify, and hands the decoded
// event to the next handler (EventFrom).
//
// Every delivery carries two signatures (see delivery/signature):
//
//   - Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature,
//     an HMAC of "id.timestamp.body". It signs the attempt's time, so a
//     captured request cannot be replayed once outside the tolerance (5
//     minutes by default).
//   - X-Webhook-Signature: the hex HMAC of the body alone. It signs no time.
//
// By default (SchemeEither) the Standard Webhooks headers are checked when
// present, else X-Webhook-Signature. Since both are always sent, a request
// without webhook-signature did not come from webhookd unaltered; choose
// SchemeStandard to refuse it, and so refuse replays.
//
// During a secret rotation's grace period webhookd signs with every live
// secret; Config.Secrets may likewise list several, and a delivery verifies
// when any matches. Comparisons are constant-time.
//
// Errors say which check failed: ErrMissingHeader, ErrTimestamp,
// ErrSignature (each answered 401), ErrBody (400, or 413 when too large).
// They never contain a secret or a signature. Deliveries are at least once:
// dedupe on Event.DeliveryID.
package receiver
