// Package expr compiles and evaluates the CEL expressions a subscription
// may carry: its filter (gives a bool), its transform (gives an object,
// the body sent instead of the envelope) and its ordering key (gives a
// string). See shared/DESIGN.md, "Filters, transforms, schemas, ordering".
//
// Every expression sees the same four variables: event (the type, a
// string), id (the event id), timestamp (when the event was stored) and
// data (the event's data object). An expression is compiled once, checked
// against the type its field needs, and cached by its source; evaluating it
// is bounded by a cost limit, so no expression can burn a core. The
// environment is CEL's standard library with optional types; CEL's string
// extensions are left out on purpose, because one call such as
// s.replace("a", s) makes a string the square of its input before any cost
// check can stop it.
package expr

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
	"google.golang.org/protobuf/types/known/structpb"
)

// Field names the role of an expression, as the API's JSON field does.
type Field string

// The fields a subscription's expressions fill.
const (
	Filter      Field = "filter"
	Transform   Field = "transform"
	OrderingKey Field = "ordering_key"
)

// Limits on expressions. They are part of the documented contract.
const (
	// MaxSourceBytes bounds an expression's source.
	MaxSourceBytes = 4096
	// MaxNesting bounds the parser's recursion (nested calls, operators,
	// literals and macros).
	MaxNesting = 32
	// CostLimit bounds one evaluation, in CEL's cost units (about one per
	// operation, plus the size of strings and lists it touches). An
	// evaluation that reaches it fails, as any run-time error does.
	CostLimit = 100_000
	// MaxEvalTime bounds one evaluation's time as well: CEL's cost
	// tracking grows with the square of a long comprehension's length
	// (data.l.all(x, x == 0) over 100,000 elements takes 0.6 s before the
	// cost limit stops it), so the cost limit alone does not bound time.
	MaxEvalTime = 50 * time.Millisecond
	// interruptEvery is how many comprehension steps go between checks of
	// the evaluation's deadline.
	interruptEvery = 100
	// cacheSize bounds the compiled programs a Compiler keeps.
	cacheSize = 4096
)

// Error is an expression that does not compile or does not give what its
// field needs. Line and Column are 1-based; zero when the error has no
// position (the expression as a whole).
type Error struct {
	Field   Field
	Line    int
	Column  int
	Message string
}

// Error returns one line naming the field and the position.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d, column %d: %s", e.Field, e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}

// Compiler compiles expressions in the subscriptions' environment and keeps
// the programs it compiled, by field and source. It is safe for concurrent
// use; its zero value is not: use NewCompiler.
type Compiler struct {
	env *cel.Env

	mu    sync.Mutex
	cache map[cacheKey]cached
}

type cacheKey struct {
	field Field
	src   string
}

type cached struct {
	p   *Program
	err error
}

// NewCompiler returns a Compiler with the subscriptions' environment.
func NewCompiler() (*Compiler, error) {
	env, err := cel.NewEnv(
		cel.Variable("event", cel.StringType),
		cel.Variable("id", cel.StringType),
		cel.Variable("timestamp", cel.TimestampType),
		cel.Variable("data", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		cel.ParserRecursionLimit(MaxNesting),
		cel.ParserExpressionSizeLimit(MaxSourceBytes),
	)
	if err != nil {
		return nil, fmt.Errorf("expression environment: %w", err)
	}
	return &Compiler{env: env, cache: map[cacheKey]cached{}}, nil
}

// Compile returns the program of src for field, compiling it the first
// time. A source that does not compile, or gives the wrong type, is an
// *Error. An empty source is an error too: an empty field means "none",
// which callers handle before compiling.
func (c *Compiler) Compile(field Field, src string) (*Program, error) {
	k := cacheKey{field, src}
	c.mu.Lock()
	hit, ok := c.cache[k]
	c.mu.Unlock()
	if ok {
		return hit.p, hit.err
	}
	p, err := c.compile(field, src)
	c.mu.Lock()
	if len(c.cache) >= cacheSize {
		clear(c.cache) // subscriptions change rarely: a full cache is stale
	}
	c.cache[k] = cached{p, err}
	c.mu.Unlock()
	return p, err
}

// CompileUncached is Compile for an expression only checked or tried, not
// run for every event (the API's checks and try): it uses a program the
// cache holds, but keeps none it compiles, so that requests cannot fill
// the cache with programs (a 4 KiB expression's takes up to 250 KiB) and
// push out the subscriptions' own.
func (c *Compiler) CompileUncached(field Field, src string) (*Program, error) {
	c.mu.Lock()
	hit, ok := c.cache[cacheKey{field, src}]
	c.mu.Unlock()
	if ok {
		return hit.p, hit.err
	}
	return c.compile(field, src)
}

func (c *Compiler) compile(field Field, src string) (*Program, error) {
	switch field {
	case Filter, Transform, OrderingKey:
	default:
		return nil, fmt.Errorf("unknown expression field %q", field)
	}
	if src == "" {
		return nil, &Error{Field: field, Message: "empty expression"}
	}
	if len(src) > MaxSourceBytes {
		return nil, &Error{Field: field, Message: fmt.Sprintf("expression is %d bytes, over the limit of %d", len(src), MaxSourceBytes)}
	}
	ast, iss := c.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		errs := iss.Errors()
		if len(errs) == 0 {
			return nil, &Error{Field: field, Message: iss.Err().Error()}
		}
		e := errs[0]
		line, col := e.Location.Line(), e.Location.Column()+1
		if line <= 0 {
			line, col = 0, 0
		}
		return nil, &Error{Field: field, Line: line, Column: col, Message: e.Message}
	}
	if err := checkOutput(field, ast.OutputType()); err != nil {
		return nil, err
	}
	prg, err := c.env.Program(ast, cel.CostLimit(CostLimit), cel.CostTracking(sizeCost{}), cel.EvalOptions(cel.OptOptimize),
		cel.InterruptCheckFrequency(interruptEvery))
	if err != nil {
		return nil, &Error{Field: field, Message: err.Error()}
	}
	return &Program{field: field, src: src, prg: prg}, nil
}

// checkOutput refuses an expression whose static type cannot be what field
// needs. Dyn passes: data's fields are dynamic, so it is checked when the
// expression runs.
func checkOutput(field Field, t *cel.Type) error {
	if t.IsExactType(cel.DynType) {
		return nil
	}
	var want string
	switch field {
	case Filter:
		if t.IsExactType(cel.BoolType) {
			return nil
		}
		want = "a bool"
	case Transform:
		if t.Kind() == types.MapKind {
			return nil
		}
		want = "an object (a map)"
	case OrderingKey:
		if t.IsExactType(cel.StringType) {
			return nil
		}
		want = "a string"
	}
	return &Error{Field: field, Message: fmt.Sprintf("must give %s, not %s", want, t)}
}

// sizeCost charges every call that gives a string, bytes, a list or a map
// for the size of what it made, and a timestamp accessor given a time zone
// for reading it (zoneCost). CEL's own run-time costs do that only for
// calls whose overload the checker resolved, and data's fields are dynamic:
// without it `[data.s].map(x, x+x+x+x).map(…)` grows fourfold per step
// for the cost of a few operations.
type sizeCost struct{}

// zoneCost is what a timestamp accessor given a time zone costs
// (timestamp.getHours("Europe/Paris")): it reads the zone from the
// system's database at each call, about 25 µs where an operation takes
// about 0.1 µs, so a hundred of them fill the cost limit.
const zoneCost = CostLimit / 100

// zoned are the timestamp accessors that take a time zone.
var zoned = map[string]bool{
	"getFullYear": true, "getMonth": true, "getDayOfYear": true, "getDayOfMonth": true, "getDate": true,
	"getDayOfWeek": true, "getHours": true, "getMinutes": true, "getSeconds": true, "getMilliseconds": true,
}

// CallCost implements interpreter.ActualCostEstimator.
func (sizeCost) CallCost(function, _ string, args []ref.Val, result ref.Val) *uint64 {
	if len(args) == 2 && zoned[function] {
		cost := uint64(zoneCost)
		return &cost
	}
	s, ok := result.(traits.Sizer)
	if !ok {
		return nil // CEL's default
	}
	n, ok := s.Size().(types.Int)
	if !ok || n < 0 {
		return nil
	}
	cost := 1 + uint64(n)/10 // CEL's traversal factor: 0.1 per element or byte
	if function == "_+_" && len(args) == 2 {
		// What a list gains, counted deep: the map macro appends each
		// element so, and [x,x,x,x] holds x four times over, which a
		// comparison or a body then walks in full.
		cost += uint64(nodes(args[1], CostLimit+1))
	}
	return &cost
}

// nodes counts the elements and entries of v's lists and maps, deep, at
// most about limit of them.
func nodes(v ref.Val, limit int) int {
	n := 0
	switch v := v.(type) {
	case traits.Mapper:
		for it := v.Iterator(); n < limit && it.HasNext() == types.True; {
			n += 1 + nodes(v.Get(it.Next()), limit-n)
		}
	case traits.Lister:
		for it := v.Iterator(); n < limit && it.HasNext() == types.True; {
			n += 1 + nodes(it.Next(), limit-n)
		}
	}
	return n
}

// Program is one compiled expression. It is safe for concurrent use.
type Program struct {
	field Field
	src   string
	prg   cel.Program
}

// Source returns the expression's source.
func (p *Program) Source() string { return p.src }

// Field returns the field the program was compiled for.
func (p *Program) Field() Field { return p.field }

// Event is what an expression sees of one event.
type Event struct {
	Type      string
	ID        string
	Timestamp time.Time
	// Data is the event's data: a JSON object.
	Data []byte
}

// Vars are an event's variables, decoded once and shared by every program
// evaluated against that event.
type Vars struct {
	act interpreter.Activation
}

// NewVars decodes ev's data. Data that is not a JSON object is an error.
func NewVars(ev Event) (*Vars, error) {
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		return nil, fmt.Errorf("event data: %w", err)
	}
	if data == nil {
		return nil, errors.New("event data: not a JSON object")
	}
	act, err := interpreter.NewActivation(map[string]any{
		"event":     types.String(ev.Type),
		"id":        types.String(ev.ID),
		"timestamp": types.Timestamp{Time: ev.Timestamp},
		"data":      types.DefaultTypeAdapter.NativeToValue(data),
	})
	if err != nil {
		return nil, fmt.Errorf("expression variables: %w", err)
	}
	return &Vars{act: act}, nil
}

func (p *Program) eval(v *Vars) (ref.Val, error) {
	ctx, cancel := context.WithTimeout(context.Background(), MaxEvalTime)
	defer cancel()
	out, _, err := p.prg.ContextEval(ctx, v.act)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: evaluation took over %s: %w", p.field, MaxEvalTime, err)
		}
		return nil, fmt.Errorf("%s: %w", p.field, err)
	}
	return out, nil
}

// Match evaluates a filter. An error (a missing field, the cost limit)
// means the event does not match; the caller counts it.
func (p *Program) Match(v *Vars) (bool, error) {
	out, err := p.eval(v)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%s: gave %s, not a bool", p.field, out.Type().TypeName())
	}
	return bool(b), nil
}

// Body evaluates a transform and returns the object it gives as JSON, with
// keys sorted, of at most maxBytes. Numbers are JSON numbers (CEL's int
// and uint above 2^53 lose precision, as JSON's doubles do).
func (p *Program) Body(v *Vars, maxBytes int) ([]byte, error) {
	out, err := p.eval(v)
	if err != nil {
		return nil, err
	}
	if _, ok := out.(interface{ Size() ref.Val }); !ok || out.Type() != types.MapType {
		return nil, fmt.Errorf("%s: gave %s, not an object", p.field, out.Type().TypeName())
	}
	// The value may name one part many times over ([x,x,x,x] nested nine
	// deep is 262144 copies of x), at little cost: its JSON is measured
	// before it is built.
	if jsonFloor(out, maxBytes) < 0 {
		return nil, fmt.Errorf("%s: the body is over the limit of %d bytes", p.field, maxBytes)
	}
	native, err := out.ConvertToNative(reflect.TypeFor[*structpb.Value]())
	if err != nil {
		return nil, fmt.Errorf("%s: result is not JSON: %w", p.field, err)
	}
	b, err := json.Marshal(native.(*structpb.Value).AsInterface())
	if err != nil {
		return nil, fmt.Errorf("%s: encoding the result: %w", p.field, err)
	}
	if len(b) > maxBytes {
		return nil, fmt.Errorf("%s: the body is %d bytes, over the limit of %d", p.field, len(b), maxBytes)
	}
	return b, nil
}

// jsonFloor subtracts from budget the bytes v takes at least as JSON, and
// returns what is left: negative once v is larger, when it stops counting.
// It never counts more than the JSON takes, so a value it lets through
// may still be over budget by its encoding (escapes, digits).
func jsonFloor(v ref.Val, budget int) int {
	switch v := v.(type) {
	case types.String:
		return budget - len(v) - 2
	case types.Bytes:
		return budget - base64.StdEncoding.EncodedLen(len(v)) - 2
	case traits.Mapper:
		budget-- // {
		for it := v.Iterator(); budget >= 0 && it.HasNext() == types.True; {
			k := it.Next()
			budget = jsonFloor(v.Get(k), jsonFloor(k, budget-2)) // ":", and "," or "}"
		}
		return budget
	case traits.Lister:
		budget-- // [
		for it := v.Iterator(); budget >= 0 && it.HasNext() == types.True; {
			budget = jsonFloor(it.Next(), budget-1) // "," or "]"
		}
		return budget
	}
	return budget - 1 // a number, true, null, …: one byte at least
}

// Key evaluates an ordering key.
func (p *Program) Key(v *Vars) (string, error) {
	out, err := p.eval(v)
	if err != nil {
		return "", err
	}
	s, ok := out.(types.String)
	if !ok {
		return "", fmt.Errorf("%s: gave %s, not a string", p.field, out.Type().TypeName())
	}
	return string(s), nil
}
