package subscriptions_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/subscriptions"
)

func TestMatchPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, event string
		want           bool
	}{
		{"task.completed", "task.completed", true},
		{"task.completed", "task.failed", false},
		{"task.completed", "task.completed.late", false},
		{"task.completed.late", "task.completed", false},
		{"task.*", "task.completed", true},
		{"task.*", "task", false},
		{"task.*", "task.a.b", false},
		{"*.completed", "task.completed", true},
		{"*.completed", "robot.connected", false},
		{"*", "task", true},
		{"*", "task.completed", false},
		{"robot.>", "robot.connected", true},
		{"robot.>", "robot.arm.moved", true},
		{"robot.>", "robot", false},
		{"robot.>", "task.completed", false},
		{">", "anything.at.all", true},
		{"*.>", "a.b", true},
		{"*.>", "a", false},
		{"task", "task", true},
		{"task", "", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, subscriptions.MatchPattern(tt.pattern, tt.event), "%q ~ %q", tt.pattern, tt.event)
	}
}

func TestValidPattern(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"task.completed", "task.*", "robot.>", ">", "*", "*.failed", "a_b-c.D9"} {
		require.True(t, subscriptions.ValidPattern(ok), ok)
	}
	for _, bad := range []string{"", ".", "task.", ".task", "task..x", "robot.>.x", "ta*sk", "task.co>", "task completed", "task/x", strings.Repeat("a", 129)} {
		require.False(t, subscriptions.ValidPattern(bad), bad)
	}
}

// FuzzMatchPattern checks that matching never panics and agrees with the
// definition for concrete types: a pattern without wildcards matches only itself.
func FuzzMatchPattern(f *testing.F) {
	f.Add("task.*", "task.completed")
	f.Add("robot.>", "robot.arm.moved")
	f.Add(">", "")
	f.Add("..", "..")
	f.Fuzz(func(t *testing.T, pattern, event string) {
		got := subscriptions.MatchPattern(pattern, event)
		if !strings.ContainsAny(pattern, "*>") && subscriptions.ValidPattern(pattern) {
			if got != (pattern == event) {
				t.Fatalf("%q ~ %q = %v", pattern, event, got)
			}
		}
		if pattern == ">" && got != (event != "" && !strings.HasPrefix(event, ".")) {
			t.Fatalf("%q ~ %q = %v", pattern, event, got)
		}
	})
}

func BenchmarkMatchPattern(b *testing.B) {
	patterns := []string{"task.completed", "task.*", "robot.>", "*.triggered", "maintenance.due"}
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range patterns {
			_ = subscriptions.MatchPattern(p, "robot.arm.moved")
		}
	}
}
