package main

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/robotlab/webhookd/admin/client"
)

// otlpReceiver is an OTLP/HTTP trace endpoint that decodes the protobuf
// requests webhookd's exporter sends and keeps their spans.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	names map[string]string // service.name of the spans' resources
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	o := &otlpReceiver{names: map[string]string{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.Error(w, "want POST /v1/traces", http.StatusNotFound)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					o.spans = append(o.spans, s)
					o.names[hex.EncodeToString(s.SpanId)] = service
				}
			}
		}
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	t.Cleanup(o.Close)
	return o
}

// attr returns a span attribute's value: a string, an int64 or a float64.
func attr(s *tracepb.Span, key string) any {
	for _, kv := range s.Attributes {
		if kv.Key != key {
			continue
		}
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return v.IntValue
		case *commonpb.AnyValue_DoubleValue:
			return v.DoubleValue
		}
		return kv.Value.String()
	}
	return nil
}

// One event published by a robot with a traceparent is traced: the route
// span continues the robot's trace, each attempt is the route's child with
// its status, attempt number and subscription, and the receiver gets the
// attempt's context in its own traceparent header. Spans are read back from
// a real OTLP endpoint after the daemon's shutdown flushed them.
func TestTraceOfOneEvent(t *testing.T) {
	otlp := newOTLPReceiver(t)
	d := start(t, "--otlp-endpoint", otlp.URL)
	failing := true
	var parents []string // the receiver's traceparent headers
	var mu sync.Mutex
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		parents = append(parents, r.Header.Get("traceparent"))
		if failing { // the first attempt fails: a retry on the job path
			failing = false
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, &sub))

	nc, err := nats.Connect(d.nats)
	require.NoError(t, err)
	defer nc.Close()
	const robotTrace, robotSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	m := nats.NewMsg("events.task.completed")
	m.Data = []byte(`{"task_id":"t-1"}`)
	m.Header.Set("traceparent", "00-"+robotTrace+"-"+robotSpan+"-01")
	js, err := nc.JetStream()
	require.NoError(t, err)
	_, err = js.PublishMsg(m)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		var list client.List[client.Delivery]
		d.call(t, "GET", "/v1/deliveries?subscription="+sub.ID+"&status=succeeded", d.token, "", &list)
		return len(list.Items) == 1
	}, 20*time.Second, 50*time.Millisecond)
	require.NoError(t, d.stop()) // flushes the spans

	otlp.mu.Lock()
	defer otlp.mu.Unlock()
	var route *tracepb.Span
	var attempts []*tracepb.Span
	for _, s := range otlp.spans {
		require.Equal(t, robotTrace, hex.EncodeToString(s.TraceId), "every span is in the robot's trace: %s", s.Name)
		switch s.Name {
		case "route task.completed":
			require.Nil(t, route, "one route span")
			route = s
		case "attempt task.completed":
			attempts = append(attempts, s)
		}
	}
	require.NotNil(t, route, "spans: %v", otlp.spans)
	require.Equal(t, robotSpan, hex.EncodeToString(route.ParentSpanId), "the route continues the robot's publish")
	require.Equal(t, tracepb.Span_SPAN_KIND_CONSUMER, route.Kind)
	require.Equal(t, "webhookd", otlp.names[hex.EncodeToString(route.SpanId)])
	require.Equal(t, "routed", attr(route, "webhookd.result"))

	require.Len(t, attempts, 2)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, parents, 2)
	for i, a := range attempts {
		require.Equal(t, hex.EncodeToString(route.SpanId), hex.EncodeToString(a.ParentSpanId), "attempt %d is the route's child", i)
		require.Equal(t, sub.ID, attr(a, "webhookd.subscription.id"))
		require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, a.Kind)
		n := attr(a, "webhookd.attempt").(int64)
		status := attr(a, "http.response.status_code").(int64)
		require.Equal(t, map[int64]int64{1: 500, 2: 204}[n], status, "attempt %d", n)
		require.NotNil(t, attr(a, "webhookd.duration_ms"))
		// The receiver's traceparent names this attempt's span.
		require.Contains(t, parents, "00-"+robotTrace+"-"+hex.EncodeToString(a.SpanId)+"-01")
	}
}

// Without --otlp-endpoint no traceparent goes to receivers.
func TestNoTracingByDefault(t *testing.T) {
	d := start(t)
	rcv, got := receiver(t)
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, nil))
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.completed","data":{}}`, nil))
	require.Empty(t, next(t, got).Header.Get("traceparent"))
	require.NotContains(t, d.logs.String(), "tracing each event")
}
