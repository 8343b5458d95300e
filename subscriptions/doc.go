// Package subscriptions owns the Subscription model, its replicated store and
// the event-type → subscribers index the router asks.
//
// The record of truth is the JetStream KV bucket "subscriptions" (one key per
// subscription id, compare-and-set on update). Every replica mirrors the
// bucket into its bbolt file and an in-memory index: Store.Run watches the
// bucket and applies each change and the bucket revision in one bbolt
// transaction, so after a restart the mirror resumes from the last applied
// revision. Writes go to the bucket and return once this replica's mirror has
// applied them (read-your-writes); other replicas see them within the watch
// latency, milliseconds in practice.
//
// Secrets, and the values of a subscription's custom headers (static
// headers such as an API key, sent with every request), live only in the
// stored form (the bucket record and its mirror), never in Subscription's
// default JSON. With WithSecretKey they are sealed with AES-256-GCM, tagged
// with the key id and bound to the subscription id; plaintext records are
// still read and are sealed on their next write. A sealed secret without the
// right key fails Open or stops Run with ErrSecretKey, never silently.
//
// Endpoint health: the dispatcher calls Disable (410 Gone, failing too long)
// and SetFailingSince, both compare-and-set updates of the record; resuming
// (Subscription.Resume) clears what they set.
//
// A subscription may carry its own retry policy (RetryPolicy, read with
// Retry), which the dispatcher uses instead of its default for that
// subscription's deliveries.
//
// Match answers from memory, without I/O. Patterns follow NATS subject rules:
// "*" matches one dot-separated token and ">" one or more trailing tokens.
//
// Caveat: bbolt holds an exclusive lock on its file; the *bolt.DB is opened
// once per process by cmd/webhookd and shared with the delivery store.
package subscriptions
