package subscriptions_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

func TestValidateHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header, value, err string // err: "" when valid, else a part of the message
	}{
		{"api key", "X-Api-Key", "abc", ""},
		{"authorization", "Authorization", "Bearer abc def", ""},
		{"token characters", "X-A!#$%&'*+-.^_`|~1", "v", ""},
		{"tab inside", "X-Tab", "a\tb", ""},
		{"longest value", "X-Long", strings.Repeat("v", subscriptions.MaxHeaderValueBytes), ""},
		{"value too long", "X-Long", strings.Repeat("v", subscriptions.MaxHeaderValueBytes+1), "1025 bytes: want at most 1024"},
		{"empty name", "", "v", "want a header field name"},
		{"space in name", "X Api", "v", "want a header field name"},
		{"colon in name", "X-Api:", "v", "want a header field name"},
		{"non-ascii name", "X-Clé", "v", "want a header field name"},
		{"empty value", "X-Api-Key", "", "non-empty value"},
		{"padded value", "X-Api-Key", " abc", "leading or trailing white space"},
		{"newline in value", "X-Api-Key", "a\r\nX-Injected: 1", "control or non-ASCII byte"},
		{"nul in value", "X-Api-Key", "a\x00", "control or non-ASCII byte"},
		{"non-ascii value", "X-Api-Key", "clé", "control or non-ASCII byte"},
		{"connection", "connection", "close", "Connection may not be set (hop-by-hop)"},
		{"transfer-encoding", "Transfer-Encoding", "chunked", "hop-by-hop"},
		{"te", "TE", "trailers", "hop-by-hop"},
		{"upgrade", "Upgrade", "h2c", "hop-by-hop"},
		{"proxy-authorization", "Proxy-Authorization", "x", "hop-by-hop"},
		{"host", "Host", "evil.example", "Host may not be set"},
		{"content-length", "content-length", "1", "Content-Length may not be set"},
		{"content-type", "Content-Type", "text/plain", "Content-Type may not be set"},
		{"our signature", "X-Webhook-Signature", "00", "signature and delivery headers"},
		{"our event", "x-webhook-event", "task.completed", "signature and delivery headers"},
		{"standard signature", "webhook-signature", "v1,AAAA", "signature and delivery headers"},
		{"standard id", "Webhook-Id", "x", "signature and delivery headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := subscriptions.ValidateHeader(tt.header, tt.value)
			sub := subscriptions.Subscription{URL: "https://a.example/", Events: []string{"task.completed"}}
			sub.SetHeader(tt.header, tt.value)
			if tt.err == "" {
				require.NoError(t, err)
				require.NoError(t, sub.Validate())
				return
			}
			require.ErrorIs(t, err, subscriptions.ErrInvalid)
			require.ErrorContains(t, err, tt.err)
			require.NotContains(t, err.Error(), "\n")
			if len(tt.value) > 3 {
				require.NotContains(t, err.Error(), tt.value, "the value is not repeated")
			}
			require.ErrorIs(t, sub.Validate(), subscriptions.ErrInvalid)
		})
	}
}

func TestHeadersBoundsAndEditing(t *testing.T) {
	t.Parallel()
	sub := subscriptions.Subscription{URL: "https://a.example/", Events: []string{"task.completed"}}
	sub.SetHeader("x-b", "1")
	sub.SetHeader("X-A", "2")
	sub.SetHeader("x-B", "3") // replaces X-B
	require.Equal(t, []subscriptions.Header{{Name: "X-A", Value: "2"}, {Name: "X-B", Value: "3"}}, sub.Headers)
	require.True(t, sub.RemoveHeader("x-a"))
	require.False(t, sub.RemoveHeader("X-A"))
	require.Equal(t, []subscriptions.Header{{Name: "X-B", Value: "3"}}, sub.Headers)
	require.NoError(t, sub.Validate())

	many := sub
	many.Headers = nil
	for i := range subscriptions.MaxHeaders + 1 {
		many.SetHeader("X-H"+strings.Repeat("i", i), "v")
	}
	require.ErrorContains(t, many.Validate(), "headers: 21: want at most 20")

	big := sub
	big.Headers = nil
	for i := range 9 {
		big.SetHeader("X-Big-"+string(rune('a'+i)), strings.Repeat("v", 1000))
	}
	require.ErrorContains(t, big.Validate(), "bytes in all: want at most 8192")

	twice := sub
	twice.Headers = []subscriptions.Header{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}}
	require.ErrorContains(t, twice.Validate(), "X-A given twice")
}

func TestParseRetryPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, err string
	}{
		{"", "", ""},
		{"  ", "", ""},
		{"5s,1m,10m", "5s,1m0s,10m0s", ""},
		{"100ms", "100ms", ""},
		{"exp:5s:1h:12:0.2", "exp:5s:1h0m0s:12:0.2", ""},
		{"exp:1s:1s:0", "exp:1s:1s:0", ""},
		{"24h", "24h0m0s", ""},
		{"25h", "", "a delay of 25h0m0s: want at most 24h0m0s"},
		{"exp:1s:48h:3", "", "a delay of 48h0m0s"},
		{"5s,,10s", "", `retry_policy "5s,,10s"`},
		{"-5s", "", "must be positive"},
		{"exp:5s", "", "exp:INITIAL:MAX:RETRIES"},
		{"exp:5s:1s:3", "", "max delay"},
		{"exp:1s:1m:101", "", "retries"},
		{"soon", "", `delay "soon"`},
	}
	for _, tt := range tests {
		got, err := subscriptions.ParseRetryPolicy(tt.in)
		if tt.err != "" {
			require.ErrorIs(t, err, subscriptions.ErrInvalid, tt.in)
			require.ErrorContains(t, err, tt.err, tt.in)
			require.NotContains(t, err.Error(), "\n")
			sub := subscriptions.Subscription{URL: "https://a.example/", Events: []string{"task.completed"}, RetryPolicy: tt.in}
			require.ErrorIs(t, sub.Validate(), subscriptions.ErrInvalid)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
	sub := subscriptions.Subscription{RetryPolicy: "exp:5s:1h:12:0.2"}
	b, ok := sub.Retry()
	require.True(t, ok)
	require.Equal(t, 12, b.Retries)
	_, ok = subscriptions.Subscription{}.Retry()
	require.False(t, ok)
}

func TestHeadersAndPolicyStoredHeaderValuesNeverInDefaultJSON(t *testing.T) {
	t.Parallel()
	sub := subscriptions.Subscription{ID: "6f1c0000-0000-4000-8000-000000000001", URL: "https://a.example/",
		Events: []string{"task.*"}, RetryPolicy: "1s,2s", Headers: []subscriptions.Header{{Name: "X-Api-Key", Value: "s3cr3t-value"}}}
	b, err := json.Marshal(sub)
	require.NoError(t, err)
	require.NotContains(t, string(b), "s3cr3t-value")
	require.Contains(t, string(b), `"retry_policy":"1s,2s"`)
}

func TestHeadersSealedAtRestAndRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, sealed := range []bool{false, true} {
		kv := bucket(t, jstest.RunProvisioned(t).JS)
		var opts []subscriptions.Option
		if sealed {
			opts = append(opts, subscriptions.WithSecretKey(newKey(t)))
		}
		r := startReplica(t, kv, filepath.Join(t.TempDir(), "a.db"), opts...)
		in := subscriptions.Subscription{URL: "https://a.example/hook", Events: []string{"task.completed"}, RetryPolicy: "exp:1s:1m:5"}
		in.SetHeader("X-Api-Key", "s3cr3t-value")
		in.SetHeader("X-Odd", "enc:v1:deadbeef:AAAA") // looks sealed; stays a plain value
		created, err := r.store.Create(ctx, in)
		require.NoError(t, err)
		raw := rawKV(t, kv, created.ID)
		if sealed {
			require.NotContains(t, raw, "s3cr3t-value")
			require.NotContains(t, raw, "deadbeef")
			require.NotContains(t, rawMirror(t, r.db, created.ID), "s3cr3t-value")
		}
		b := startReplica(t, kv, filepath.Join(t.TempDir(), "b.db"), opts...)
		for _, s := range []*subscriptions.Store{r.store, b.store} {
			got, ok := s.Get(created.ID)
			require.True(t, ok)
			require.Equal(t, in.Headers, got.Headers, "sealed=%v", sealed)
			require.Equal(t, "exp:1s:1m:5", got.RetryPolicy)
		}
		updated, err := r.store.Update(ctx, created.ID, func(s *subscriptions.Subscription) error {
			s.RemoveHeader("X-Odd")
			s.RetryPolicy = ""
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, []subscriptions.Header{{Name: "X-Api-Key", Value: "s3cr3t-value"}}, updated.Headers)
		_, ok := updated.Retry()
		require.False(t, ok)
	}
}

// FuzzValidateHeader: no input panics, and an accepted header is one
// net/http sends as given (no CR/LF, a valid token name).
func FuzzValidateHeader(f *testing.F) {
	for _, s := range [][2]string{{"X-Api-Key", "abc"}, {"Connection", "close"}, {"X-A", "a\r\nb"}, {"", ""}, {"X-Webhook-ID", "x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		if subscriptions.ValidateHeader(name, value) != nil {
			return
		}
		if strings.ContainsAny(value, "\r\n\x00") || strings.ContainsAny(name, " :\r\n") {
			t.Fatalf("accepted %q: %q", name, value)
		}
		if _, err := subscriptions.ParseRetryPolicy(value); err != nil && !errors.Is(err, subscriptions.ErrInvalid) {
			t.Fatalf("policy error not wrapping ErrInvalid: %v", err)
		}
	})
}
