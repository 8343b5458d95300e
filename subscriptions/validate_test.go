package subscriptions_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/subscriptions"
)

func TestValidateURL(t *testing.T) {
	t.Parallel()
	long := "https://a.example/" + strings.Repeat("p", subscriptions.MaxURLBytes-len("https://a.example/"))
	tests := []struct {
		name, url, err string // err: "" when valid, else a part of the message
	}{
		{"https", "https://hooks.example.com/x?y=1", ""},
		{"http with port", "http://hooks.example.com:8080/x", ""},
		{"lowest port", "http://h.example:1/", ""},
		{"highest port", "http://h.example:65535/", ""},
		{"ipv6 with port", "http://[2001:db8::1]:443/x", ""},
		{"ipv6 without port", "http://[2001:db8::1]/x", ""},
		{"exactly 2 KiB", long, ""},
		{"longer than 2 KiB", long + "p", "2049 bytes: want at most 2048"},
		{"empty", "", "required"},
		{"ftp", "ftp://h.example/x", `scheme "ftp": want http or https`},
		{"no scheme", "h.example/x", `scheme "": want http or https`},
		{"relative", "/hooks", `scheme ""`},
		{"javascript", "javascript:alert(1)", `scheme "javascript"`},
		{"opaque", "http:h.example", "with a host"},
		{"no host", "https:///x", "with a host"},
		{"port only", "https://:443/x", "with a host"},
		{"port 0", "http://h.example:0/", `port "0": want 1 to 65535`},
		{"port too big", "http://h.example:65536/", `port "65536": want 1 to 65535`},
		{"port huge", "http://h.example:99999999999999999999/", "want 1 to 65535"},
		{"empty port", "http://h.example:/x", `port "": want 1 to 65535`},
		{"port not a number", "http://h.example:http/x", "not a URL"},
		{"user and password", "https://bob:hunter2@h.example/x", "user info"},
		{"user only", "https://bob@h.example/x", "user info"},
		{"empty user info", "https://@h.example/x", "user info"},
		{"space in host", "https://h example/x", "not a URL"},
		{"control character", "https://h.example/\x7f", "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := subscriptions.ValidateURL(tt.url)
			sub := subscriptions.Subscription{URL: tt.url, Events: []string{"task.completed"}}
			if tt.err == "" {
				require.NoError(t, err)
				require.NoError(t, sub.Validate())
				return
			}
			require.ErrorIs(t, err, subscriptions.ErrInvalid)
			require.ErrorContains(t, err, tt.err)
			require.NotContains(t, err.Error(), "hunter2", "credentials are not repeated")
			require.NotContains(t, err.Error(), "\n")
			require.ErrorIs(t, sub.Validate(), subscriptions.ErrInvalid)
		})
	}
}

func TestValidateFields(t *testing.T) {
	t.Parallel()
	ok := subscriptions.Subscription{URL: "https://a.example", Events: []string{"task.*"}, Active: true}
	tests := []struct {
		name   string
		change func(*subscriptions.Subscription)
		err    string
	}{
		{"valid", func(*subscriptions.Subscription) {}, ""},
		{"max in flight 1000", func(s *subscriptions.Subscription) { s.MaxInFlight = 1000 }, ""},
		{"max in flight 1001", func(s *subscriptions.Subscription) { s.MaxInFlight = 1001 }, "max_in_flight 1001: want 0 (default) to 1000"},
		{"max in flight negative", func(s *subscriptions.Subscription) { s.MaxInFlight = -1 }, "max_in_flight -1"},
		{"disabled", func(s *subscriptions.Subscription) { s.Active, s.DisabledReason = false, "failing" }, ""},
		{"disabled yet active", func(s *subscriptions.Subscription) { s.DisabledReason = "failing" }, "on an active subscription"},
		{"reason with a newline", func(s *subscriptions.Subscription) { s.Active, s.DisabledReason = false, "a\nb" }, "printable"},
		{"timeout too long", func(s *subscriptions.Subscription) { s.Timeout = time.Hour }, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sub := ok
			tt.change(&sub)
			err := sub.Validate()
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, subscriptions.ErrInvalid)
			require.ErrorContains(t, err, tt.err)
		})
	}
}

func TestResumeClearsHealth(t *testing.T) {
	t.Parallel()
	now := time.Now()
	sub := subscriptions.Subscription{DisabledReason: "endpoint_gone", DisabledAt: now, FailingSince: now, MaxInFlight: 3}
	sub.Resume()
	require.Equal(t, subscriptions.Subscription{Active: true, MaxInFlight: 3}, sub)
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b":   true,
		"6F1C2A3B-4C5D-4E6F-8A9B-0C1D2E3F4A5B":   true,
		"":                                       false,
		"*":                                      false,
		">":                                      false,
		"a b":                                    false,
		"a/b":                                    false,
		".":                                      false,
		"6f1c2a3b.4c5d.4e6f.8a9b.0c1d2e3f4a5b":   false,
		"6f1c2a3b4c5d4e6f8a9b0c1d2e3f4a5b":       false, // no hyphens
		"{6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b}": false,
		"urn:uuid:6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b": false,
		"6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5*":          false,
		strings.Repeat("a", 1000):                       false,
	} {
		require.Equal(t, want, subscriptions.ValidID(id), "%q", id)
	}
}
