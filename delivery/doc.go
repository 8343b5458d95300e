// Package delivery owns one delivery attempt: the job and envelope, signing
// (subpackage signature), the outbound guard, result classification, the
// retry policy, and the delivery statuses the policy decides between.
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
// retry each) or Exponential (doubling with a cap and jitter). Its Decide
// maps a Result to the delivery's next Status.
//
// Two packages build on this one, and it imports neither: package endpoint
// admits attempts to each subscription's endpoint (a cap on attempts in
// flight and a circuit breaker), and package history keeps the audit trail
// of every attempt and verdict and the index of deliveries built from it.
package delivery
