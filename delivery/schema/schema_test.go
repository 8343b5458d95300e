package schema_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery/schema"
)

// taskCompleted is a typical schema: required fields, types, a pattern,
// an enum and a bound.
const taskCompleted = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["task_id", "robot_id"],
  "properties": {
    "task_id": {"type": "string", "pattern": "^T[0-9]+$"},
    "robot_id": {"type": "string", "minLength": 1},
    "duration_ms": {"type": "integer", "minimum": 0},
    "result": {"enum": ["ok", "partial"]},
    "items": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
  },
  "examples": [{"task_id": "T1", "robot_id": "R001", "duration_ms": 5400}]
}`

func validType(t string) bool { return t != "" && !strings.ContainsAny(t, " *>") }

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	return dir
}

func TestValidateNamesTheFailingField(t *testing.T) {
	s, err := schema.Load(writeDir(t, map[string]string{"task.completed.json": taskCompleted, "README.md": "not a schema"}), validType)
	require.NoError(t, err)
	require.Equal(t, []string{"task.completed"}, s.Types())
	require.Equal(t, `{"task_id":"T1","robot_id":"R001","duration_ms":5400}`, string(s.Example("task.completed")), "as written, compacted")
	require.JSONEq(t, taskCompleted, string(s.Schema("task.completed")))

	for _, tc := range []struct{ data, reason string }{
		{`{"task_id":"T1","robot_id":"R001"}`, ""},
		{`{"task_id":"T1"}`, "data/robot_id: missing property"},
		{`{}`, "data/task_id: missing property (and 1 more)"},
		{`{"task_id":"T1","robot_id":7}`, "data/robot_id: got number, want string"},
		{`{"task_id":"X1","robot_id":"R"}`, "data/task_id: "},
		{`{"task_id":"T1","robot_id":"R","duration_ms":-1}`, "data/duration_ms: "},
		{`{"task_id":"T1","robot_id":"R","result":"bad"}`, "data/result: "},
		{`{"task_id":"T1","robot_id":"R","items":[{"sku":"a"},{}]}`, "data/items/1/sku: missing property"},
	} {
		got := s.Validate("task.completed", []byte(tc.data))
		if tc.reason == "" {
			require.Empty(t, got, tc.data)
			continue
		}
		require.True(t, strings.HasPrefix(got, tc.reason), "%s: got %q, want prefix %q", tc.data, got, tc.reason)
	}
	require.Empty(t, s.Validate("task.failed", []byte(`{}`)), "a type without a schema takes any object")
	var none *schema.Set
	require.Empty(t, none.Validate("task.completed", []byte(`{}`)))
}

func TestValidateReasonIsOneBoundedLine(t *testing.T) {
	s := &schema.Set{}
	require.NoError(t, s.Add("lab.door", []byte(`{"type":"object","propertyNames":{"maxLength":3},"additionalProperties":{"type":"string"}}`)))
	long := strings.Repeat("é\n/~", 200)
	data, err := json.Marshal(map[string]any{long: 5})
	require.NoError(t, err)
	got := s.Validate("lab.door", data)
	require.NotEmpty(t, got)
	require.LessOrEqual(t, len(got), schema.MaxReasonBytes)
	require.NotContains(t, got, "\n")
	require.True(t, strings.HasPrefix(got, "data/"), got)
}

func TestLoadRefusesBadFilesNamingThem(t *testing.T) {
	for name, tc := range map[string]struct{ file, body, want string }{
		"not JSON":         {"task.created.json", `{"type": "object"`, "not valid JSON"},
		"does not compile": {"task.created.json", `{"type": 5}`, "not a valid JSON Schema (draft 2020-12): /type: "},
		"bad pattern":      {"task.created.json", `{"pattern": "("}`, "/pattern: '(' is not valid regex"},
		"dangling ref":     {"task.created.json", `{"$ref": "#/$defs/nope"}`, "does not compile: json-pointer in \"task.created.json#/$defs/nope\" not found"},
		"sibling ref":      {"task.created.json", `{"properties": {"a": {"$ref": "other.json"}}}`, "$ref other.json: references outside"},
		"bad type name":    {"task created.json", `{}`, "is not an event type"},
		"bad example":      {"task.created.json", `{"required": ["a"], "examples": [{"b": 1}]}`, "examples[0] fails the schema: data/a: missing property"},
		"webhookd's own":   {"webhook.ping.json", `{}`, "sent by webhookd itself"},
		"remote ref":       {"task.created.json", `{"$ref": "https://example.com/s.json"}`, "$ref https://example.com/s.json: references outside"},
		"file ref":         {"task.created.json", `{"$ref": "file:///etc/passwd"}`, "$ref file:///etc/passwd: references outside"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeDir(t, map[string]string{tc.file: tc.body})
			_, err := schema.Load(dir, validType)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, filepath.Join(dir, tc.file))
			require.NotContains(t, err.Error(), "\n")
		})
	}
	_, err := schema.Load(filepath.Join(t.TempDir(), "missing"), validType)
	require.ErrorContains(t, err, "missing")
}

// FuzzAdd feeds the loader arbitrary schema files and validates an event
// with each one that compiles: neither may panic, and a reason is one line
// within the bound.
func FuzzAdd(f *testing.F) {
	f.Add([]byte(taskCompleted), []byte(`{"task_id":"T1"}`))
	f.Add([]byte(`{"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}`), []byte(`{}`))
	f.Add([]byte(`{"anyOf":[{"required":["a"]},{"not":{"type":"object"}}]}`), []byte(`{"b":1}`))
	f.Add([]byte(`{"$dynamicRef":"#x","$dynamicAnchor":"x"}`), []byte(`{"a":[1,2]}`))
	f.Add([]byte(`{"pattern":"(a+)+$","properties":{"s":{"format":"email"}}}`), []byte(`{"s":"x"}`))
	f.Add([]byte(`true`), []byte(`{}`))
	f.Add([]byte(`{"examples":[{"a":1}],"minProperties":2}`), []byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, doc, data []byte) {
		s := &schema.Set{}
		if err := s.Add("lab.fuzz", doc); err != nil {
			require.NotContains(t, err.Error(), "\n")
			return
		}
		reason := s.Validate("lab.fuzz", data)
		require.LessOrEqual(t, len(reason), schema.MaxReasonBytes)
		require.NotContains(t, reason, "\n")
	})
}

// BenchmarkValidate measures one event's check against a typical schema.
func BenchmarkValidate(b *testing.B) {
	s := &schema.Set{}
	require.NoError(b, s.Add("task.completed", []byte(taskCompleted)))
	data := []byte(`{"task_id":"T123","robot_id":"R001","duration_ms":5400,"result":"ok","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"site":"lab-2","notes":"picked from shelf 4"}`)
	b.ReportAllocs()
	for b.Loop() {
		if r := s.Validate("task.completed", data); r != "" {
			b.Fatal(r)
		}
	}
}

// TestValidateRefusesNumbersOutOfRange: a robot's number with a huge
// exponent neither panics the validator (it does for "minimum" and
// "multipleOf" beyond about 1e10000000) nor makes it slow (each 1e999999
// costs it tens of milliseconds): the event is refused at once, with the
// number's place.
func TestValidateRefusesNumbersOutOfRange(t *testing.T) {
	var s schema.Set
	require.NoError(t, s.Add("reading.taken", []byte(`{"type":"object","properties":{
		"n": {"minimum": 0, "multipleOf": 0.5},
		"items": {"type": "array", "items": {"type": "object", "properties": {"v": {"maximum": 5}}}}}}`)))
	for _, tc := range []struct{ data, reason string }{
		{`{"n":1e99999999}`, "data/n: number 1e99999999 is out of range: its exponent is over 400"},
		{`{"n":-5E-99999999}`, "data/n: number -5E-99999999 is out of range: its exponent is over 400"},
		{`{"x":{"a~/b":[1,2e401]}}`, "data/x/a~0~1b/1: number 2e401 is out of range: its exponent is over 400"},
		{`{"n":1e400}`, ""},
		{`{"n":1e+0400}`, ""},
		{`{"n":1.2e0}`, "data/n: multipleOf"},
		{`{"n":3E-00}`, ""},
		{`{"n":-1e-400}`, "data/n: minimum"},
		{`{"items":[{"v":6}]}`, "data/items/0/v: maximum"},
	} {
		got := s.Validate("reading.taken", []byte(tc.data))
		if tc.reason == "" {
			require.Empty(t, got, tc.data)
			continue
		}
		require.True(t, strings.HasPrefix(got, tc.reason), "%s: %q", tc.data, got)
	}

	many := `{"items":[` + strings.Repeat(`{"v":1e999999},`, 1000) + `{}]}`
	start := time.Now()
	require.Equal(t, "data/items/0/v: number 1e999999 is out of range: its exponent is over 400", s.Validate("reading.taken", []byte(many)))
	require.Less(t, time.Since(start), 5*time.Second, "a thousand such numbers took %v", time.Since(start))
}
