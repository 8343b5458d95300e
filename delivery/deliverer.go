package delivery

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robotlab/webhookd/internal/tracing"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

// Header names of the wire contract.
const (
	HeaderSignature         = "X-Webhook-Signature"
	HeaderEvent             = "X-Webhook-Event"
	HeaderSubscription      = "X-Webhook-ID"
	HeaderDelivery          = "X-Webhook-Delivery"
	HeaderAttempt           = "X-Webhook-Attempt"
	HeaderStandardID        = "webhook-id"
	HeaderStandardTimestamp = "webhook-timestamp"
	HeaderStandardSignature = "webhook-signature"
)

// ResponseKeep is how many bytes of a receiver's response body an attempt
// keeps (Result.Response) for the audit record.
const ResponseKeep = 1 << 10

const (
	responseDrain = 64 << 10 // bytes read to let the connection be reused
	// maxResponseHeader bounds a receiver's response headers.
	maxResponseHeader = 64 << 10
	// Retry-After is honoured within these bounds.
	minRetryAfter, maxRetryAfter = time.Second, time.Hour
)

// Result is what one attempt came to. A receiver's failure is data, not a Go
// error.
type Result struct {
	Outcome    Outcome
	Reason     string // see Classify
	StatusCode int    // 0 when no response arrived
	Start      time.Time
	Duration   time.Duration
	Response   []byte // first 1 KiB of the response body
	Err        error  // transport error, if any
	// RetryAfter is the receiver's Retry-After on a 429 or 503, clamped to
	// [1s, 1h]; zero when absent.
	RetryAfter time.Duration
}

// Config configures a Deliverer.
type Config struct {
	// DefaultTimeout applies to subscriptions without their own timeout.
	DefaultTimeout time.Duration
	// AllowTargets are prefixes exempt from the internal-address guard.
	AllowTargets []netip.Prefix
	// UserAgent is sent with every request.
	UserAgent string
	// Resolver resolves receivers' names; nil uses net.DefaultResolver.
	// The guard checks the addresses it returns.
	Resolver *net.Resolver
	// Tracer makes each attempt a span, child of the job's TraceParent,
	// and sends its context to the receiver (nil: tracing off).
	Tracer *tracing.Tracer
	// Exprs compiles subscriptions' transforms; the admin API and the
	// router share it (nil: the Deliverer makes its own on first use).
	Exprs *expr.Compiler
	// MaxBodyBytes bounds a transformed body: one larger fails its
	// delivery with ReasonTransform. Zero: 1 MiB (the default event size
	// limit); webhookd passes its event size limit.
	MaxBodyBytes int
}

// Deliverer makes single HTTP attempts. It is safe for concurrent use.
type Deliverer struct {
	cfg    Config
	client *http.Client
	now    func() time.Time
	exprs  func() (*expr.Compiler, error)
}

// NewDeliverer returns a Deliverer whose connections pass the outbound guard,
// use no proxy and follow no redirect.
func NewDeliverer(cfg Config) *Deliverer {
	if cfg.UserAgent == "" {
		cfg.UserAgent = "webhookd/1"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	exprs := sync.OnceValues(expr.NewCompiler)
	if c := cfg.Exprs; c != nil {
		exprs = func() (*expr.Compiler, error) { return c, nil }
	}
	guard := NewGuard(cfg.AllowTargets)
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: guard.Control, Resolver: cfg.Resolver}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would hide the real target from the guard
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: maxResponseHeader,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
	}
	return &Deliverer{
		cfg: cfg,
		client: &http.Client{
			Transport:     transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now:   time.Now,
		exprs: exprs,
	}
}

// Close releases idle connections.
func (d *Deliverer) Close() { d.client.CloseIdleConnections() }

// Attempt POSTs job's envelope (or, when sub has a transform, the object
// the transform gives) to sub as attempt job.Attempt, signed with sub's
// live secrets, with sub's custom headers, within sub's timeout (or the
// default), and classifies the result. A transform that fails calls no
// receiver: the result is a failure with ReasonTransform and CEL's message
// as Err.
func (d *Deliverer) Attempt(ctx context.Context, job Job, sub subscriptions.Subscription) Result {
	span := d.cfg.Tracer.Attempt(job.TraceParent, sub.ID, job.ID, job.Event, job.Attempt)
	start := d.now()
	res := d.attempt(ctx, job, sub, start, span)
	res.Start, res.Duration = start, d.now().Sub(start)
	span.EndAttempt(res.StatusCode, string(res.Outcome), res.Reason, res.Duration)
	return res
}

func (d *Deliverer) attempt(ctx context.Context, job Job, sub subscriptions.Subscription, start time.Time, span *tracing.Span) Result {
	timeout := sub.Timeout
	if timeout <= 0 {
		timeout = d.cfg.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	body := job.Envelope()
	if sub.Transform != "" {
		var err error
		if body, err = d.transform(job, sub.Transform); err != nil {
			return Result{Outcome: OutcomeFailed, Reason: ReasonTransform, Err: err}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Outcome: OutcomeFailed, Reason: ReasonBadRequest, Err: err}
	}
	if err := setHeaders(req.Header, job, sub, body, start); err != nil {
		return Result{Outcome: OutcomeFailed, Reason: ReasonBadRequest, Err: err}
	}
	req.Header.Set("User-Agent", d.cfg.UserAgent)
	span.Inject(req.Header)

	resp, err := d.client.Do(req)
	if err != nil {
		outcome, reason := Classify(0, err)
		return Result{Outcome: outcome, Reason: reason, Err: err}
	}
	defer resp.Body.Close()
	kept, _ := io.ReadAll(io.LimitReader(resp.Body, ResponseKeep))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, responseDrain))
	outcome, reason := Classify(resp.StatusCode, nil)
	res := Result{Outcome: outcome, Reason: reason, StatusCode: resp.StatusCode, Response: kept}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), d.now())
	}
	return res
}

// ParseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date,
// clamped to [1s, 1h]. It returns 0 for an empty or unreadable value.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	return min(max(d, minRetryAfter), maxRetryAfter)
}
