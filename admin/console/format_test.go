package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFormatting(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 13, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0: "just now", 42 * time.Second: "42s ago", 3*time.Minute + 59*time.Second: "3m ago",
		5 * time.Hour: "5h ago", 47 * time.Hour: "47h ago", 72 * time.Hour: "3d ago", -3 * time.Minute: "in 3m",
	} {
		require.Equal(t, want, ago(now, now.Add(-d)), d)
	}
	require.Empty(t, ago(now, time.Time{}))
	require.Equal(t, "2026-11-29T13:00:00Z", exact(now.Add(999*time.Millisecond)), "to the second")
	require.Equal(t, "2026-11-29T12:00:00Z", exact(now.In(time.FixedZone("x", 3600)).Add(-time.Hour)), "in UTC")

	r := 0.7741935483870968
	require.Equal(t, "77.42% of 31", rate(&r, 31))
	one := 1.0
	require.Equal(t, "100% of 3", rate(&one, 3))
	require.Equal(t, "no attempts", rate(nil, 0))

	for key, want := range map[string]string{
		"payload_note": "Payload note", "event_id": "Event ID", "success_rate_1h": "Success rate (1 h)",
		"request_headers": "Request headers", "url": "URL", "owner": "Owner",
	} {
		require.Equal(t, want, label(key))
	}
}

func TestPointerMarksTheColumn(t *testing.T) {
	t.Parallel()
	require.Equal(t, "b &&\n     ^", pointer("a\nb &&\nc", 2, 6))
	require.Equal(t, "x\n^", pointer("x", 1, 1))
	for _, c := range [][2]int{{0, 1}, {3, 1}, {1, 0}} {
		require.Empty(t, pointer("x\ny", c[0], c[1]), c)
	}
}
