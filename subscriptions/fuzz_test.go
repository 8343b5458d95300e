package subscriptions_test

import (
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robotlab/webhookd/subscriptions"
)

// FuzzValidate checks Subscription.Validate against its contract for any
// url, events and timeout: it never panics; it refuses with a one-line error
// wrapping ErrInvalid that never repeats a password given in the URL; and a
// subscription it accepts has an http or https URL of at most 2 KiB with a
// host, no user info and, if any, a port from 1 to 65535, at least one event
// and every event a valid type or pattern, and a timeout from 0 to 5m.
func FuzzValidate(f *testing.F) {
	f.Add("https://example.com/hook", "task.completed,robot.>", int64(10*time.Second))
	f.Add("http://127.0.0.1:8080/x?y=%00#z", "*", int64(0))
	f.Add("HTTPS://[::1]:65535/", "task.*", int64(5*time.Minute))
	f.Add("https://example.com:/", "a", int64(0))
	f.Add("https://example.com/"+strings.Repeat("a", 2048-len("https://example.com/")), "a", int64(1))
	f.Add("ftp://example.com/", "a", int64(0))
	f.Add("https:///path", "a", int64(0))
	f.Add("https:example.com", "a", int64(0))
	f.Add("//example.com/", "a", int64(0))
	f.Add("http://exa mple.com/", "a", int64(0))
	f.Add("http://example.com/\x00\n", "a", int64(0))
	f.Add("http://[::1/", "a", int64(0))
	f.Add("http://example.com:http/", "a", int64(0))
	f.Add("https://example.com/", "", int64(0))
	f.Add("https://example.com/", "task..x,robot.>.x, task", int64(0))
	f.Add("https://example.com/", "a", int64(-1))
	f.Add("https://example.com/", "a", int64(5*time.Minute+1))
	f.Add("\xff://\xfe/", "\xff", int64(-1<<63))
	f.Fuzz(func(t *testing.T, rawURL, events string, timeout int64) {
		s := subscriptions.Subscription{URL: rawURL, Timeout: time.Duration(timeout)}
		if events != "" {
			s.Events = strings.Split(events, ",")
		}
		err := s.Validate()
		if err != nil {
			if !errors.Is(err, subscriptions.ErrInvalid) {
				t.Fatalf("Validate error %v does not wrap ErrInvalid", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("Validate error spans lines: %q", err.Error())
			}
			if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
				if p, ok := u.User.Password(); ok && len(p) >= 4 && strings.Contains(err.Error(), p) {
					t.Fatalf("Validate error %q repeats the URL's password", err.Error())
				}
			}
			return
		}
		if len(rawURL) > 2048 {
			t.Fatalf("accepted a URL of %d bytes, over 2 KiB", len(rawURL))
		}
		u, perr := url.Parse(rawURL)
		if perr != nil {
			t.Fatalf("accepted %q, which does not parse: %v", rawURL, perr)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("accepted %q: scheme %q", rawURL, u.Scheme)
		}
		if u.Hostname() == "" || u.Opaque != "" {
			t.Fatalf("accepted %q: no host", rawURL)
		}
		if u.User != nil {
			t.Fatalf("accepted %q: user info", rawURL)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				t.Fatalf("accepted %q: port %q", rawURL, p)
			}
		}
		if len(s.Events) == 0 {
			t.Fatal("accepted a subscription without events")
		}
		for _, e := range s.Events {
			if !validPattern(e) {
				t.Fatalf("accepted event %q", e)
			}
		}
		if s.Timeout < 0 || s.Timeout > 5*time.Minute {
			t.Fatalf("accepted timeout %s", s.Timeout)
		}
	})
}

// patternRE is the grammar of event types and patterns: dot-separated
// tokens of letters, digits, "_" and "-", or "*"; ">" only as the last token.
var patternRE = regexp.MustCompile(`^(?:>|(?:[A-Za-z0-9_-]+|\*)(?:\.(?:[A-Za-z0-9_-]+|\*))*(?:\.>)?)$`)

func validPattern(p string) bool { return len(p) <= 128 && patternRE.MatchString(p) }

// concrete reports whether e is an event type: a valid pattern without
// wildcards.
func concrete(e string) bool {
	return validPattern(e) && !strings.ContainsAny(e, "*>")
}

// referenceMatch is NATS subject matching, token by token.
func referenceMatch(pattern, event string) bool {
	ptoks, etoks := strings.Split(pattern, "."), strings.Split(event, ".")
	for i, p := range ptoks {
		switch {
		case p == ">":
			return len(etoks) > i
		case i >= len(etoks):
			return false
		case p != "*" && p != etoks[i]:
			return false
		}
	}
	return len(ptoks) == len(etoks)
}

// instance returns an event type that pattern matches: each "*" becomes a
// token of fill, a ">" two of them.
func instance(pattern, fill string) string {
	toks := strings.Split(pattern, ".")
	for i, p := range toks {
		switch p {
		case "*":
			toks[i] = fill
		case ">":
			toks[i] = fill + "." + fill
		}
	}
	return strings.Join(toks, ".")
}

// FuzzValidPattern checks ValidPattern against the grammar, and MatchPattern
// against NATS subject matching for every valid pattern and event type,
// including an event type built to match the pattern.
func FuzzValidPattern(f *testing.F) {
	for _, p := range [][2]string{
		{"task.completed", "task.completed"}, {"task.*", "task.completed"}, {"robot.>", "robot.arm.moved"}, {"robot.>", "robot"}, {">", "a"},
		{"*.>", "a"}, {"*.*", "a.b.c"}, {"a.>.b", "a.x.b"}, {"a.b*", "a.bc"}, {"", ""}, {".", "."}, {"a..b", "a..b"},
		{"a.", "a"}, {"\x00", "\x00"}, {"ä", "ä"}, {"a:b", "a:b"}, {"a b", "a b"}, {strings.Repeat("a.", 64) + "b", "a"}, {strings.Repeat("*.", 63) + ">", strings.Repeat("x.", 70) + "x"},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, pattern, event string) {
		valid := subscriptions.ValidPattern(pattern)
		if valid != validPattern(pattern) {
			t.Fatalf("ValidPattern(%q) = %v, the grammar says %v", pattern, valid, !valid)
		}
		if !valid {
			_ = subscriptions.MatchPattern(pattern, event) // must not panic
			return
		}
		if concrete(event) {
			if got := subscriptions.MatchPattern(pattern, event); got != referenceMatch(pattern, event) {
				t.Fatalf("MatchPattern(%q, %q) = %v", pattern, event, got)
			}
		}
		if e := instance(pattern, "x"); !subscriptions.MatchPattern(pattern, e) {
			t.Fatalf("MatchPattern(%q, %q) = false, want true", pattern, e)
		}
		if concrete(pattern) && !subscriptions.MatchPattern(pattern, pattern) {
			t.Fatalf("event type %q does not match itself", pattern)
		}
	})
}
