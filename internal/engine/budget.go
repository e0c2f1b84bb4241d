package engine

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// errOutOfTime is the cause that ends a run's steps when the execution has
// used its MaxDuration.
var errOutOfTime = errors.New("engine: execution out of time")

// spend counts n steps against the execution's step budget.
func (x *executor) spend(n int) error {
	used := x.stepsRun.Add(int64(n))
	if used > int64(x.e.limits.steps) {
		return fmt.Errorf("the execution ran more than its limit of %d steps", x.e.limits.steps)
	}
	return nil
}

// reserve refuses a foreach or map of n items that cannot finish within
// the step budget, before any item runs.
func (x *executor) reserve(what string, n int) error {
	used := x.stepsRun.Load()
	if used+int64(n) > int64(x.e.limits.steps) {
		return fmt.Errorf("%s over %d items would pass the limit of %d steps per execution (%d used)",
			what, n, x.e.limits.steps, used)
	}
	return nil
}

// spent is the running time the execution has used, this run included.
func (x *executor) spent() time.Duration {
	return time.Duration(x.ck.RunNanos) + time.Since(x.runStart)
}

// checkOutput fails a step whose output is larger than MaxStepOutput once
// encoded, the size the checkpoint and its transition will carry.
func (x *executor) checkOutput(out any) error {
	raw, err := x.mem.json(out)
	if err != nil {
		return fmt.Errorf("encode step output: %w", err)
	}
	if len(raw) > x.e.limits.output {
		return fmt.Errorf("step output is %s; the limit is %s", byteSize(len(raw)), byteSize(x.e.limits.output))
	}
	return nil
}

// byteSize writes n bytes the way people read sizes: "3.1 MB", "2 MB".
func byteSize(n int) string {
	unit, name := 1, "bytes"
	switch {
	case n >= 1<<20:
		unit, name = 1<<20, "MB"
	case n >= 1<<10:
		unit, name = 1<<10, "KB"
	}
	s := strconv.FormatFloat(float64(n)/float64(unit), 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + " " + name
}

// workflowCycle finds a cycle among the `workflow:` references of a task's
// workflows and returns it as names ("loop", "loop"), or nil. Such a task
// can only recurse until a budget stops it, so it is refused at create.
func workflowCycle(def map[string]any) []string {
	graph := map[string][]string{}
	for name, v := range def {
		list, ok := v.([]any)
		if !ok || (name != "main" && !isWorkflow(list)) {
			continue
		}
		seen := map[string]bool{}
		var calls []string
		for _, s := range list {
			walkCalls(s, func(to string) {
				if !seen[to] {
					seen[to] = true
					calls = append(calls, to)
				}
			})
		}
		sort.Strings(calls)
		graph[name] = calls
	}
	names := make([]string, 0, len(graph))
	for n := range graph {
		names = append(names, n)
	}
	sort.Strings(names)
	const (
		unseen = iota
		onPath
		done
	)
	color := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		color[n] = onPath
		path = append(path, n)
		for _, m := range graph[n] {
			if _, ok := graph[m]; !ok {
				continue // undefined: reported by the validator
			}
			switch color[m] {
			case onPath:
				i := len(path) - 1
				for path[i] != m {
					i--
				}
				return append(append([]string{}, path[i:]...), m)
			case unseen:
				if c := visit(m); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		color[n] = done
		return nil
	}
	for _, n := range names {
		if color[n] == unseen {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// walkCalls calls fn with the workflow each `workflow:` or `yield:` step
// inside a step (or a list of steps) names, through every nested body.
func walkCalls(raw any, fn func(string)) {
	if list, ok := raw.([]any); ok {
		for _, s := range list {
			walkCalls(s, fn)
		}
		return
	}
	s, ok := raw.(map[string]any)
	if !ok {
		return
	}
	switch stepKind(s) {
	case "workflow":
		if n, ok := s["workflow"].(string); ok {
			fn(n)
		}
	case "yield":
		if y, ok := s["yield"].(map[string]any); ok {
			if n, ok := y["workflow"].(string); ok {
				fn(n)
			}
		}
	case "if":
		walkCalls(s["then"], fn)
		walkCalls(s["else"], fn)
	case "switch":
		cases, _ := s["switch"].([]any)
		for _, c := range cases {
			if cm, ok := c.(map[string]any); ok {
				walkCalls(cm["then"], fn)
			}
		}
	case "foreach":
		if fe, ok := s["foreach"].(map[string]any); ok {
			walkCalls(fe["do"], fn)
		}
	case "over":
		walkCalls(s["map"], fn)
	case "parallel":
		walkCalls(s["parallel"], fn)
	}
}
