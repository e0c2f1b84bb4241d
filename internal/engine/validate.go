package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/astra-app/astra/internal/engine/integrations"
	"github.com/astra-app/astra/internal/expr"
	"github.com/astra-app/astra/internal/taskdef"
)

// issue is one problem in a task definition, as Julep reports it.
type issue struct {
	Location string
	Message  string
	Severity string
	Type     string
}

// checkTask is the check at task create: taskdef's (the same rules `astra
// tasks validate` applies) plus the engine's own structural checks, which
// guard what the executor relies on. Warnings do not refuse a task.
func checkTask(def map[string]any) []issue {
	var out []issue
	seen := map[string]bool{}
	for _, is := range taskdef.ValidateDefinition(def) {
		if is.Severity == taskdef.SeverityWarning {
			continue
		}
		out = append(out, issue{Location: is.Location, Message: is.Message, Severity: is.Severity, Type: is.Type})
		seen[is.Location] = true
	}
	for _, is := range validateDefinition(def) {
		if !seen[is.Location] {
			out = append(out, is)
		}
	}
	return out
}

// validateDefinition is the engine's check of a task definition at create:
// structure, step kinds, references to tools and workflows, and every
// expression's syntax. It is deliberately the engine's own, small and strict
// about what the executor needs.
func validateDefinition(def map[string]any) []issue {
	v := &validator{def: def, tools: map[string]bool{}}
	if n, ok := def["name"].(string); !ok || strings.TrimSpace(n) == "" {
		v.add("name", "name is required", "schema")
	}
	if tools, ok := def["tools"].([]any); ok {
		for i, t := range tools {
			tm, ok := t.(map[string]any)
			if !ok {
				v.add(fmt.Sprintf("tools[%d]", i), "a tool must be a mapping", "schema")
				continue
			}
			name, _ := tm["name"].(string)
			if fn, ok := tm["function"].(map[string]any); ok && name == "" {
				name, _ = fn["name"].(string)
			}
			if name == "" {
				v.add(fmt.Sprintf("tools[%d].name", i), "a tool needs a name", "schema")
			}
			if in, ok := tm["integration"].(map[string]any); ok {
				// Refused here, never at run time: a provider the engine lacks.
				prov, _ := in["provider"].(string)
				method, _ := in["method"].(string)
				if err := integrations.Check(prov, method); err != nil {
					v.add(fmt.Sprintf("tools[%d].integration.provider", i), err.Error(), "reference")
				}
			}
			v.tools[name] = true
		}
	} else if def["tools"] != nil {
		v.add("tools", "tools must be a list", "schema")
	}
	main, ok := def["main"].([]any)
	if !ok || len(main) == 0 {
		v.add("main", "main must be a list of at least one step", "schema")
	}
	for _, k := range sortedKeys(def) {
		if list, ok := def[k].([]any); ok && (k == "main" || isWorkflow(list)) && k != "tools" {
			for i, s := range list {
				v.step(fmt.Sprintf("%s[%d]", k, i), s)
			}
		}
	}
	sort.SliceStable(v.issues, func(i, j int) bool { return v.issues[i].Location < v.issues[j].Location })
	return v.issues
}

func isWorkflow(list []any) bool {
	if len(list) == 0 {
		return false
	}
	for _, s := range list {
		m, ok := s.(map[string]any)
		if !ok || stepKind(m) == "" {
			return false
		}
	}
	return true
}

type validator struct {
	def    map[string]any
	tools  map[string]bool
	issues []issue
}

func (v *validator) add(loc, msg, typ string) {
	v.issues = append(v.issues, issue{Location: loc, Message: msg, Severity: "error", Type: typ})
}

// engineVars are the names the executor gives every expression (frame.vars).
var engineVars = map[string]bool{"_": true, "steps": true, "inputs": true, "outputs": true, "state": true,
	"agent": true, "task": true, "secrets": true, "execution": true}

// checked reports whether Julep v1 checks the value s at create
// (task_validation.py: evaluate, set and return values that start with
// "$" or "_" or hold "{{").
func checked(s string) bool {
	t := strings.TrimSpace(s)
	return strings.HasPrefix(t, "$") || strings.HasPrefix(t, "_") || strings.Contains(s, "{{")
}

// julepExpr checks a string where Julep v1 checks expressions at create:
// its syntax, and names that neither Julep nor the engine has (Julep
// refuses those at create; the engine would fail at run time). Names only
// the engine has (sorted, agent...) are accepted: `astra tasks validate`
// warns about them.
func (v *validator) julepExpr(loc string, x any) {
	s, ok := x.(string)
	if !ok {
		return
	}
	if err := expr.Check(s); err != nil {
		v.add(loc, err.Error(), "expression")
		return
	}
	if !expr.IsExpression(s) {
		return
	}
	for _, n := range expr.UndefinedNames(s, engineVars) {
		v.add(loc, fmt.Sprintf("Undefined name: '%s'", n), "expression")
	}
}

// runtimeExprs is for values Julep v1 does not check at create (prompts,
// tool and workflow arguments, log, switch cases...): it accepts the task
// and fails when the execution reaches a bad one, and so does the engine.
func (v *validator) runtimeExprs(string, any) {}

func (v *validator) body(loc string, x any) {
	if x == nil {
		v.add(loc, "a step is required here", "schema")
		return
	}
	if list, ok := x.([]any); ok {
		for i, s := range list {
			v.step(fmt.Sprintf("%s[%d]", loc, i), s)
		}
		return
	}
	v.step(loc, x)
}

func (v *validator) step(loc string, raw any) {
	s, ok := raw.(map[string]any)
	if !ok {
		v.add(loc, "a step must be a mapping", "schema")
		return
	}
	kind := stepKind(s)
	if kind == "" {
		v.add(loc, fmt.Sprintf("unknown step: none of its keys (%s) names a step kind", strings.Join(sortedKeys(s), ", ")), "schema")
		return
	}
	if l, ok := s["label"]; ok {
		if _, isStr := l.(string); !isStr {
			v.add(loc+".label", "label must be a string", "schema")
		}
	}
	switch kind {
	case "prompt":
		switch s["prompt"].(type) {
		case string, []any:
			v.runtimeExprs(loc+".prompt", s["prompt"])
		default:
			v.add(loc+".prompt", "prompt must be a string or a list of messages", "schema")
		}
	case "tool":
		name, _ := s["tool"].(string)
		if tm, ok := s["tool"].(map[string]any); ok {
			name, _ = tm["name"].(string)
		}
		if !v.tools[name] {
			v.add(loc+".tool", fmt.Sprintf("tool %q is not defined in the task's tools", name), "reference")
		}
		v.runtimeExprs(loc+".arguments", s["arguments"])
	case "evaluate", "set":
		m, ok := s[kind].(map[string]any)
		if !ok {
			v.add(loc+"."+kind, kind+" must be a mapping of names to expressions", "schema")
		}
		for _, k := range sortedKeys(m) {
			if str, ok := m[k].(string); ok && checked(str) {
				v.julepExpr(loc+"."+kind+"."+k, str)
			}
		}
	case "if":
		v.julepExpr(loc+".if", s["if"])
		v.body(loc+".then", s["then"])
		if e, ok := s["else"]; ok && e != nil {
			v.body(loc+".else", e)
		}
	case "switch":
		cases, ok := s["switch"].([]any)
		if !ok || len(cases) == 0 {
			v.add(loc+".switch", "switch must be a list of {case, then}", "schema")
		}
		for i, c := range cases {
			cl := fmt.Sprintf("%s.switch[%d]", loc, i)
			cm, ok := c.(map[string]any)
			if !ok {
				v.add(cl, "a case must be {case, then}", "schema")
				continue
			}
			if cs, _ := cm["case"].(string); strings.TrimSpace(cs) != "_" {
				v.runtimeExprs(cl+".case", cm["case"])
			}
			v.body(cl+".then", cm["then"])
		}
	case "foreach":
		fe, ok := s["foreach"].(map[string]any)
		if !ok {
			v.add(loc+".foreach", "foreach must be {in, do}", "schema")
			return
		}
		v.julepExpr(loc+".foreach.in", fe["in"])
		v.body(loc+".foreach.do", fe["do"])
	case "over":
		v.runtimeExprs(loc+".over", s["over"])
		v.body(loc+".map", s["map"])
		v.runtimeExprs(loc+".reduce", s["reduce"])
	case "parallel":
		list, ok := s["parallel"].([]any)
		if !ok || len(list) == 0 {
			v.add(loc+".parallel", "parallel must be a list of steps", "schema")
		}
		for i, b := range list {
			v.body(fmt.Sprintf("%s.parallel[%d]", loc, i), b)
		}
	case "return":
		if m, ok := s[kind].(map[string]any); ok {
			for _, k := range sortedKeys(m) {
				if str, ok := m[k].(string); ok && checked(str) {
					v.julepExpr(loc+"."+kind+"."+k, str)
				}
			}
		}
	case "get", "log", "error", "sleep":
		v.runtimeExprs(loc+"."+kind, s[kind])
	case "wait_for_input":
		w, ok := s["wait_for_input"].(map[string]any)
		if !ok {
			v.add(loc+".wait_for_input", "wait_for_input must be {info: ...}", "schema")
		}
		v.runtimeExprs(loc+".wait_for_input.info", w["info"])
	case "workflow", "yield":
		name := s["workflow"]
		args := s["arguments"]
		if y, ok := s["yield"].(map[string]any); ok {
			name, args = y["workflow"], y["arguments"]
		}
		wf, _ := name.(string)
		if list, ok := v.def[wf].([]any); !ok || wf == "" || wf == "tools" || !isWorkflow(list) && len(list) > 0 {
			v.add(loc+"."+kind, fmt.Sprintf("workflow %q is not defined in the task", wf), "reference")
		}
		v.runtimeExprs(loc+".arguments", args)
	}
}
