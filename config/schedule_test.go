package config

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffLongestAndAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		longest  time.Duration
		attempts int
	}{
		{"", 0, 1},
		{"5s,10s,15s", 30 * time.Second, 4},
		{"exp:1s:4s:4", 1*time.Second + 2*time.Second + 4*time.Second + 4*time.Second, 5},
		{"exp:10s:1m:2:0.5", 15*time.Second + 30*time.Second, 3},
	}
	for _, tt := range tests {
		b, err := ParseBackoff(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.longest, b.Longest(), tt.in)
		require.Equal(t, tt.attempts, b.Attempts(), tt.in)
	}
}

// The history of a delivery that is still retrying must not expire: the
// retention must outlast the longest retry schedule. And an attempt
// repeated after a crash must come back within the duplicate window.
func TestValidateRetentionAgainstTheRetrySchedule(t *testing.T) {
	t.Parallel()
	field := func(args ...string) string {
		_, err := Load(args, func(string) (string, bool) { return "", false }, nil)
		var fe *FieldError
		if !errors.As(err, &fe) {
			require.NoError(t, err, args)
			return ""
		}
		return fe.Field + ": " + fe.Reason
	}
	require.Empty(t, field("--retention", "1h"), "the default schedule fits an hour")
	require.Empty(t, field("--retention", "2h", "--retry-backoff", "30m,30m,30m", "--delivery-timeout", "1m"))
	got := field("--retention", "2h", "--retry-backoff", "30m,30m,59m")
	require.Contains(t, got, "retention: 2h0m0s: want longer than the longest retry schedule, 2h1m0s")
	got = field("--retention", "24h", "--retry-backoff", "exp:1h:12h:6")
	require.Contains(t, got, "retention: 24h0m0s: want longer", "1+2+4+8+12+12 hours")
	require.Empty(t, field("--retention", "24h", "--retry-backoff", "exp:1m:1h:6"))

	require.Empty(t, field("--ack-wait", "30s", "--delivery-timeout", "30s"), "the defaults")
	got = field("--ack-wait", "90s", "--delivery-timeout", "30s")
	require.Contains(t, got, "ack-wait: 1m30s: ack-wait plus delivery-timeout (30s)")
}
