// Package endpoint admits delivery attempts to each subscription's endpoint
// on this replica.
//
// Endpoints tracks every endpoint: a cap on attempts in flight and a circuit
// breaker, which hold jobs back without counting an attempt. Acquire admits
// an attempt (a Slot) or says how long the job should wait; a job may
// instead wait in memory (Queued) for the slot an attempt frees, which that
// attempt's release hands over (Handoff). Slot.Done counts the attempt's
// delivery.Result and returns a Verdict: whether the subscription should be
// disabled, and its current run of failures. Nothing here is shared between
// replicas.
package endpoint
