// Package jetstream opens webhookd's NATS connection (to an embedded server or
// an external cluster) and provisions the streams, consumers and KV bucket the
// dispatcher uses. It does not wrap nats.go's jetstream types: other packages
// use them directly (imported as natsjs).
//
// Streams (file storage):
//
//   - EVENTS (events.>, Limits retention, Discard New): what robots publish;
//     consumer "router". Purger removes an event once the router's ack
//     floor has passed it and its --event-retention is over, so the stream
//     is also the message log; an unrouted event is never removed, and a
//     full EVENTS refuses new events. An older work-queue EVENTS is moved
//     over at start by Provision (see migrate.go).
//   - DELIVERIES (deliveries.>, work queue): one job per attempt to make;
//     consumer "workers". A settled job leaves the stream.
//   - AUDIT (audit.>, Limits): one record per attempt or verdict, kept for the
//     history retention; each replica indexes it through its own consumer.
//
// An event published without a Nats-Msg-Id takes its id from its sequence
// and EventSalt, EVENTS's creation time, so ids differ between installs.
//
// Provision is idempotent and updates changed configuration, so replicas may
// run it concurrently at start-up. Provisioning.Replicas (--stream-replicas)
// sets the copies of every stream and of the bucket; the consumers inherit
// their stream's. Raising it scales the existing streams in place; the
// server moves the consumers some seconds after their stream. A stream
// already configured as wanted is left alone, because updating a stream
// that is still being scaled waits on the cluster for seconds.
//
// External connections (Options.URL, one URL per cluster node) authenticate
// with one of Client's credentials and may use TLS; Client reads its files
// before connecting, so a bad file is a configuration error, not
// ErrUnavailable. The client reconnects forever with a jittered exponential
// delay (250ms doubling to 5s) and logs each disconnect at warn and each
// reconnect at info. Open fails with ErrUnavailable when no server answers
// at start: a supervisor restarts the process. Conn.Check tells /readyz
// whether the connection is up and the streams and consumers answer.
//
// The embedded server's store is watched by a StoreGuard (Conn.StoreGuard):
// when its filesystem runs low or a stream fails a write (a full disk), new
// writes are refused at once and /readyz says why; when space returns the
// refusal is lifted, and a stream nats-server stopped is read back from disk
// without a restart.
//
// Tests use jstest: RunServer and RunRestartable for one server, Cluster for
// a real multi-node cluster of nats-server processes that a test can
// SIGKILL (the test package's TestMain calls jstest.RunNodeIfChild).
package jetstream
