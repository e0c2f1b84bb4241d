package taskdef

import (
	"fmt"
	"sort"
	"strings"
)

// structuralIssues are the checks the embedded engine's executor relies on
// (shapes it reads, tools and workflows it resolves; expressions are the
// checker's, everywhere), run with the checker's
// on every task: by `astra tasks validate`, before push, and by the engine at
// create, so all three refuse the same tasks.
func structuralIssues(def map[string]any) []Issue {
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
	return v.issues
}

func isWorkflow(list []any) bool {
	if len(list) == 0 {
		return false
	}
	for _, s := range list {
		m, ok := s.(map[string]any)
		if !ok || StepKind(m) == "" {
			return false
		}
	}
	return true
}

type validator struct {
	def    map[string]any
	tools  map[string]bool
	issues []Issue
}

func (v *validator) add(loc, msg, typ string) {
	v.issues = append(v.issues, Issue{Path: loc, Location: loc, Message: msg, Severity: SeverityError, Type: typ})
}

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
	kind := StepKind(s)
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
	case "evaluate", "set":
		if _, ok := s[kind].(map[string]any); !ok {
			v.add(loc+"."+kind, kind+" must be a mapping of names to expressions", "schema")
		}
	case "if":
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
			v.body(cl+".then", cm["then"])
		}
	case "foreach":
		fe, ok := s["foreach"].(map[string]any)
		if !ok {
			v.add(loc+".foreach", "foreach must be {in, do}", "schema")
			return
		}
		v.body(loc+".foreach.do", fe["do"])
	case "over":
		v.body(loc+".map", s["map"])
	case "parallel":
		list, ok := s["parallel"].([]any)
		if !ok || len(list) == 0 {
			v.add(loc+".parallel", "parallel must be a list of steps", "schema")
		}
		for i, b := range list {
			v.body(fmt.Sprintf("%s.parallel[%d]", loc, i), b)
		}
	case "get", "log", "error", "return", "sleep":
	case "wait_for_input":
		if _, ok := s["wait_for_input"].(map[string]any); !ok {
			v.add(loc+".wait_for_input", "wait_for_input must be {info: ...}", "schema")
		}
	case "workflow", "yield":
		name := s["workflow"]
		if y, ok := s["yield"].(map[string]any); ok {
			name = y["workflow"]
		}
		wf, _ := name.(string)
		if list, ok := v.def[wf].([]any); !ok || wf == "" || wf == "tools" || !isWorkflow(list) && len(list) > 0 {
			v.add(loc+"."+kind, fmt.Sprintf("workflow %q is not defined in the task", wf), "reference")
		}
	}
}

// engineStepKinds are the keys that name a step's kind, in the order the
// engine's executor detects them.
var engineStepKinds = []string{"prompt", "tool", "evaluate", "if", "switch", "foreach", "over", "map", "parallel",
	"get", "set", "log", "return", "sleep", "wait_for_input", "workflow", "yield", "error"}

// StepKind is a step's kind as the engine's executor reads it: the first
// kind key present ("map" is an "over" step); "" when none is.
func StepKind(step map[string]any) string {
	for _, k := range engineStepKinds {
		if _, ok := step[k]; ok {
			if k == "map" {
				return "over"
			}
			return k
		}
	}
	return ""
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
