package dispatcher

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// The funnel is the only caller of the settle methods in the dispatcher's
// code (tests aside): every ack, nak, term and in-progress goes through it.
func TestFunnelIsTheOnlySettler(t *testing.T) {
	settles := regexp.MustCompile(`\.(Ack|Nak|NakWithDelay|Term|TermWithReason|InProgress|DoubleAck)\(`)
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "funnel.go" {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, line := range strings.Split(string(b), "\n") {
			require.False(t, settles.MatchString(line), "%s:%d settles outside the funnel: %s", f, i+1, strings.TrimSpace(line))
		}
	}
}

// A settle that fails is logged once, with the message's identity, and
// counted; one that succeeds logs nothing.
func TestFunnelLogsAFailedSettleOnce(t *testing.T) {
	ns := jstest.RunProvisioned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		_, err := ns.JS.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`))
		require.NoError(t, err)
	}
	cons, err := ns.JS.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
	require.NoError(t, err)
	batch, err := cons.Fetch(2, natsjs.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	first, second := <-batch.Messages(), <-batch.Messages()
	require.NotNil(t, second)

	var buf bytes.Buffer
	f := &funnel{log: zerolog.New(&buf)}
	f.ack(first)
	require.Empty(t, buf.String(), "a successful ack logs nothing")
	require.Zero(t, f.failed.Load())

	ns.NC.Close() // the connection is gone: the next settle cannot be sent
	f.nak(second, time.Second)
	require.EqualValues(t, 1, f.failed.Load())
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 1, "one line per failed settle")
	require.Contains(t, lines[0], `"settle":"nak"`)
	require.Contains(t, lines[0], `"stream":"EVENTS"`)
	require.Contains(t, lines[0], `"level":"warn"`)
	require.Contains(t, lines[0], `"stream_seq":2`)
	require.Contains(t, lines[0], nats.ErrConnectionClosed.Error())
}
