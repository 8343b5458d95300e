package jetstream_test

import (
	"context"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// BenchmarkPublishStoreSync measures what --store-sync costs: a robot
// publishes 1 KiB events with PublishAsync to the embedded server's file
// store (EVENTS) and waits for every ack. Compare msgs/s across settings;
// run with -benchtime 20000x, as a time-based run of "always" spends most
// of its budget on fsync.
func BenchmarkPublishStoreSync(b *testing.B) {
	for _, bc := range []struct {
		name string
		o    jetstream.Options
	}{
		{"always", jetstream.Options{SyncAlways: true}},
		{"1s", jetstream.Options{SyncInterval: time.Second}},
		{"2m", jetstream.Options{SyncInterval: 2 * time.Minute}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.o.StoreDir, bc.o.Listen = b.TempDir(), "127.0.0.1:-1"
			conn, err := jetstream.Open(context.Background(), bc.o, zerolog.Nop())
			require.NoError(b, err)
			b.Cleanup(conn.Close)
			require.NoError(b, jetstream.Provision(context.Background(), conn.JS, jstest.Provisioning()))
			r := connectRobot(b, conn.ClientURL())
			payload := make([]byte, 1024)
			subject := jetstream.EventSubject("task.completed")
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for range b.N {
				// Waits while 4000 acks are outstanding (the default window).
				_, err := r.js.PublishAsync(subject, payload, natsjs.WithStallWait(time.Minute))
				require.NoError(b, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			select {
			case <-r.js.PublishAsyncComplete():
			case <-ctx.Done():
				b.Fatal("acks did not arrive")
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
