package subscriptions

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/robotlab/webhookd/config"
)

// Limits of a subscription's custom headers.
const (
	// MaxHeaders bounds the number of custom headers.
	MaxHeaders = 20
	// MaxHeaderValueBytes bounds one custom header's value.
	MaxHeaderValueBytes = 1024
	// MaxHeadersBytes bounds the custom headers' names and values together.
	MaxHeadersBytes = 8 << 10
)

// Header is a static header sent with every request to the subscription's
// endpoint, e.g. an API key the receiver expects. Its value is secret-like:
// it never appears in the default JSON form, and the store seals it like a
// signing secret when a key is configured.
type Header struct {
	Name  string // canonical form (http.CanonicalHeaderKey)
	Value string
}

// forbiddenHeaders are the names a custom header may not take: hop-by-hop
// headers, the ones net/http or the body determine, and our own.
var forbiddenHeaders = map[string]string{
	"Connection": "hop-by-hop", "Keep-Alive": "hop-by-hop", "Proxy-Authenticate": "hop-by-hop",
	"Proxy-Authorization": "hop-by-hop", "Proxy-Connection": "hop-by-hop", "Te": "hop-by-hop",
	"Trailer": "hop-by-hop", "Transfer-Encoding": "hop-by-hop", "Upgrade": "hop-by-hop",
	"Host": "set from the URL", "Content-Length": "set from the body", "Content-Type": "always application/json",
	"Content-Encoding": "the body is not encoded", "Expect": "set by the HTTP client",
}

// ValidateHeader checks one custom header: a valid field name (an RFC 9110
// token) that is not hop-by-hop, not Host, Content-Length, Content-Type or
// one of ours (X-Webhook-*, Webhook-*), and a value of visible ASCII,
// spaces and tabs, without leading or trailing white space, at most
// MaxHeaderValueBytes. Its errors wrap ErrInvalid and never repeat the value.
func ValidateHeader(name, value string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: headers: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if name == "" || len(name) > 256 || strings.IndexFunc(name, func(c rune) bool { return !isTokenChar(c) }) >= 0 {
		return bad("name %q: want a header field name (letters, digits and !#$%%&'*+-.^_`|~)", truncateName(name))
	}
	canon := http.CanonicalHeaderKey(name)
	if why, ok := forbiddenHeaders[canon]; ok {
		return bad("%s may not be set (%s)", canon, why)
	}
	if l := strings.ToLower(canon); strings.HasPrefix(l, "x-webhook-") || strings.HasPrefix(l, "webhook-") {
		return bad("%s may not be set: X-Webhook-* and webhook-* are the signature and delivery headers", canon)
	}
	if len(value) > MaxHeaderValueBytes {
		return bad("%s: value of %d bytes: want at most %d", canon, len(value), MaxHeaderValueBytes)
	}
	if value == "" || strings.TrimSpace(value) != value {
		return bad("%s: want a non-empty value without leading or trailing white space", canon)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c != '\t' && (c < ' ' || c > '~') {
			return bad("%s: value has a control or non-ASCII byte at %d", canon, i)
		}
	}
	return nil
}

func isTokenChar(c rune) bool {
	return c < 0x7f && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", c))
}

func truncateName(s string) string {
	if len(s) > 40 {
		return strings.ToValidUTF8(s[:40], "") + "…"
	}
	return s
}

// validateHeaders checks every header, that no name repeats and that the
// whole stays within MaxHeaders and MaxHeadersBytes.
func validateHeaders(hs []Header) error {
	if len(hs) > MaxHeaders {
		return fmt.Errorf("%w: headers: %d: want at most %d", ErrInvalid, len(hs), MaxHeaders)
	}
	size := 0
	seen := map[string]bool{}
	for _, h := range hs {
		if err := ValidateHeader(h.Name, h.Value); err != nil {
			return err
		}
		canon := http.CanonicalHeaderKey(h.Name)
		if seen[canon] {
			return fmt.Errorf("%w: headers: %s given twice", ErrInvalid, canon)
		}
		seen[canon] = true
		size += len(h.Name) + len(h.Value)
	}
	if size > MaxHeadersBytes {
		return fmt.Errorf("%w: headers: %d bytes in all: want at most %d", ErrInvalid, size, MaxHeadersBytes)
	}
	return nil
}

// SetHeader sets the custom header name (canonicalized) to value, replacing
// one of the same name; the headers stay sorted by name. Validate checks it.
func (s *Subscription) SetHeader(name, value string) {
	name = http.CanonicalHeaderKey(name)
	s.RemoveHeader(name)
	s.Headers = append(s.Headers, Header{Name: name, Value: value})
	slices.SortFunc(s.Headers, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
}

// RemoveHeader removes the custom header name and reports whether it was set.
func (s *Subscription) RemoveHeader(name string) bool {
	name = http.CanonicalHeaderKey(name)
	n := len(s.Headers)
	s.Headers = slices.DeleteFunc(s.Headers, func(h Header) bool { return h.Name == name })
	if len(s.Headers) == 0 {
		s.Headers = nil
	}
	return len(s.Headers) != n
}

// Retry returns the subscription's own retry policy and true, or false when
// it has none and the dispatcher's default applies. RetryPolicy is checked
// by Validate; a policy that no longer parses also reports false.
func (s Subscription) Retry() (config.Backoff, bool) {
	if s.RetryPolicy == "" {
		return config.Backoff{}, false
	}
	b, err := config.ParseBackoff(s.RetryPolicy)
	if err != nil {
		return config.Backoff{}, false
	}
	return b, true
}

// MaxRetryDelay bounds each delay of a subscription's retry policy.
const MaxRetryDelay = 24 * time.Hour

// ParseRetryPolicy checks a retry policy in either form config.ParseBackoff
// reads ("5s,1m,10m", "exp:5s:1h:12:0.2"; at most 100 retries), each delay
// at most MaxRetryDelay, and returns it in canonical form ("" for none:
// the dispatcher's default). Its errors wrap ErrInvalid.
func ParseRetryPolicy(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: retry_policy %q: "+format, append([]any{ErrInvalid, truncateName(v)}, args...)...)
	}
	b, err := config.ParseBackoff(v)
	if err != nil {
		return "", bad("%v (want a list like 5s,1m,10m or exp:INITIAL:MAX:RETRIES[:JITTER])", err)
	}
	longest := b.Max
	for _, d := range b.Delays {
		longest = max(longest, d)
	}
	if longest > MaxRetryDelay {
		return "", bad("a delay of %s: want at most %s", longest, MaxRetryDelay)
	}
	return b.String(), nil
}
