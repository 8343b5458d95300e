package history_test

import (
	"context"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// registerOldIndexer creates the AUDIT consumer an indexer of the previous
// release creates for replica: no metadata, so it reads format 1 only.
func registerOldIndexer(tb testing.TB, ns *jstest.Server, replica string) {
	tb.Helper()
	_, err := ns.JS.CreateConsumer(context.Background(), jetstream.StreamAudit, natsjs.ConsumerConfig{
		Durable: "audit-" + replica, FilterSubject: jetstream.AuditRecords, AckPolicy: natsjs.AckExplicitPolicy,
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// waitFormat waits up to 10 s for rec to write format.
func waitFormat(tb testing.TB, rec *history.Recorder, format int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for rec.Format() != format {
		if time.Now().After(deadline) {
			tb.Fatalf("the recorder writes format %d, not %d", rec.Format(), format)
		}
		time.Sleep(5 * time.Millisecond) // the recorder's own ticker sets it
	}
}

// runRecorder runs rec until the test ends.
func runRecorder(t *testing.T, rec *history.Recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
}
