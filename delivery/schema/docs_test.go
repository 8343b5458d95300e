package schema_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery/schema"
)

// The schema docs/schemas.md shows compiles, its example passes, and the
// reasons the page quotes are the ones Validate gives.
func TestDocsSchemaAndReasons(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/schemas.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindStringSubmatch(string(b))
	require.NotNil(t, m, "a json block")
	s := &schema.Set{}
	require.NoError(t, s.Add("task.completed", []byte(m[1])))
	require.Empty(t, s.Validate("task.completed", s.Example("task.completed")))
	for data, reason := range map[string]string{
		`{"task_id":"T124"}`:                                 "data/robot_id: missing property",
		`{"task_id":"X1","robot_id":"R1"}`:                   "data/task_id: 'X1' does not match pattern '^T[0-9]+$'",
		`{"task_id":"T1","robot_id":"R1","duration_ms":"5"}`: "data/duration_ms: got string, want integer",
	} {
		require.Equal(t, reason, s.Validate("task.completed", []byte(data)))
		require.True(t, strings.Contains(string(b), "`"+reason+"`") || strings.Contains(string(b), reason+"  "), "docs/schemas.md quotes %q", reason)
	}
}
