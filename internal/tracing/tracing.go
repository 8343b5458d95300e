// Package tracing follows each event through webhookd with OpenTelemetry:
// a "route" span continues the trace of the message's traceparent header
// (the robot's publish), and each delivery attempt is an "attempt" span
// under it, whose context the POST carries on to the receiver. Spans leave
// through OTLP over HTTP (--otlp-endpoint, plus the SDK's OTEL_*
// environment variables).
//
// A nil *Tracer is tracing switched off: every method is a nil check and
// nothing else, so the pipeline pays nothing without --otlp-endpoint.
// Trace context travels as W3C traceparent strings, on the NATS messages of
// events and jobs, so a retry on another replica joins the same trace.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Header is the W3C trace-context header that carries a span's context on
// NATS messages and HTTP requests.
const Header = "traceparent"

// maxHeader bounds a traceparent read from a message: version 00 is 55
// bytes; later versions may append fields.
const maxHeader = 256

// Tracer makes webhookd's spans. Its methods are safe for concurrent use.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TraceContext
}

// New returns a Tracer that exports to the OTLP/HTTP endpoint (a URL such
// as http://collector:4318; the path /v1/traces is added when it has none)
// in batches. OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_* and
// the exporter's OTEL_EXPORTER_OTLP_* variables apply as usual. An empty
// endpoint returns nil: tracing off.
func New(ctx context.Context, endpoint, version string) (*Tracer, error) {
	if endpoint == "" {
		return nil, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--otlp-endpoint %q: want an http or https URL, such as http://127.0.0.1:4318", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName("webhookd"), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	// The environment (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) wins.
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracer{provider: tp, tracer: tp.Tracer("github.com/robotlab/webhookd")}, nil
}

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing shutdown: %w", err)
	}
	return nil
}

// Span is one span in progress; a nil *Span (tracing off) ignores every
// call.
type Span struct {
	span trace.Span
	ctx  context.Context
	t    *Tracer
}

// start begins a span named name under the context of parent (a
// traceparent; empty or malformed: a new trace).
func (t *Tracer) start(parent, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) *Span {
	ctx := context.Background()
	if parent != "" && len(parent) <= maxHeader {
		ctx = t.prop.Extract(ctx, propagation.MapCarrier{Header: parent})
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	return &Span{span: span, ctx: ctx, t: t}
}

// Publish begins the span of an event published through the admin API,
// continuing the HTTP request's own traceparent when it has one.
func (t *Tracer) Publish(httpParent, eventType, eventID string) *Span {
	if t == nil {
		return nil
	}
	return t.start(httpParent, "publish "+eventType, trace.SpanKindProducer,
		attribute.String("webhookd.event.type", eventType), attribute.String("webhookd.event.id", eventID))
}

// Route begins the span of routing one event, a child of the traceparent
// the event's message carries (the robot's publish).
func (t *Tracer) Route(parent, eventType, eventID string, delivered uint64) *Span {
	if t == nil {
		return nil
	}
	return t.start(parent, "route "+eventType, trace.SpanKindConsumer,
		attribute.String("webhookd.event.type", eventType), attribute.String("webhookd.event.id", eventID),
		attribute.Int64("webhookd.event.delivered", int64(delivered)))
}

// Attempt begins the span of one delivery attempt, a child of the route
// span whose traceparent the job carries.
func (t *Tracer) Attempt(parent, subscriptionID, deliveryID, eventType string, attempt int) *Span {
	if t == nil {
		return nil
	}
	return t.start(parent, "attempt "+eventType, trace.SpanKindClient,
		attribute.String("webhookd.subscription.id", subscriptionID), attribute.String("webhookd.delivery.id", deliveryID),
		attribute.String("webhookd.event.type", eventType), attribute.Int("webhookd.attempt", attempt))
}

// Traceparent returns the span's context as a traceparent, for the messages
// and requests its children start from ("" when off).
func (s *Span) Traceparent() string {
	if s == nil {
		return ""
	}
	c := propagation.MapCarrier{}
	s.t.prop.Inject(s.ctx, c)
	return c[Header]
}

// Inject adds the span's traceparent (and tracestate) to an HTTP request's
// headers.
func (s *Span) Inject(h http.Header) {
	if s == nil {
		return
	}
	s.t.prop.Inject(s.ctx, propagation.HeaderCarrier(h))
}

// Published ends a publish span with the id and stream sequence the event
// got.
func (s *Span) Published(eventID string, seq uint64) {
	if s == nil {
		return
	}
	s.span.SetAttributes(attribute.String("webhookd.event.id", eventID), attribute.Int64("webhookd.event.sequence", int64(seq)))
	s.span.End()
}

// Result records what became of the routed event ("routed",
// "no_subscriber", "rejected", "retry") and, for a rejection, why.
func (s *Span) Result(result, reason string) {
	if s == nil {
		return
	}
	s.span.SetAttributes(attribute.String("webhookd.result", result))
	if reason != "" {
		s.span.SetAttributes(attribute.String("webhookd.reason", reason))
	}
}

// End ends the span; a non-empty failure marks it as an error with that
// description.
func (s *Span) End(failure string) {
	if s == nil {
		return
	}
	if failure != "" {
		s.span.SetStatus(codes.Error, failure)
	}
	s.span.End()
}

// EndAttempt ends an attempt's span with its outcome: the HTTP status
// (0 when no response came), the outcome and reason, and the duration.
func (s *Span) EndAttempt(status int, outcome, reason string, d time.Duration) {
	if s == nil {
		return
	}
	attrs := []attribute.KeyValue{
		attribute.String("webhookd.outcome", outcome),
		attribute.Float64("webhookd.duration_ms", float64(d)/float64(time.Millisecond)),
	}
	if status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	if reason != "" {
		attrs = append(attrs, attribute.String("webhookd.reason", reason))
	}
	s.span.SetAttributes(attrs...)
	failure := ""
	if outcome != "succeeded" {
		failure = reason
		if failure == "" {
			failure = outcome
		}
	}
	s.End(failure)
}
