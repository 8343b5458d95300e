// Package schema holds the event schemas of --event-schemas: one JSON
// Schema (draft 2020-12) per event type, compiled once at start, against
// which the router checks each event's data before fanning it out.
//
// It sits under delivery because it is a check on an event's data beside
// delivery.CheckData, which the router (dispatcher) and the admin API both
// already use; it imports nothing of ours, so either may use it.
//
// A schema is read from DIR/<type>.json. References ($ref) resolve inside
// that file only: a schema cannot make webhookd read another file or a URL.
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// MaxFileBytes bounds one schema file.
const MaxFileBytes = 1 << 20

// MaxReasonBytes bounds the reason Validate returns.
const MaxReasonBytes = 240

// Set is the compiled schemas, by event type. The zero Set and a nil *Set
// hold none. Once built (Load, or Add calls), its methods but Add are safe
// for concurrent use.
type Set struct {
	byType map[string]*entry
}

type entry struct {
	compiled *jsonschema.Schema
	doc      json.RawMessage // the file, compacted
	example  json.RawMessage // examples[0] when it is an object
}

// Load compiles every DIR/<type>.json. validType tells whether a file's
// name (without .json) is an event type webhookd accepts; types under
// "webhook." are webhookd's own and take no schema. Other files in dir are
// ignored. The first file that cannot be read, is not valid JSON, does not
// compile or is badly named fails Load with an error naming it.
func Load(dir string, validType func(string) bool) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("event schemas: %w", err)
	}
	s := &Set{byType: map[string]*entry{}}
	for _, e := range entries {
		name := e.Name()
		t, ok := strings.CutSuffix(name, ".json")
		if !ok || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, name)
		if !validType(t) {
			return nil, fmt.Errorf("event schema %s: %q is not an event type (dot-separated tokens of letters, digits, '_' or '-')", path, t)
		}
		doc, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("event schema %s: %w", path, err)
		}
		if err := s.Add(t, doc); err != nil {
			return nil, fmt.Errorf("event schema %s: %w", path, err)
		}
	}
	return s, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("larger than %d KiB", MaxFileBytes>>10)
	}
	return b, nil
}

// Add compiles doc as the schema of eventType, replacing any before it.
// Its error is one line.
func (s *Set) Add(eventType string, doc []byte) error {
	if strings.HasPrefix(eventType, "webhook.") {
		return fmt.Errorf("%q is sent by webhookd itself and takes no schema", eventType)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not valid JSON: %s", oneLine(err.Error()))
	}
	// A hierarchical base, so that a relative $ref names another URL
	// (which noLoader refuses) rather than this document.
	url := schemaBase + eventType + ".json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(url, v); err != nil {
		return fmt.Errorf("does not compile: %s", oneLine(err.Error()))
	}
	compiled, err := c.Compile(url)
	if err != nil {
		return compileError(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		return fmt.Errorf("not valid JSON: %s", oneLine(err.Error()))
	}
	e := &entry{compiled: compiled, doc: compact.Bytes()}
	var withExamples struct {
		Examples []json.RawMessage `json:"examples"`
	}
	// The first example as written (its keys in their order), if an object.
	if json.Unmarshal(doc, &withExamples) == nil && len(withExamples.Examples) > 0 {
		if ex := bytes.TrimSpace(withExamples.Examples[0]); len(ex) > 0 && ex[0] == '{' {
			var example bytes.Buffer
			if err := json.Compact(&example, ex); err == nil {
				e.example = example.Bytes()
			}
		}
	}
	if e.example != nil {
		// "events trigger" publishes it: it must pass.
		if reason := validate(compiled, e.example); reason != "" {
			return fmt.Errorf("examples[0] fails the schema: %s", reason)
		}
	}
	if s.byType == nil {
		s.byType = map[string]*entry{}
	}
	s.byType[eventType] = e
	return nil
}

// schemaBase is the base URL of every schema: "<base><type>.json".
const schemaBase = "https://event-schemas.webhookd.invalid/"

// compileError is the one line saying why a schema does not compile: for
// a schema that breaks the draft's rules, the first rule and where.
func compileError(err error) error {
	var bad *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &bad) && errors.As(bad.Err, &ve) {
		return fmt.Errorf("not a valid JSON Schema (draft 2020-12): %s", strings.TrimPrefix(describe(ve), "data"))
	}
	var load *jsonschema.LoadURLError
	if errors.As(err, &load) {
		return fmt.Errorf("does not compile: $ref %s: references outside the schema's own file are not followed", strings.TrimPrefix(load.URL, schemaBase))
	}
	return fmt.Errorf("does not compile: %s", bound(oneLine(strings.ReplaceAll(err.Error(), schemaBase, ""))))
}

// noLoader refuses every reference outside the schema's own file.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: references outside the schema's file are not followed", url)
}

// Types returns the event types that have a schema, sorted.
func (s *Set) Types() []string {
	if s == nil {
		return nil
	}
	types := make([]string, 0, len(s.byType))
	for t := range s.byType {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// Schema returns the schema of eventType as given (compacted), or nil.
func (s *Set) Schema(eventType string) json.RawMessage {
	if e := s.get(eventType); e != nil {
		return e.doc
	}
	return nil
}

// Example returns the schema's examples[0] when it is an object, or nil.
func (s *Set) Example(eventType string) json.RawMessage {
	if e := s.get(eventType); e != nil {
		return e.example
	}
	return nil
}

// builtinSamples are sample data of the built-in catalog's types that
// robots publish, for "webhookctl events trigger".
var builtinSamples = map[string]string{
	"robot.connected":    `{"robot_id":"R001","firmware":"4.2.1","site":"lab-2"}`,
	"robot.disconnected": `{"robot_id":"R001","reason":"network timeout","site":"lab-2"}`,
	"task.created":       `{"task_id":"T123","robot_id":"R001","kind":"pick","priority":"normal"}`,
	"task.completed":     `{"task_id":"T123","robot_id":"R001","duration_ms":5400}`,
	"task.failed":        `{"task_id":"T123","robot_id":"R001","error":"gripper stalled"}`,
	"alert.triggered":    `{"robot_id":"R001","level":"high","message":"battery at 8%"}`,
	"maintenance.due":    `{"robot_id":"R001","component":"gripper","due":"2026-12-31"}`,
}

// Sample returns sample data of eventType: its schema's examples[0] when
// it has one, else the built-in sample of a catalog type, else nil.
func (s *Set) Sample(eventType string) json.RawMessage {
	if ex := s.Example(eventType); ex != nil {
		return ex
	}
	if b, ok := builtinSamples[eventType]; ok {
		return json.RawMessage(b)
	}
	return nil
}

func (s *Set) get(eventType string) *entry {
	if s == nil {
		return nil
	}
	return s.byType[eventType]
}

// Validate checks data, an event's JSON data, against the schema of
// eventType. It returns "" when the data is valid or the type has no
// schema, else one line of at most MaxReasonBytes that names the first
// failing field by JSON pointer under "data", such as
// "data/robot_id: missing property".
func (s *Set) Validate(eventType string, data []byte) (reason string) {
	e := s.get(eventType)
	if e == nil {
		return ""
	}
	return validate(e.compiled, data)
}

func validate(compiled *jsonschema.Schema, data []byte) (reason string) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return bound("data: not valid JSON: " + oneLine(err.Error()))
	}
	if reason := checkNumbers(v, nil); reason != "" {
		return bound(reason)
	}
	err = compiled.Validate(v)
	if err == nil {
		return ""
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return bound("data: " + oneLine(err.Error()))
	}
	return bound(describe(ve))
}

// maxExponent bounds the exponent a number of an event's data may be
// written with when its type has a schema. A double holds about 1e±308;
// the validator turns each number into an exact fraction, which for
// 1e999999 takes tens of milliseconds, and beyond about 1e10000000 it
// panics.
const maxExponent = 400

// checkNumbers returns why a number in v, decoded data, is out of range
// (its exponent is over maxExponent), naming its place as describe does;
// "" when none is.
func checkNumbers(v any, loc []string) string {
	switch v := v.(type) {
	case json.Number:
		s := string(v)
		i := strings.IndexAny(s, "eE")
		if i < 0 {
			return ""
		}
		exp := strings.TrimLeft(strings.TrimLeft(s[i+1:], "+-"), "0")
		if n, err := strconv.Atoi(exp); exp == "" || err == nil && n <= maxExponent {
			return ""
		}
		return fmt.Sprintf("%s: number %s is out of range: its exponent is over %d", pointer(loc), s, maxExponent)
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if reason := checkNumbers(v[k], append(loc, k)); reason != "" {
				return reason
			}
		}
	case []any:
		for i, e := range v {
			if reason := checkNumbers(e, append(loc, strconv.Itoa(i))); reason != "" {
				return reason
			}
		}
	}
	return ""
}

// pointer writes loc as a JSON pointer under "data".
func pointer(loc []string) string {
	var b strings.Builder
	b.WriteString("data")
	for _, tok := range loc {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}

// printer writes the validator's messages in English.
var printer = message.NewPrinter(language.English)

// describe names the first leaf failure of ve: its place as a JSON pointer
// under "data", and what is wrong there.
func describe(ve *jsonschema.ValidationError) string {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	loc := ve.InstanceLocation
	what := ve.ErrorKind.LocalizedString(printer)
	if req, ok := ve.ErrorKind.(*kind.Required); ok && len(req.Missing) > 0 {
		loc = append(slices.Clip(loc), req.Missing[0])
		what = "missing property"
		if n := len(req.Missing) - 1; n > 0 {
			what += fmt.Sprintf(" (and %d more)", n)
		}
	}
	return oneLine(pointer(loc) + ": " + what)
}

// oneLine replaces control characters (line breaks among them) by spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// bound cuts s to MaxReasonBytes, on a rune boundary.
func bound(s string) string {
	if len(s) <= MaxReasonBytes {
		return s
	}
	cut := MaxReasonBytes - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
