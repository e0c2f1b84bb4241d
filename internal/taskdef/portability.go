package taskdef

import (
	"sort"
	"strings"

	"github.com/astra-app/astra/internal/engine/integrations"
	"github.com/astra-app/astra/internal/expr"
)

// TypePortability marks a warning about a construct the embedded engine
// accepts but Julep v1 itself would refuse.
const TypePortability = "portability"

// portabilityIssues walks a task the way Julep v1's create-time validator
// does (common/utils/task_validation.py, _validate_step_expressions) and
// warns about every expression real Julep would refuse: at create where
// Julep checks (evaluate, set and return values that start with "$" or "_"
// or hold "{{", if conditions, foreach.in, and the steps nested in if and
// foreach), and at run time everywhere else (prompts, tool and workflow
// arguments, log, switch cases, map-reduce...), where Julep's evaluator has
// the same names. The engine runs both; these are warnings.
func portabilityIssues(def map[string]any) []Issue {
	p := &porter{}
	// An integration provider the engine does not have: the engine refuses
	// the task at create, so this is an error, not a warning.
	tools, _ := def["tools"].([]any)
	for i, t := range tools {
		tm, _ := t.(map[string]any)
		in, ok := tm["integration"].(map[string]any)
		if !ok {
			continue
		}
		prov, _ := in["provider"].(string)
		method, _ := in["method"].(string)
		if err := integrations.Check(prov, method); err != nil {
			path := joinKey(joinIndex("tools", i), "integration.provider")
			p.issues = append(p.issues, Issue{Path: path, Location: path, Severity: SeverityError, Type: TypeReference, Message: err.Error()})
		}
	}
	keys := make([]string, 0, len(def))
	for k := range def {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices := def[k]; k == "main" || !isTopLevel(k) {
			if steps, ok := slices.([]any); ok {
				for i, s := range steps {
					p.step(joinIndex(k, i), s)
				}
			}
		}
	}
	return p.issues
}

func isTopLevel(k string) bool {
	for _, t := range topLevel {
		if t == k {
			return true
		}
	}
	return false
}

type porter struct {
	issues []Issue
}

// julepChecks is the test Julep applies to a value before checking it at
// create: it must look like an expression.
func julepChecks(s string) bool {
	t := strings.TrimSpace(s)
	return strings.HasPrefix(t, "$") || strings.HasPrefix(t, "_") || strings.Contains(s, "{{")
}

func (p *porter) check(path, s string, atCreate bool) {
	refusals, when := expr.JulepRefusals, "Julep v1 refuses this task at create"
	if !atCreate {
		refusals, when = expr.JulepRuntimeRefusals, "Julep v1 fails here at run time"
	}
	for _, m := range refusals(s) {
		if strings.HasPrefix(m, "Syntax error:") {
			continue // the expression check reports it already
		}
		if m == "Undefined name: 'results'" && strings.HasSuffix(path, ".reduce") {
			continue // Julep's map-reduce gives its reduce `results` and `_`
		}
		p.issues = append(p.issues, Issue{Path: path, Location: path, Severity: SeverityWarning, Type: TypePortability,
			Message: when + ": " + m})
	}
}

// runtime warns about every string under v as evaluated at run time.
func (p *porter) runtime(path string, v any) {
	switch v := v.(type) {
	case string:
		p.check(path, v, false)
	case []any:
		for i, x := range v {
			p.runtime(joinIndex(path, i), x)
		}
	case map[string]any:
		for _, k := range sortedMapKeys(v) {
			p.runtime(joinKey(path, k), v[k])
		}
	}
}

func sortedMapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (p *porter) body(path string, v any) {
	if list, ok := v.([]any); ok {
		for i, s := range list {
			p.step(joinIndex(path, i), s)
		}
		return
	}
	p.step(path, v)
}

func (p *porter) step(path string, v any) {
	step, ok := v.(map[string]any)
	if !ok {
		return
	}
	kind := ""
	for _, k := range stepKinds {
		if _, ok := step[k]; ok {
			kind = k
			break
		}
	}
	if _, ok := step["over"]; ok {
		kind = "over"
	}
	switch kind {
	case "evaluate", "set", "return":
		m, _ := step[kind].(map[string]any)
		for _, k := range sortedMapKeys(m) {
			sp := joinKey(joinKey(path, kind), k)
			if s, ok := m[k].(string); ok && julepChecks(s) {
				p.check(sp, s, true)
			} else {
				p.runtime(sp, m[k])
			}
		}
	case "if":
		if s, ok := step["if"].(string); ok {
			p.check(joinKey(path, "if"), s, true)
		}
		p.body(joinKey(path, "then"), step["then"])
		if e, ok := step["else"]; ok {
			p.body(joinKey(path, "else"), e)
		}
	case "foreach":
		fe, _ := step["foreach"].(map[string]any)
		if s, ok := fe["in"].(string); ok {
			p.check(joinKey(path, "foreach.in"), s, julepChecks(s))
		}
		p.body(joinKey(path, "foreach.do"), fe["do"])
	case "switch":
		cases, _ := step["switch"].([]any)
		for i, c := range cases {
			cm, _ := c.(map[string]any)
			cp := joinIndex(joinKey(path, "switch"), i)
			if s, ok := cm["case"].(string); ok && strings.TrimSpace(s) != "_" {
				p.check(joinKey(cp, "case"), s, false)
			}
			p.body(joinKey(cp, "then"), cm["then"])
		}
	case "over":
		p.runtime(joinKey(path, "over"), step["over"])
		p.body(joinKey(path, "map"), step["map"])
		if r, ok := step["reduce"].(string); ok {
			src := strings.TrimSpace(r)
			if !strings.HasPrefix(src, "$") {
				src = "$ " + src // Julep's reduce is always an expression
			}
			p.check(joinKey(path, "reduce"), src, false)
		}
		p.runtime(joinKey(path, "initial"), step["initial"])
	case "parallel":
		list, _ := step["parallel"].([]any)
		for i, b := range list {
			p.body(joinIndex(joinKey(path, "parallel"), i), b)
		}
	case "tool", "workflow":
		p.runtime(joinKey(path, "arguments"), step["arguments"])
	case "yield":
		y, _ := step["yield"].(map[string]any)
		p.runtime(joinKey(path, "yield.arguments"), y["arguments"])
	case "get", "sleep", "":
	default: // prompt, log, error, wait_for_input
		p.runtime(joinKey(path, kind), step[kind])
	}
}
