package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/robotlab/webhookd/internal/daemontest"
)

// webhookdBin is the real webhookd, built once for these tests.
var webhookdBin string

func TestMain(m *testing.M) {
	daemontest.Main(m, &webhookdBin,
		// The net/http transport's idle connections close asynchronously.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// TestSmoke runs a tiny benchmark against the real webhookd, started as a
// child process, and checks that the report's numbers are sane: every
// event delivered to every receiver with valid signatures, latencies
// ordered, CPU and RSS read, the raw rate measured, the files written. It
// asserts no timing.
func TestSmoke(t *testing.T) {
	t.Parallel()
	bin := webhookdBin
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var report strings.Builder
	res, err := run(ctx, []string{"--webhookd", bin, "--count", "300", "--fanout", "2", "--raw", "200ms",
		"--conns", "4", "--size", "256", "--drain-timeout", "20s", "--out", out, "--quiet", "--webhookd-args", "--workers 8",
		"--filter", "has(data.seq) && data.seq >= 0", "--ordering-key", "string(int(data.seq) % 10)"}, &report, io.Discard)
	require.NoError(t, err)
	t.Log(report.String())

	require.EqualValues(t, 300, res.Published)
	require.Zero(t, res.PublishErrors)
	require.EqualValues(t, 600, res.Expected)
	require.EqualValues(t, 600, res.Delivered, "every event reached both receivers, through their filters and ordering keys")
	require.Zero(t, res.BadSignatures, "both signatures verified on every request")
	require.Zero(t, res.Unreadable)
	require.Positive(t, res.DeliveriesPerSec)
	require.Positive(t, res.PublishedPerSec)
	require.Positive(t, res.P50ms)
	require.LessOrEqual(t, res.P50ms, res.P90ms)
	require.LessOrEqual(t, res.P90ms, res.P99ms)
	require.LessOrEqual(t, res.P99ms, res.Maxms)
	require.Positive(t, res.CPUSeconds, "webhookd's CPU time read from /proc")
	require.Positive(t, res.IdleRSSMiB)
	require.GreaterOrEqual(t, res.PeakRSSMiB, res.IdleRSSMiB)
	require.Positive(t, res.RawPerSec)
	require.InDelta(t, 100*res.DeliveriesPerSec/res.RawPerSec, res.RawShare, 1e-9)
	require.NotEmpty(t, res.Series)
	sum := 0
	for _, p := range res.Series {
		sum += p.Delivered
	}
	require.Equal(t, 600, sum, "the series accounts for every delivery")

	b, err := os.ReadFile(res.JSONFile)
	require.NoError(t, err)
	require.Contains(t, string(b), `"delivered": 600`)
	svg, err := os.ReadFile(res.SVGFile)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(svg), "<svg"))
	require.Contains(t, string(svg), "polyline")
	require.Contains(t, report.String(), "% of the raw loopback HTTP rate")
}

// TestBacklogDrain queues events while webhookd is down (NATS runs in the
// tool), starts it again and measures the drain: every event is delivered
// once, after the restart, and the rate is the drain's.
func TestBacklogDrain(t *testing.T) {
	t.Parallel()
	bin := webhookdBin
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var report strings.Builder
	res, err := run(ctx, []string{"--webhookd", bin, "--backlog", "--count", "500", "--raw", "0", "--size", "256",
		"--drain-timeout", "30s", "--out", t.TempDir(), "--quiet", "--webhookd-args", "--workers 8 --log-level info"}, &report, io.Discard)
	require.NoError(t, err)
	t.Log(report.String())
	require.EqualValues(t, 500, res.Delivered)
	require.Zero(t, res.Duplicates)
	require.Zero(t, res.BadSignatures)
	require.Contains(t, res.RateBasis, "restart")
	require.Positive(t, res.DeliveriesPerSec)
	require.Positive(t, res.CPUSeconds, "the restarted webhookd's CPU time")
	require.Contains(t, report.String(), "NATS ran in this tool")
	log, err := os.ReadFile(res.LogFile)
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(log), `"message":"webhookd stopped"`), "stopped to queue, and at the end")
}

// TestFloor runs the floor pipeline in place of webhookd: every event
// reaches both receivers once, both signatures verified, and the figures
// are labelled as the tool's own.
func TestFloor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var report strings.Builder
	res, err := run(ctx, []string{"--floor", "--count", "300", "--fanout", "2", "--raw", "0", "--conns", "8", "--size", "256",
		"--drain-timeout", "20s", "--out", t.TempDir(), "--quiet"}, &report, io.Discard)
	require.NoError(t, err)
	t.Log(report.String())
	require.True(t, res.Floor)
	require.EqualValues(t, 600, res.Delivered, "every event reached both receivers")
	require.Zero(t, res.Duplicates)
	require.Zero(t, res.BadSignatures, "both signatures verified on every request")
	require.Positive(t, res.CPUSeconds, "the tool's CPU time")
	require.Contains(t, report.String(), "floor, tool")
	require.Contains(t, res.JSONFile, "-floor.json")
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--fanout", "0"}, {"--rate", "-1"}, {"--backlog"}, {"--size", "10"},
		{"--attach", "http://127.0.0.1:1"}, {"--pid", "1"}, {"extra"}, {"--duration", "0s"},
		{"--backlog", "--count", "1", "--attach", "http://127.0.0.1:1", "--token", "t", "--nats", "nats://127.0.0.1:1"},
		{"--floor", "--filter", "true"},
	} {
		_, err := run(context.Background(), append(args, "--webhookd", "/nonexistent"), io.Discard, io.Discard)
		require.Error(t, err, args)
		require.NotContains(t, err.Error(), "\n", "one line")
	}
	for _, args := range [][]string{
		{"--floor", "--backlog", "--count", "1"}, {"--floor", "--webhookd-args", "--workers 8"},
		{"--floor", "--attach", "http://127.0.0.1:1", "--token", "t", "--nats", "nats://127.0.0.1:1"},
	} {
		_, err := run(context.Background(), args, io.Discard, io.Discard)
		require.ErrorIs(t, err, errFloorOptions, args)
	}
}
