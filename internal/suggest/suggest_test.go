package suggest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/internal/suggest"
)

func TestNearest(t *testing.T) {
	names := []string{"allow-targets", "admin-token", "ack-wait", "server", "token", "token"}
	for typed, want := range map[string][]string{
		"allow-target":  {"allow-targets"}, // one letter short
		"sever":         {"server"},        // one letter missing
		"ack":           {"ack-wait"},      // a prefix
		"tokn":          {"token"},         // once, though named twice
		"nothing-close": nil,
		"ad":            nil, // too short to count as a prefix
	} {
		require.Equal(t, want, suggest.Nearest(typed, names), typed)
	}
}

func TestDashList(t *testing.T) {
	require.Equal(t, "", suggest.DashList(nil))
	require.Equal(t, "--a", suggest.DashList([]string{"a"}))
	require.Equal(t, "--a or --b", suggest.DashList([]string{"a", "b"}))
	require.Equal(t, "--a, --b or --c", suggest.DashList([]string{"a", "b", "c"}))
}
