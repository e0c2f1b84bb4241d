package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/astra-app/astra/internal/expr"
	"github.com/astra-app/astra/internal/taskdef"
)

// maxSleep caps a sleep step: the executor holds a slot while sleeping.
const maxSleep = 5 * time.Minute

// stepKind returns the kind of a step: the first kind key present.
func stepKind(step map[string]any) string { return taskdef.StepKind(step) }

// frame is the scope a step runs in: its workflow and that workflow's history.
type frame struct {
	x        *executor
	workflow string
	history  []stepRecord
	// current is the input of the workflow step running now: Julep lists
	// it in `steps` too, so step 0 can read steps[0].input.
	current any
	// calls are the workflows called to reach this frame, outermost first
	// (empty in main), for the depth budget.
	calls []string
	// index is the position of the step running now in its workflow.
	index int
}

// vars are the names an expression sees. With shared set, the values the
// execution never changes (step inputs and outputs, the execution input,
// agent, task) are handed over as frozen Starlark values from the run's memo.
func (f *frame) vars(input any, shared bool) map[string]any {
	conv := func(v any) any { return v }
	if shared {
		conv = f.x.mem.starlark
	}
	steps := make([]any, len(f.history), len(f.history)+1)
	inputs := make([]any, 0, len(f.history)+1)
	outputs := make([]any, len(f.history))
	for i, h := range f.history {
		in, out := conv(h.Input), conv(h.Output)
		m := map[string]any{"input": in, "output": out}
		if h.Label != "" {
			m["label"] = h.Label
		}
		steps[i], outputs[i] = m, out
		inputs = append(inputs, in)
	}
	inputs = append(inputs, conv(input))
	steps = append(steps, map[string]any{"input": conv(f.current)})
	f.x.stateMu.Lock()
	state := make(map[string]any, len(f.x.ck.State))
	for k, v := range f.x.ck.State {
		state[k] = v
	}
	f.x.stateMu.Unlock()
	secrets := make(map[string]any, len(f.x.secrets))
	for k, v := range f.x.secrets {
		secrets[k] = v
	}
	return map[string]any{
		"_": conv(input), "steps": steps, "inputs": inputs, "outputs": outputs, "state": state,
		"agent": conv(f.x.agent), "task": conv(f.x.task), "secrets": secrets,
		"execution": map[string]any{"id": f.x.ex.ID, "input": conv(f.x.ex.Input), "metadata": f.x.ex.Metadata},
	}
}

// eval evaluates v (a string, or maps/lists of them) with `_` = input.
func (f *frame) eval(ctx context.Context, v any, input any) (any, error) {
	out, err := expr.EvaluateValue(ctx, v, f.vars(input, true))
	if frozenError(err) {
		// The expression changes a value in place: give it its own copies.
		out, err = expr.EvaluateValue(ctx, v, f.vars(input, false))
	}
	return out, err
}

// step runs one step. path names it uniquely and stably across replays.
func (f *frame) step(ctx context.Context, raw any, input any, path string) (_ any, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if list, ok := raw.([]any); ok { // a branch written as a list of steps
		sub := &frame{x: f.x, workflow: f.workflow, history: slices.Clip(f.history), current: f.current, calls: f.calls}
		return sub.sequence(ctx, list, input, path)
	}
	s, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a step must be a mapping, not %s", typeName(raw))
	}
	if err := f.x.spend(1); err != nil {
		return nil, err
	}
	if h := f.x.e.stepHook.Load(); h != nil {
		(*h)(s)
	}
	kind := stepKind(s)
	ctx, endStep := f.startStep(ctx, path, kind, s)
	defer func() { endStep(err) }()
	switch kind {
	case "prompt":
		return f.prompt(ctx, s, input)
	case "tool":
		return f.tool(ctx, s, input, path)
	case "evaluate":
		m, ok := s["evaluate"].(map[string]any)
		if !ok {
			return nil, errors.New("evaluate: expected a mapping of names to expressions")
		}
		return f.eval(ctx, m, input)
	case "if":
		cond, err := f.eval(ctx, s["if"], input)
		if err != nil {
			return nil, fmt.Errorf("if: %w", err)
		}
		if truthy(cond) {
			return f.branch(ctx, s["then"], input, path+".then", "if_else.then")
		}
		if e, ok := s["else"]; ok && e != nil {
			return f.branch(ctx, e, input, path+".else", "if_else.else")
		}
		// Julep runs EvaluateStep(evaluate={"output": "_"}) for a missing
		// else (workflows/task_execution/helpers.py execute_if_else_branch).
		return f.branch(ctx, implicitElse, input, path+".else", "if_else.else")
	case "switch":
		cases, ok := s["switch"].([]any)
		if !ok {
			return nil, errors.New("switch: expected a list of {case, then}")
		}
		for i, c := range cases {
			cm, _ := c.(map[string]any)
			cs, _ := cm["case"].(string)
			match := strings.TrimSpace(cs) == "_"
			if !match {
				v, err := f.eval(ctx, cm["case"], input)
				if err != nil {
					return nil, fmt.Errorf("switch case %d: %w", i, err)
				}
				match = truthy(v)
			}
			if match {
				// helpers.py execute_switch_branch: a child workflow "...case".
				return f.branch(ctx, cm["then"], input, fmt.Sprintf("%s.case[%d]", path, i), "case")
			}
		}
		return nil, errors.New("switch: no case matched (add a `case: _` default)")
	case "foreach":
		fe, ok := s["foreach"].(map[string]any)
		if !ok {
			return nil, errors.New("foreach: expected {in, do}")
		}
		items, err := f.list(ctx, fe["in"], input, "foreach in", true)
		if err != nil {
			return nil, err
		}
		if err := f.x.reserve("foreach", len(items)); err != nil {
			return nil, err
		}
		out := make([]any, len(items))
		for i, it := range items {
			// helpers.py execute_foreach_step: each item a child workflow.
			if out[i], err = f.branch(ctx, fe["do"], it, fmt.Sprintf("%s.do[%d]", path, i), fmt.Sprintf("foreach[%d]", i)); err != nil {
				return nil, fmt.Errorf("foreach item %d: %w", i, err)
			}
		}
		return out, nil
	case "over":
		return f.mapReduce(ctx, s, input, path)
	case "parallel":
		branches, ok := s["parallel"].([]any)
		if !ok {
			return nil, errors.New("parallel: expected a list of steps")
		}
		return f.concurrently(ctx, len(branches), len(branches), func(ctx context.Context, i int) (any, error) {
			out, err := f.step(ctx, branches[i], input, fmt.Sprintf("%s.parallel[%d]", path, i))
			if err != nil {
				return nil, fmt.Errorf("parallel branch %d: %w", i, err)
			}
			return out, nil
		})
	case "get":
		key, err := f.eval(ctx, s["get"], input)
		if err != nil {
			return nil, fmt.Errorf("get: %w", err)
		}
		f.x.stateMu.Lock()
		defer f.x.stateMu.Unlock()
		return f.x.ck.State[fmt.Sprint(key)], nil
	case "set":
		m, ok := s["set"].(map[string]any)
		if !ok {
			return nil, errors.New("set: expected a mapping of names to expressions")
		}
		v, err := f.eval(ctx, m, input)
		if err != nil {
			return nil, fmt.Errorf("set: %w", err)
		}
		vm, _ := v.(map[string]any)
		f.x.stateMu.Lock()
		for k, val := range vm {
			f.x.ck.State[k] = val
		}
		f.x.stateMu.Unlock()
		return v, nil
	case "log":
		v, err := f.eval(ctx, s["log"], input)
		if err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
		f.x.e.log.Info("engine: task log", "execution_id", f.x.ex.ID, "message", redactValue(v, f.x.secrets))
		// Julep's LogStep outputs its input; the message is only logged
		// (workflows/task_execution/__init__.py _handle_LogStep).
		return input, nil
	case "return":
		v, err := f.eval(ctx, s["return"], input)
		if err != nil {
			return nil, fmt.Errorf("return: %w", err)
		}
		return nil, &returned{Value: v}
	case "sleep":
		return f.sleep(ctx, s["sleep"], input)
	case "wait_for_input":
		if v, ok := f.x.ck.Resumes[path]; ok {
			return v, nil
		}
		w, _ := s["wait_for_input"].(map[string]any)
		info, err := f.eval(ctx, w["info"], input)
		if err != nil {
			return nil, fmt.Errorf("wait_for_input: %w", err)
		}
		// The wait transition's output is the evaluated info itself
		// (activities/task_steps/raise_complete_async.py).
		return nil, &pause{Path: path, Info: info}
	case "workflow", "yield":
		name, args := s["workflow"], s["arguments"]
		if y, ok := s["yield"].(map[string]any); ok {
			name, args = y["workflow"], y["arguments"]
		}
		wf, _ := name.(string)
		steps, ok := f.x.steps(wf)
		if !ok || wf == "" {
			return nil, fmt.Errorf("workflow %q is not defined in the task", wf)
		}
		sub := input
		if args != nil {
			a, err := f.eval(ctx, args, input)
			if err != nil {
				return nil, fmt.Errorf("workflow %q arguments: %w", wf, err)
			}
			sub = a
		}
		calls := append(slices.Clip(f.calls), wf)
		if len(calls) > f.x.e.limits.depth {
			return nil, fmt.Errorf("workflow calls nest deeper than the limit of %d: main -> %s",
				f.x.e.limits.depth, strings.Join(calls, " -> "))
		}
		child := &frame{x: f.x, workflow: wf, calls: calls}
		return f.x.inBranch(ctx, wf, sub, func(ctx context.Context) (any, any, int, error) {
			out, err := child.sequence(ctx, steps, sub, path+"."+wf)
			var last any
			if len(steps) > 0 {
				last = steps[len(steps)-1]
			}
			return out, last, len(steps) - 1, err
		})
	case "error":
		v, err := f.eval(ctx, s["error"], input)
		if err != nil {
			return nil, fmt.Errorf("error: %w", err)
		}
		return nil, fmt.Errorf("error step: %v", v)
	}
	return nil, fmt.Errorf("unknown step kind (keys: %s)", strings.Join(sortedKeys(s), ", "))
}

// sequence runs a list of steps as a workflow: `_` threads through, a
// `return` ends it, and errors name the step.
func (f *frame) sequence(ctx context.Context, steps []any, input any, path string) (any, error) {
	out := input
	for i, raw := range steps {
		sm, _ := raw.(map[string]any)
		label, _ := sm["label"].(string)
		in := out
		f.current, f.index = in, i
		v, err := f.step(ctx, raw, in, fmt.Sprintf("%s.%d", path, i))
		var ret *returned
		if errors.As(err, &ret) {
			return ret.Value, nil
		}
		if err != nil {
			var p *pause
			if errors.As(err, &p) || ctx.Err() != nil {
				return nil, err
			}
			return nil, fmt.Errorf("workflow %q, step %s: %w", f.workflow, stepName(i, label), err)
		}
		f.history = append(f.history, stepRecord{Input: in, Output: v, Label: label})
		out = v
	}
	return out, nil
}

// implicitElse is the step Julep runs for an if without else whose
// condition is false.
var implicitElse = map[string]any{"evaluate": map[string]any{"output": "_"}}

// branch runs the step of an if branch as Julep runs it: a child workflow
// of one step, which writes an init_branch and a finish_branch transition.
func (f *frame) branch(ctx context.Context, raw any, input any, path, name string) (any, error) {
	wf := fmt.Sprintf("`%s`[%d].%s", f.workflow, f.index, name)
	return f.x.inBranch(ctx, wf, input, func(ctx context.Context) (any, any, int, error) {
		out, err := f.step(ctx, raw, input, path)
		return out, raw, 0, err
	})
}

// list evaluates the items of a foreach or map. Python iterates a string's
// characters (chars) and a dict's keys.
func (f *frame) list(ctx context.Context, src any, input any, what string, chars bool) ([]any, error) {
	v, err := f.eval(ctx, src, input)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	switch v := v.(type) {
	case string:
		if chars {
			out := make([]any, 0, len(v))
			for _, r := range v {
				out = append(out, string(r))
			}
			return out, nil
		}
	case []any:
		return v, nil
	case nil:
		return nil, nil
	case map[string]any:
		keys := sortedKeys(v)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = k
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: expected a list, got %s", what, typeName(v))
}

func (f *frame) mapReduce(ctx context.Context, s map[string]any, input any, path string) (any, error) {
	items, err := f.list(ctx, s["over"], input, "map-reduce over", true)
	if err != nil {
		return nil, err
	}
	if err := f.x.reserve("map", len(items)); err != nil {
		return nil, err
	}
	par := 1
	if p, ok := toFloat(s["parallelism"]); ok && p > 1 {
		par = int(min(p, 100))
	}
	outs, err := f.concurrently(ctx, len(items), par, func(ctx context.Context, i int) (any, error) {
		// helpers.py execute_map_reduce_step: each item a child workflow.
		out, err := f.branch(ctx, s["map"], items[i], fmt.Sprintf("%s.map[%d]", path, i), fmt.Sprintf("mapreduce[%d]", i))
		if err != nil {
			return nil, fmt.Errorf("map item %d: %w", i, err)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	red, _ := s["reduce"].(string)
	if strings.TrimSpace(red) == "" {
		return outs, nil
	}
	var acc any = []any{}
	if init, ok := s["initial"]; ok && init != nil {
		if acc, err = f.eval(ctx, init, input); err != nil {
			return nil, fmt.Errorf("map-reduce initial: %w", err)
		}
	}
	src := red
	if !strings.HasPrefix(strings.TrimSpace(red), "$") {
		// reduce is always an expression in Julep, whatever its legacy form.
		src = "$ " + strings.TrimSpace(red)
	}
	prog, err := expr.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("map-reduce reduce: %w", err)
	}
	for i, o := range outs {
		vars := f.vars(o, true)
		vars["results"] = acc
		next, err := prog.Eval(ctx, vars)
		if frozenError(err) {
			vars = f.vars(o, false)
			vars["results"] = acc
			next, err = prog.Eval(ctx, vars)
		}
		if acc = next; err != nil {
			return nil, fmt.Errorf("map-reduce reduce (item %d): %w", i, err)
		}
	}
	return acc, nil
}

// protect runs fn(ctx, i), turning a panic into an error: a panic in a
// goroutine of its own cannot be recovered by the execution's goroutine.
func (x *executor) protect(ctx context.Context, i int, fn func(context.Context, int) (any, error)) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			x.e.log.Error("engine: step panicked", "execution_id", x.ex.ID, "panic", p, "stack", string(debug.Stack()))
			v, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(ctx, i)
}

// concurrently runs fn for 0..n-1 with at most par at once and returns the
// outputs in order. The first error (a pause counts) cancels the rest.
func (f *frame) concurrently(ctx context.Context, n, par int, fn func(context.Context, int) (any, error)) ([]any, error) {
	out := make([]any, n)
	if par <= 1 {
		for i := range n {
			v, err := fn(ctx, i)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, par)
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			v, err := f.x.protect(ctx, i, fn)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				return
			}
			out[i] = v
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (f *frame) sleep(ctx context.Context, spec any, input any) (any, error) {
	v, err := f.eval(ctx, spec, input)
	if err != nil {
		return nil, fmt.Errorf("sleep: %w", err)
	}
	var d time.Duration
	switch v := v.(type) {
	case map[string]any:
		units := map[string]time.Duration{"seconds": time.Second, "minutes": time.Minute, "hours": time.Hour, "days": 24 * time.Hour}
		for k, val := range v {
			u, ok := units[k]
			n, isNum := toFloat(val)
			if !ok || !isNum || n < 0 {
				return nil, fmt.Errorf("sleep: %q must be one of seconds, minutes, hours, days with a number >= 0", k)
			}
			d += time.Duration(n * float64(u))
		}
	default:
		n, ok := toFloat(v)
		if !ok || n < 0 {
			return nil, fmt.Errorf("sleep: expected {seconds|minutes|hours|days: n}, got %s", typeName(v))
		}
		d = time.Duration(n * float64(time.Second))
	}
	d = min(d, maxSleep)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return input, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// truthy is Python's truth value of a JSON-like value.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	if n, ok := toFloat(v); ok {
		return n != 0 && !math.IsNaN(n)
	}
	return true
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	if _, ok := toFloat(v); ok {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
