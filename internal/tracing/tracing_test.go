package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/internal/tracing"
)

func TestNewRefusesABadEndpoint(t *testing.T) {
	for _, e := range []string{"collector:4318", "ftp://x", "http://", "://"} {
		_, err := tracing.New(context.Background(), e, "test")
		require.ErrorContains(t, err, "--otlp-endpoint", e)
	}
	tr, err := tracing.New(context.Background(), "", "test")
	require.NoError(t, err)
	require.Nil(t, tr, "no endpoint: off")
}

// A nil Tracer and its nil spans do nothing, and pass no context on.
func TestOffIsANoOp(t *testing.T) {
	var tr *tracing.Tracer
	s := tr.Route("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "task.completed", "e1", 1)
	require.Empty(t, s.Traceparent())
	h := http.Header{}
	s.Inject(h)
	require.Empty(t, h)
	s.Result("routed", "")
	s.End("")
	require.NoError(t, tr.Shutdown(context.Background()))
}

// BenchmarkSpans measures what tracing costs the pipeline per delivery: a
// route span, an attempt span under it, and the header the POST carries.
// "off" is the default (no --otlp-endpoint).
func BenchmarkSpans(b *testing.B) {
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer otlp.Close()
	on, err := tracing.New(context.Background(), otlp.URL, "bench")
	require.NoError(b, err)
	defer func() { _ = on.Shutdown(context.Background()) }()
	for _, c := range []struct {
		name string
		tr   *tracing.Tracer
	}{{"off", nil}, {"on", on}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			h := http.Header{}
			for b.Loop() {
				route := c.tr.Route("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "task.completed", "e1", 1)
				a := c.tr.Attempt(route.Traceparent(), "sub", "del", "task.completed", 1)
				a.Inject(h)
				a.EndAttempt(200, "succeeded", "", time.Millisecond)
				route.Result("routed", "")
				route.End("")
			}
		})
	}
}
