package expr

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.starlark.net/starlark"

	"github.com/astra-app/astra/internal/responder"
)

// limits bound one evaluation.
type limits struct {
	timeout  time.Duration // Julep: 1 s
	maxSteps uint64        // Starlark interpreter steps (0: unlimited)
	maxAlloc int64         // bytes charged by helpers that build values
}

var defaultLimits = limits{timeout: time.Second, maxSteps: 5_000_000, maxAlloc: 64 << 20}

// Program is a compiled task string. It is immutable and safe for concurrent use.
type Program struct {
	src string
	c   *compiled
}

// Source returns the task string the program was compiled from.
func (p *Program) Source() string { return p.src }

// IsExpression reports whether the program is a `$ ` expression (after the
// legacy rules) rather than an f-string template.
func (p *Program) IsExpression() bool { return IsExpression(p.src) }

// Check reports whether the task string s compiles. The error is one line and
// says what is wrong and where, e.g.
// `expression "$ _.x +": unexpected end of expression at column 8`.
func Check(s string) error {
	_, err := Compile(s)
	return err
}

// Compile compiles a task string: a `$ ` expression, or any other string as a
// Python f-string, after Julep's legacy rules. Results are cached.
func Compile(s string) (*Program, error) {
	if p := cache.get(s); p != nil {
		return p, nil
	}
	c, err := compileSafely(s)
	if err != nil {
		return nil, compileError(s, err)
	}
	p := &Program{src: s, c: c}
	cache.put(s, p)
	return p, nil
}

func compileSafely(s string) (c *compiled, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, &syntaxError{pos: 0, msg: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	return compileString(s)
}

func compileError(s string, err error) error {
	kind := "template"
	if IsExpression(s) {
		kind = "expression"
	}
	var se *syntaxError
	if errors.As(err, &se) {
		return responder.Errorf(responder.EINVALID, "%s %s: %s at %s", kind, quoteShort(s), se.msg, describePos(s, se.pos))
	}
	return responder.Errorf(responder.EINVALID, "%s %s: %v", kind, quoteShort(s), err)
}

// quoteShort quotes s for an error message, shortened to keep it one line.
func quoteShort(s string) string {
	const max = 80
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// Evaluate compiles (cached) and evaluates s.
func Evaluate(ctx context.Context, s string, vars map[string]any) (any, error) {
	p, err := Compile(s)
	if err != nil {
		return nil, err
	}
	return p.Eval(ctx, vars)
}

// EvaluateValue evaluates every string inside v (recursing through
// map[string]any and []any) and returns a new value of the same shape. Other
// values are returned unchanged. Errors name the path of the failing string.
func EvaluateValue(ctx context.Context, v any, vars map[string]any) (any, error) {
	return evaluateValue(ctx, v, vars, "")
}

func evaluateValue(ctx context.Context, v any, vars map[string]any, path string) (any, error) {
	switch x := v.(type) {
	case string:
		out, err := Evaluate(ctx, x, vars)
		if err != nil && path != "" {
			var re *responder.Error
			if errors.As(err, &re) {
				return nil, responder.Errorf(re.Code, "%s: %s", path, re.Message)
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return out, err
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			e, err := evaluateValue(ctx, x[k], vars, joinPath(path, k))
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := evaluateValue(ctx, e, vars, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Eval evaluates the program with vars as its names (`_`, `steps`, `inputs`,
// `state`, `agent`, `secrets`, ...). vars hold JSON-like Go values; the result
// is one too. Evaluation is bounded in time (1 s, or ctx's deadline if
// sooner), interpreter steps and memory.
func (p *Program) Eval(ctx context.Context, vars map[string]any) (any, error) {
	return p.eval(ctx, vars, defaultLimits)
}

func (p *Program) eval(ctx context.Context, vars map[string]any, lim limits) (result any, err error) {
	if p.c.literal != nil {
		return *p.c.literal, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", quoteShort(p.src), err)
	}
	secrets := secretsOf(vars)
	defer func() {
		if r := recover(); r != nil {
			result, err = nil, p.runtimeError(fmt.Sprintf("internal error: %v", r), -1, secrets)
		}
	}()

	predeclared := make(starlark.StringDict, len(p.c.names))
	for _, name := range p.c.names {
		if v, ok := vars[name]; ok {
			sv, err := toStarlark(v, 0)
			if err != nil {
				return nil, p.runtimeError(fmt.Sprintf("variable %s: %v", name, err), -1, secrets)
			}
			if l, ok := sv.(*starlark.List); ok {
				switch name {
				case "steps":
					sv = &stepList{list: l}
				case "inputs", "outputs":
					// Julep's inputs and outputs are dicts keyed by step
					// index and label (prepare_for_step).
					if labels := stepLabels(vars["steps"]); len(labels) > 0 {
						sv = &stepList{list: l, labels: labels, name: name}
					}
				}
			}
			predeclared[name] = sv
		} else if b, ok := builtins[name]; ok {
			predeclared[name] = b
		}
		// Missing names fail only if evaluation reaches them, as in Python.
	}

	thread := &starlark.Thread{Name: "expr"}
	if lim.maxSteps > 0 {
		thread.SetMaxExecutionSteps(lim.maxSteps)
	}
	bud := &budget{limit: lim.maxAlloc}
	thread.SetLocal(budgetKey, bud)
	var timedOut atomic.Bool
	// The interpreter notices Cancel between steps; bud.cancelled reaches
	// the loops inside builtins.
	timer := time.AfterFunc(lim.timeout, func() {
		timedOut.Store(true)
		bud.cancelled.Store(true)
		thread.Cancel("timeout")
	})
	stop := context.AfterFunc(ctx, func() {
		bud.cancelled.Store(true)
		thread.Cancel("context done")
	})
	globals, err := p.c.prog.Init(thread, predeclared)
	timer.Stop()
	stop()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("evaluate %s: %w", quoteShort(p.src), ctxErr)
		}
		if timedOut.Load() {
			return nil, p.runtimeError(fmt.Sprintf("timed out after %s", lim.timeout), -1, secrets)
		}
		return nil, p.evalError(err, secrets)
	}
	out, err := fromStarlark(globals[resultName], bud)
	if err != nil {
		if timedOut.Load() {
			return nil, p.runtimeError(fmt.Sprintf("timed out after %s", lim.timeout), -1, secrets)
		}
		return nil, p.runtimeError(err.Error(), -1, secrets)
	}
	return out, nil
}

func (p *Program) evalError(err error, secrets map[string]string) error {
	msg := err.Error()
	pos := -1
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		msg = ee.Msg
		for i := len(ee.CallStack) - 1; i >= 0; i-- {
			fr := ee.CallStack[i]
			if fr.Pos.Line > 0 && fr.Pos.Filename() == "expr" {
				pos = p.c.em.origPos(colToOffset(p.c.em.b.String(), int(fr.Pos.Col)))
				break
			}
		}
	}
	switch {
	case strings.Contains(msg, "too many steps"):
		msg = "expression exceeded its step budget"
	case strings.HasPrefix(msg, "internal error: predeclared variable ") && strings.HasSuffix(msg, " is uninitialized"):
		name := strings.TrimSuffix(strings.TrimPrefix(msg, "internal error: predeclared variable "), " is uninitialized")
		msg = fmt.Sprintf("name '%s' is not defined", name)
	case strings.Contains(msg, "floating-point division by zero"), strings.Contains(msg, "integer division by zero"), strings.Contains(msg, "integer modulo by zero"):
		msg = "division by zero"
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	return p.runtimeError(msg, pos, secrets)
}

func (p *Program) runtimeError(msg string, pos int, secrets map[string]string) error {
	where := ""
	if pos >= 0 && len(p.src) > 40 {
		where = " at " + describePos(p.src, pos)
	}
	return responder.Errorf(responder.EINVALID, "evaluate %s: %s%s", quoteShort(p.src), Redact(msg, secrets), where)
}

func secretsOf(vars map[string]any) map[string]string {
	switch s := vars["secrets"].(type) {
	case map[string]string:
		return s
	case map[string]any:
		out := make(map[string]string, len(s))
		for k, v := range s {
			if str, ok := v.(string); ok {
				out[k] = str
			}
		}
		return out
	}
	return nil
}

// Redact replaces every secret value occurring in s with "[redacted]".
// Longer secrets are replaced first so a secret containing another is
// redacted whole.
func Redact(s string, secrets map[string]string) string {
	if len(secrets) == 0 || s == "" {
		return s
	}
	vals := make([]string, 0, len(secrets))
	for _, v := range secrets {
		if v != "" && strings.Contains(s, v) {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return s
	}
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, "[redacted]")
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// ---- compiled-program cache ----

const (
	cacheMaxEntries = 4096
	cacheMaxBytes   = 32 << 20 // sum of source lengths
	cacheMaxSource  = 256 << 10
)

type lru struct {
	mu    sync.Mutex
	ll    *list.List
	items map[string]*list.Element
	bytes int
}

var cache = &lru{ll: list.New(), items: map[string]*list.Element{}}

func (c *lru) get(s string) *Program {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[s]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*Program)
	}
	return nil
}

func (c *lru) put(s string, p *Program) {
	if len(s) > cacheMaxSource {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[s]; ok {
		return
	}
	c.items[s] = c.ll.PushFront(p)
	c.bytes += len(s)
	for c.ll.Len() > cacheMaxEntries || c.bytes > cacheMaxBytes {
		e := c.ll.Back()
		old := e.Value.(*Program)
		c.ll.Remove(e)
		delete(c.items, old.src)
		c.bytes -= len(old.src)
	}
}
