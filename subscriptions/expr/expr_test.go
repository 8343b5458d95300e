package expr_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/subscriptions/expr"
)

func vars(t testing.TB, data string) *expr.Vars {
	t.Helper()
	v, err := expr.NewVars(expr.Event{Type: "alert.triggered", ID: "ev-1",
		Timestamp: time.Date(2026, 12, 8, 1, 2, 3, 0, time.UTC), Data: []byte(data)})
	require.NoError(t, err)
	return v
}

func compiler(t testing.TB) *expr.Compiler {
	t.Helper()
	c, err := expr.NewCompiler()
	require.NoError(t, err)
	return c
}

func TestFilter(t *testing.T) {
	c := compiler(t)
	p, err := c.Compile(expr.Filter, `event == "alert.triggered" && data.severity == "critical" && data.fleet == "lab-2" && data.level > 2`)
	require.NoError(t, err)

	ok, err := p.Match(vars(t, `{"severity":"critical","fleet":"lab-2","level":3}`))
	require.NoError(t, err)
	require.True(t, ok)

	ok, err = p.Match(vars(t, `{"severity":"warning","fleet":"lab-2","level":3}`))
	require.NoError(t, err)
	require.False(t, ok)

	// A missing field is a run-time error: no match, and the caller counts it.
	ok, err = p.Match(vars(t, `{"fleet":"lab-2"}`))
	require.Error(t, err)
	require.False(t, ok)
	require.Contains(t, err.Error(), "severity")

	// has() and optionals let an expression avoid that.
	p, err = c.Compile(expr.Filter, `has(data.severity) && data.severity == "critical" || data.?level.orValue(0) >= 5`)
	require.NoError(t, err)
	ok, err = p.Match(vars(t, `{"level":7}`))
	require.NoError(t, err)
	require.True(t, ok)
}

func TestVariables(t *testing.T) {
	c := compiler(t)
	p, err := c.Compile(expr.Filter, `id == "ev-1" && timestamp == timestamp("2026-12-08T01:02:03Z") && event.startsWith("alert.")`)
	require.NoError(t, err)
	ok, err := p.Match(vars(t, `{}`))
	require.NoError(t, err)
	require.True(t, ok)
}

func TestTransform(t *testing.T) {
	c := compiler(t)
	p, err := c.Compile(expr.Transform, `{"text": "Robot " + data.robot_id + " raised " + data.severity, "n": data.level, "tags": [event, id]}`)
	require.NoError(t, err)
	body, err := p.Body(vars(t, `{"robot_id":"r-7","severity":"critical","level":3}`), 1<<20)
	require.NoError(t, err)
	require.JSONEq(t, `{"text":"Robot r-7 raised critical","n":3,"tags":["alert.triggered","ev-1"]}`, string(body))

	// data itself is an object, so passing it through is a transform.
	p, err = c.Compile(expr.Transform, `data`)
	require.NoError(t, err)
	body, err = p.Body(vars(t, `{"a":{"b":[1,true,null]}}`), 1<<20)
	require.NoError(t, err)
	require.JSONEq(t, `{"a":{"b":[1,true,null]}}`, string(body))

	// A dyn result that is not an object fails at run time.
	p, err = c.Compile(expr.Transform, `data.a`)
	require.NoError(t, err)
	_, err = p.Body(vars(t, `{"a":"text"}`), 1<<20)
	require.ErrorContains(t, err, "not an object")
}

// A transform can name a value many times over at little cost: a list of
// 400 references to data is 400 copies of it in the body, and a body
// larger than memory takes no more source. Body counts the body's size as
// it goes and stops at the limit, before building it; a body within the
// limit is whole.
func TestTransformStopsAtTheBodyLimit(t *testing.T) {
	c := compiler(t)
	v := vars(t, `{"s":"`+strings.Repeat("a", 10000)+`"}`)
	p, err := c.Compile(expr.Transform, `{'a': [`+strings.Repeat(`data,`, 400)+`data]}`)
	require.NoError(t, err)
	_, err = p.Body(v, 1<<20)
	require.EqualError(t, err, "transform: the body is over the limit of 1048576 bytes", "stopped before building 4 MB")

	v = vars(t, `{"s":"`+strings.Repeat("a", 100)+`"}`)
	for _, src := range []string{
		`{'a': [data,data,data,data].map(x, [x,x,x,x]), 'b': [b'\x00', timestamp, duration('1s'), null, true, 1.5, -1, 2u, {'k': 'v'}]}`,
		`{'a': [[], {}, [{}], ['x', 'y'], {'k': ['v']}]}`,
		`{}`,
	} {
		p, err = c.Compile(expr.Transform, src)
		require.NoError(t, err)
		body, err := p.Body(v, 1<<20)
		require.NoError(t, err)
		_, err = p.Body(v, len(body))
		require.NoError(t, err, "a body of exactly the limit passes: %s", body)
		_, err = p.Body(v, len(body)-1)
		require.ErrorContains(t, err, "over the limit", src)
	}
}

func TestKey(t *testing.T) {
	c := compiler(t)
	p, err := c.Compile(expr.OrderingKey, `data.robot_id`)
	require.NoError(t, err)
	k, err := p.Key(vars(t, `{"robot_id":"r-7"}`))
	require.NoError(t, err)
	require.Equal(t, "r-7", k)

	_, err = p.Key(vars(t, `{"robot_id":7}`))
	require.ErrorContains(t, err, "not a string")
	_, err = p.Key(vars(t, `{}`))
	require.Error(t, err)
}

func TestCompileErrorsNameFieldAndPosition(t *testing.T) {
	c := compiler(t)
	for _, tc := range []struct {
		field expr.Field
		src   string
		want  string
	}{
		{expr.Filter, `data.x ==`, "filter: line 1, column 10: "},
		{expr.Filter, "true &&\n  nope", "filter: line 2, column 3: undeclared reference to 'nope'"},
		{expr.Filter, `"text"`, "filter: must give a bool, not string"},
		{expr.Transform, `"text"`, "transform: must give an object (a map), not string"},
		{expr.OrderingKey, `1 + 2`, "ordering_key: must give a string, not int"},
		{expr.Filter, ``, "filter: empty expression"},
		{expr.Filter, strings.Repeat("1 + ", 2000) + "1 == 2", "filter: expression is 8006 bytes, over the limit of 4096"},
	} {
		_, err := c.Compile(tc.field, tc.src)
		var e *expr.Error
		require.True(t, errors.As(err, &e), "%q: %v", tc.src, err)
		require.Equal(t, tc.field, e.Field)
		require.Contains(t, err.Error(), tc.want, tc.src)
		require.NotContains(t, err.Error(), "\n", "one line")
	}
}

// Pathological expressions are refused at compile time or stopped by the
// cost limit; none runs long.
func TestPathologicalExpressionsAreBounded(t *testing.T) {
	c := compiler(t)
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100) + " == []"
	_, err := c.Compile(expr.Filter, deep)
	require.Error(t, err, "nesting beyond MaxNesting is refused")

	nested := `[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, [1,2,3,4,5,6,7,8,9,10].map(d, [1,2,3,4,5,6,7,8,9,10].map(e, a+b+c+d+e))))).size() > 0`
	p, err := c.Compile(expr.Filter, nested)
	require.NoError(t, err)
	_, err = p.Match(vars(t, `{}`))
	// 100,000 steps: the cost limit stops them, or the 50 ms deadline
	// first when the machine is slow (the race detector, a loaded CI).
	require.Error(t, err)
	require.Regexp(t, "cost limit|evaluation took over", err.Error())

	// Exponential growth of a string through the data it reads.
	p, err = c.Compile(expr.Filter, `data.xs.map(x, data.s + data.s + data.s + data.s).map(y, y + y + y + y).size() > 0`)
	require.NoError(t, err)
	_, err = p.Match(vars(t, `{"s":"`+strings.Repeat("a", 4096)+`","xs":[`+strings.Repeat("1,", 999)+`1]}`))
	require.ErrorContains(t, err, "cost limit")
	p, err = c.Compile(expr.Filter, `[data.s].map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).map(x, x+x+x+x).size() > 0`)
	require.NoError(t, err)
	_, err = p.Match(vars(t, `{"s":"`+strings.Repeat("a", 4096)+`"}`))
	require.ErrorContains(t, err, "cost limit")
	_, err = c.Compile(expr.Filter, `data.s.replace("a", data.s) != ""`)
	require.Error(t, err, "no function grows a string faster than its inputs")
}

func TestCompileIsCached(t *testing.T) {
	c := compiler(t)
	a, err := c.Compile(expr.Filter, `data.x == 1`)
	require.NoError(t, err)
	b, err := c.Compile(expr.Filter, `data.x == 1`)
	require.NoError(t, err)
	require.Same(t, a, b)
	_, err = c.Compile(expr.Transform, `data.x == 1`)
	require.Error(t, err, "the cache is per field")
}

// CompileUncached uses what the cache holds and adds nothing to it: the
// API's checks and try compile through it, so requests cannot fill the
// cache.
func TestCompileUncachedKeepsNothing(t *testing.T) {
	c := compiler(t)
	a, err := c.CompileUncached(expr.Filter, `data.x == 1`)
	require.NoError(t, err)
	b, err := c.CompileUncached(expr.Filter, `data.x == 1`)
	require.NoError(t, err)
	require.NotSame(t, a, b, "compiled each time")
	cached, err := c.Compile(expr.Filter, `data.x == 1`)
	require.NoError(t, err)
	require.NotSame(t, a, cached, "Compile did not find a program CompileUncached kept")
	again, err := c.CompileUncached(expr.Filter, `data.x == 1`)
	require.NoError(t, err)
	require.Same(t, cached, again, "a cached program is used")
	_, err = c.CompileUncached(expr.Filter, `data.x ==`)
	require.ErrorContains(t, err, "filter: line 1")
}

func TestNewVarsRefusesNonObjects(t *testing.T) {
	for _, d := range []string{`[]`, `null`, `"x"`, `1`, `{`, ``} {
		_, err := expr.NewVars(expr.Event{Data: []byte(d)})
		require.Error(t, err, d)
	}
}

func BenchmarkFilter(b *testing.B) {
	c := compiler(b)
	p, err := c.Compile(expr.Filter, `data.severity == "critical" && data.fleet == "lab-2"`)
	require.NoError(b, err)
	data := `{"robot_id":"r-7","severity":"critical","fleet":"lab-2","level":3,"message":"battery low","battery":0.12}`
	b.ReportAllocs()
	for b.Loop() {
		v := vars(b, data)
		if ok, err := p.Match(v); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkTransform(b *testing.B) {
	c := compiler(b)
	p, err := c.Compile(expr.Transform, `{"text": "Robot " + data.robot_id + ": " + data.message}`)
	require.NoError(b, err)
	v := vars(b, `{"robot_id":"r-7","severity":"critical","fleet":"lab-2","level":3,"message":"battery low"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Body(v, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// A list that holds its parts many times over ([x,x,x,x] in a map macro,
// nested) costs what it holds, counted deep: a comparison of two such
// lists walks every copy, with no cost of its own (nine levels over a
// 30 KB event ran for minutes). A map over a list of objects stays cheap.
func TestSharedPartsCostWhatTheyHold(t *testing.T) {
	c := compiler(t)
	v := vars(t, `{"items":[`+strings.Repeat(`{"id":1,"tags":["a","b"]},`, 999)+`{"id":2}]}`)
	for _, k := range []int{3, 9, 30} {
		l := "[data,data,data,data]" + strings.Repeat(".map(x, [x,x,x,x])", k)
		p, err := c.Compile(expr.Filter, l+" == "+l)
		require.NoError(t, err)
		start := time.Now()
		_, err = p.Match(v)
		require.ErrorContains(t, err, "cost limit", k)
		require.Less(t, time.Since(start), 5*time.Second, k)
	}
	for _, src := range []string{`data.items.map(i, {'id': i.id, 'n': 1}).size() == 1000`, `data.items.map(i, i) == data.items`, `data.items.filter(i, i.id == 2).size() == 1`} {
		p, err := c.Compile(expr.Filter, src)
		require.NoError(t, err)
		ok, err := p.Match(v)
		require.NoError(t, err, src)
		require.True(t, ok, src)
	}
}

// A timestamp accessor given a time zone reads the zone from the system's
// database at each call (about 25 µs, a miss more): it costs as much as
// it takes, so a filter cannot make hundreds of thousands of those reads
// within the cost limit (one such filter held the router 0.6 s per
// event), while one call stays cheap.
func TestTimeZonesCostTheirLookups(t *testing.T) {
	c := compiler(t)
	ten := "[0,1,2,3,4,5,6,7,8,9]"
	for _, zone := range []string{"Europe/Paris", "Nowhere/Zone"} {
		p, err := c.Compile(expr.Filter, ten+`.all(a, `+ten+`.all(b, `+ten+`.all(c, timestamp.getHours('`+zone+`') >= 0)))`)
		require.NoError(t, err)
		_, err = p.Match(vars(t, `{}`))
		require.ErrorContains(t, err, "cost limit", zone)
	}
	p, err := c.Compile(expr.Filter, ten+`.all(a, `+ten+`.all(b, `+ten+`.all(c, timestamp.getHours() >= 0)))`)
	require.NoError(t, err)
	ok, err := p.Match(vars(t, `{}`))
	require.NoError(t, err, "without a zone, a thousand calls are cheap")
	require.True(t, ok)

	p, err = c.Compile(expr.Filter, `timestamp.getHours('Europe/Paris') == 2 && timestamp.getDayOfWeek(data.tz) == 2`)
	require.NoError(t, err)
	ok, err = p.Match(vars(t, `{"tz":"+01:00"}`))
	require.NoError(t, err, "a few calls with a zone fit")
	require.True(t, ok)
}

// A long comprehension, whose cost tracking alone grows with the square of
// its length, is stopped by the evaluation's deadline.
func TestLongLoopsStopAtTheDeadline(t *testing.T) {
	c := compiler(t)
	p, err := c.Compile(expr.Filter, `data.l.all(x, x == 0)`)
	require.NoError(t, err)
	v := vars(t, `{"l":[`+strings.Repeat("0,", 99_999)+`0]}`)
	start := time.Now()
	_, err = p.Match(v)
	took := time.Since(start)
	require.Error(t, err)
	// Without the deadline the cost limit stops it, after 0.6 s here.
	require.ErrorContains(t, err, "evaluation took over 50ms")
	t.Logf("stopped after %s", took)
}
