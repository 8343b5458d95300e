package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/delivery/signature"
)

// maxRequestRead bounds what verify reads from stdin.
const maxRequestRead = 64 << 20

// schemeResult is whether one signature scheme verified.
type schemeResult struct {
	Header   string `json:"header"`
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
}

// verifyResult is verify's answer with -o json.
type verifyResult struct {
	Verified bool           `json:"verified"`
	Schemes  []schemeResult `json:"schemes"`
}

func (a *app) verifyCommand() *cobra.Command {
	var secret string
	var tolerance time.Duration
	cmd := &cobra.Command{
		Use:   "verify --secret SECRET [--tolerance 5m] < REQUEST",
		Short: "Check the signatures of a captured delivery read from stdin",
		Long: `verify reads one captured delivery from stdin, either the raw HTTP/1.1
request (as httputil.DumpRequest or a proxy writes it) or its headers, a
blank line and the body, and checks both signatures webhookd sends with
the subscription's secret: X-Webhook-Signature and the Standard Webhooks
webhook-signature (whose webhook-timestamp must be within --tolerance of
now; 0 accepts any age, for old captures). It prints which verified and
exits 1 when none did. The body is taken by Content-Length when the
headers give one, else it is the rest of the input exactly.

The secret may come from $WEBHOOK_SECRET instead of --secret, which keeps
it out of the shell history and process listings.`,
		Example: `  webhookctl verify --secret "$SECRET" < captured.http
  WEBHOOK_SECRET=whsec_... webhookctl verify --tolerance 0 < old-capture.http`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			if secret == "" {
				secret = a.getenv("WEBHOOK_SECRET")
			}
			if secret == "" {
				return errors.New("no secret: pass --secret or set WEBHOOK_SECRET")
			}
			if tolerance < 0 {
				return fmt.Errorf("--tolerance %s: want 0 (any age) or more", tolerance)
			}
			if tolerance == 0 {
				tolerance = math.MaxInt64
			}
			raw, err := io.ReadAll(io.LimitReader(a.stdin, maxRequestRead+1))
			if err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
			if len(raw) > maxRequestRead {
				return fmt.Errorf("stdin: larger than %d MiB", maxRequestRead>>20)
			}
			header, body, err := parseCaptured(raw)
			if err != nil {
				return err
			}
			res := verifyCaptured(secret, header, body, time.Now(), tolerance)
			if err := a.print(res, func(w *tabwriter.Writer) {
				row(w, "HEADER", "VERIFIED", "ERROR")
				for _, s := range res.Schemes {
					row(w, s.Header, yesNo(s.Verified), orDash(s.Error))
				}
			}); err != nil {
				return err
			}
			if !res.Verified {
				return errors.New("no signature verified with this secret")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&secret, "secret", "", "the subscription's secret, whsec_... (env WEBHOOK_SECRET)")
	cmd.Flags().DurationVar(&tolerance, "tolerance", 5*time.Minute, "how far webhook-timestamp may be from now; 0: any age")
	return cmd
}

// verifyCaptured checks both schemes' headers against body.
func verifyCaptured(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) verifyResult {
	var res verifyResult
	seed := schemeResult{Header: "X-Webhook-Signature"}
	switch v := h.Get("X-Webhook-Signature"); {
	case v == "":
		seed.Error = "header missing"
	case signature.Verify(secret, body, v):
		seed.Verified = true
	default:
		seed.Error = "no value matches this secret and body"
	}
	std := schemeResult{Header: "webhook-signature"}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		std.Error = "webhook-id, webhook-timestamp or webhook-signature missing"
	} else if err := signature.VerifyStandard(secret, id, ts, sigs, body, now, tolerance); err != nil {
		std.Error = strings.TrimPrefix(err.Error(), "signature: ")
	} else {
		std.Verified = true
	}
	res.Schemes = []schemeResult{seed, std}
	res.Verified = seed.Verified || std.Verified
	return res
}

// parseCaptured splits a captured request into its headers and body: an
// optional request line, the header lines, a blank line, then the body
// (by Content-Length or chunked encoding when the headers say so, else
// the rest exactly).
func parseCaptured(raw []byte) (http.Header, []byte, error) {
	head, rest, ok := cutHead(raw)
	if !ok {
		return nil, nil, errors.New("stdin: no blank line after the headers (want a raw HTTP request, or headers, a blank line and the body)")
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	if first, _, _ := bytes.Cut(head, []byte("\n")); isRequestLine(string(first)) {
		if _, err := r.ReadLine(); err != nil {
			return nil, nil, fmt.Errorf("stdin: request line: %w", err)
		}
	}
	mh, err := r.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("stdin: headers: %w", err)
	}
	h := http.Header(mh)
	switch {
	case strings.EqualFold(h.Get("Transfer-Encoding"), "chunked"):
		body, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(rest)))
		if err != nil {
			return nil, nil, fmt.Errorf("stdin: chunked body: %w", err)
		}
		return h, body, nil
	case h.Get("Content-Length") != "":
		n, err := strconv.Atoi(h.Get("Content-Length"))
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("stdin: Content-Length %q: not a length", h.Get("Content-Length"))
		}
		if n > len(rest) {
			return nil, nil, fmt.Errorf("stdin: body is %d bytes, shorter than its Content-Length %d", len(rest), n)
		}
		return h, rest[:n], nil
	}
	return h, rest, nil
}

// cutHead splits raw at the first blank line (CRLF or LF line ends); head
// keeps its last line end.
func cutHead(raw []byte) (head, rest []byte, ok bool) {
	crlf, lf := bytes.Index(raw, []byte("\r\n\r\n")), bytes.Index(raw, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf < lf):
		return raw[:crlf+2], raw[crlf+4:], true
	case lf >= 0:
		return raw[:lf+1], raw[lf+2:], true
	}
	return nil, nil, false
}

// isRequestLine reports whether line looks like "POST /hook HTTP/1.1".
func isRequestLine(line string) bool {
	f := strings.Fields(line)
	return len(f) == 3 && strings.HasPrefix(f[2], "HTTP/") && !strings.HasSuffix(f[0], ":")
}
