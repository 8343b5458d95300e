package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strconv"
	"syscall"
)

// Outcome says whether an attempt succeeded.
type Outcome string

// Attempt outcomes.
const (
	OutcomeSucceeded Outcome = "succeeded"
	OutcomeFailed    Outcome = "failed"
)

// Reasons an attempt ends with, besides "http_<code>" for a non-2xx status.
const (
	ReasonSucceeded         = "succeeded"
	ReasonTimeout           = "timeout"
	ReasonConnectionRefused = "connection_refused"
	ReasonDNS               = "dns_error"
	ReasonTLS               = "tls_error"
	ReasonBlockedTarget     = "blocked_target"
	ReasonConnection        = "connection_error"
	ReasonCancelled         = "cancelled"
	ReasonBadRequest        = "bad_request" // we could not build the request
	// ReasonTransform: the subscription's transform failed for this event
	// (or gave a body over the size limit); no request was sent. The
	// delivery fails at once: the same event and expression fail again.
	ReasonTransform = "transform_error"
)

// Classify maps an HTTP status code (when err is nil) or a transport error to
// an outcome and a reason from the closed set above. Any 2xx succeeds.
func Classify(status int, err error) (Outcome, string) {
	if err == nil {
		if status >= 200 && status <= 299 {
			return OutcomeSucceeded, ReasonSucceeded
		}
		return OutcomeFailed, "http_" + strconv.Itoa(status)
	}
	var (
		dnsErr     *net.DNSError
		netErr     net.Error
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
	)
	switch {
	case errors.Is(err, ErrBlockedTarget):
		return OutcomeFailed, ReasonBlockedTarget
	case errors.Is(err, context.Canceled):
		return OutcomeFailed, ReasonCancelled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return OutcomeFailed, ReasonTimeout
	case errors.As(err, &dnsErr):
		return OutcomeFailed, ReasonDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return OutcomeFailed, ReasonConnectionRefused
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr),
		errors.As(err, &invalidErr), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return OutcomeFailed, ReasonTLS
	default:
		return OutcomeFailed, ReasonConnection
	}
}
