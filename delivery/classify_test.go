package delivery_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return &url.Error{Op: "Post", URL: "http://x", Err: err} }
	tests := []struct {
		name    string
		status  int
		err     error
		outcome delivery.Outcome
		reason  string
	}{
		{"200", 200, nil, delivery.OutcomeSucceeded, "succeeded"},
		{"204", 204, nil, delivery.OutcomeSucceeded, "succeeded"},
		{"299", 299, nil, delivery.OutcomeSucceeded, "succeeded"},
		{"301 not followed", 301, nil, delivery.OutcomeFailed, "http_301"},
		{"404", 404, nil, delivery.OutcomeFailed, "http_404"},
		{"503", 503, nil, delivery.OutcomeFailed, "http_503"},
		{"timeout", 0, wrap(context.DeadlineExceeded), delivery.OutcomeFailed, "timeout"},
		{"net timeout", 0, wrap(&net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}), delivery.OutcomeFailed, "timeout"},
		{"cancelled", 0, wrap(context.Canceled), delivery.OutcomeFailed, "cancelled"},
		{"refused", 0, wrap(&net.OpError{Op: "dial", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}), delivery.OutcomeFailed, "connection_refused"},
		{"dns", 0, wrap(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}}), delivery.OutcomeFailed, "dns_error"},
		{"unknown ca", 0, wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), delivery.OutcomeFailed, "tls_error"},
		{"hostname", 0, wrap(x509.HostnameError{Host: "x"}), delivery.OutcomeFailed, "tls_error"},
		{"tls record", 0, wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), delivery.OutcomeFailed, "tls_error"},
		{"blocked", 0, wrap(&net.OpError{Op: "dial", Err: fmt.Errorf("%w: 10.0.0.1", delivery.ErrBlockedTarget)}), delivery.OutcomeFailed, "blocked_target"},
		{"reset", 0, wrap(&net.OpError{Op: "read", Err: syscall.ECONNRESET}), delivery.OutcomeFailed, "connection_error"},
		{"other", 0, errors.New("boom"), delivery.OutcomeFailed, "connection_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			outcome, reason := delivery.Classify(tt.status, tt.err)
			require.Equal(t, tt.outcome, outcome)
			require.Equal(t, tt.reason, reason)
		})
	}
}

func TestGuard(t *testing.T) {
	t.Parallel()
	g := delivery.NewGuard(nil)
	blocked := []string{"127.0.0.1", "127.1.2.3", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
		"fe80::1", "fc00::1", "224.0.0.1", "ff02::1", "0.0.0.0", "0.1.2.3", "::", "::ffff:127.0.0.1", "::ffff:169.254.169.254"}
	for _, ip := range blocked {
		require.False(t, g.Allowed(netip.MustParseAddr(ip)), ip)
		require.ErrorIs(t, g.Control("tcp", netip.AddrPortFrom(netip.MustParseAddr(ip), 80).String(), nil), delivery.ErrBlockedTarget, ip)
	}
	for _, ip := range []string{"93.184.216.34", "8.8.8.8", "2606:4700::1111"} {
		require.True(t, g.Allowed(netip.MustParseAddr(ip)), ip)
		require.NoError(t, g.Control("tcp", netip.AddrPortFrom(netip.MustParseAddr(ip), 443).String(), nil), ip)
	}
	allow := delivery.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	require.True(t, allow.Allowed(netip.MustParseAddr("127.0.0.1")))
	require.True(t, allow.Allowed(netip.MustParseAddr("::ffff:127.0.0.1")))
	require.False(t, allow.Allowed(netip.MustParseAddr("10.0.0.1")), "only the allowed prefix passes")
}
