package expr_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/robotlab/webhookd/subscriptions/expr"
)

// evalBound is far above any evaluation the cost limit lets through
// (microseconds to a few milliseconds), and far below a hang.
const evalBound = 2 * time.Second

// FuzzCompileAndEvaluate feeds what an operator may type into create and
// update (any source, for every field) and what a robot may publish (any
// data): compiling either refuses it with a one-line *expr.Error naming
// the field, or gives a program whose evaluation ends quickly, with a
// result or an error, and never panics.
func FuzzCompileAndEvaluate(f *testing.F) {
	for _, seed := range [][2]string{
		{`data.severity == "critical"`, `{"severity":"critical"}`},
		{`{"text": "Robot " + data.robot_id + ": " + data.message}`, `{"robot_id":"R7","message":"hi"}`},
		{`has(data.a) && data.a.b[0] > 2`, `{"a":{"b":[3]}}`},
		{`data.?fleet.orValue("none")`, `{}`},
		{`event + ":" + id`, `{}`},
		{`timestamp > timestamp("2020-01-01T00:00:00Z")`, `{}`},
		{`data.xs.map(x, data.s + data.s + data.s + data.s).map(y, y + y + y + y).size() > 0`, `{"s":"` + strings.Repeat("a", 512) + `","xs":[1,2,3,4,5,6,7,8]}`},
		{`[data.s].map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).size() > 0`, `{"s":"abcdefgh"}`},
		{`[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, a+b+c))).size() > 0`, `{}`},
		{strings.Repeat("(", 40) + "1" + strings.Repeat(")", 40) + " == 1", `{}`},
		{strings.Repeat("!", 200) + "true", `{}`},
		{`data.s.matches("(a+)+$")`, `{"s":"` + strings.Repeat("a", 64) + `!"}`},
		{`data.xs.all(x, data.xs.all(y, data.xs.all(z, x + y + z > 0)))`, `{"xs":[` + strings.Repeat("1,", 150) + `1]}`},
		{`"unterminated`, `{}`},
		{"true &&\n nope", `{}`},
		{`size(data) / 0 == 1`, `{"a":1}`},
	} {
		f.Add(seed[0], seed[1])
	}
	c := compiler(f)
	f.Fuzz(func(t *testing.T, src, data string) {
		v, varsErr := expr.NewVars(expr.Event{Type: "alert.triggered", ID: "evt-1", Timestamp: time.Unix(1_700_000_000, 0), Data: []byte(data)})
		for _, field := range []expr.Field{expr.Filter, expr.Transform, expr.OrderingKey} {
			start := time.Now()
			p, err := c.Compile(field, src)
			if took := time.Since(start); took > evalBound {
				t.Fatalf("compiling %s %q took %s", field, src, took)
			}
			if err != nil {
				var e *expr.Error
				if src != "" && !errors.As(err, &e) {
					t.Fatalf("%s %q: %v is no *expr.Error", field, src, err)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, string(field)+": ") || strings.Contains(msg, "\n") {
					t.Fatalf("%s %q: error %q: want one line naming the field", field, src, msg)
				}
				continue
			}
			if len(src) > expr.MaxSourceBytes {
				t.Fatalf("%s of %d bytes compiled", field, len(src))
			}
			if varsErr != nil {
				continue
			}
			start = time.Now()
			switch field {
			case expr.Filter:
				_, err = p.Match(v)
			case expr.Transform:
				var body []byte
				if body, err = p.Body(v, 1<<20); err == nil && (len(body) == 0 || body[0] != '{') {
					t.Fatalf("transform %q gave %q, not an object", src, body)
				}
			case expr.OrderingKey:
				_, err = p.Key(v)
			}
			if took := time.Since(start); took > evalBound {
				t.Fatalf("evaluating %s %q took %s (err %v)", field, src, took, err)
			}
		}
	})
}
