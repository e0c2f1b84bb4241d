package taskdef

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// stepKinds are the keys that name a step's kind, in Julep's v1 task
// language. A map-reduce step is named by "over" and "map" together.
var stepKinds = []string{
	"prompt", "tool", "evaluate", "if", "switch", "foreach", "over", "parallel",
	"get", "set", "log", "return", "sleep", "wait_for_input", "workflow", "error",
}

// stepExtras are the other keys each kind uses; "label" is allowed on all.
var stepExtras = map[string][]string{
	"prompt":   {"settings", "unwrap", "tools", "tool_choice", "auto_run_tools", "disable_cache", "forward_tool_calls"},
	"tool":     {"arguments"},
	"if":       {"then", "else"},
	"over":     {"map", "reduce", "initial", "parallelism"},
	"workflow": {"arguments"},
}

// topLevel are the task keys that are not workflows.
var topLevel = []string{"name", "description", "canonical_name", "input_schema", "inherit_tools", "metadata", "tools", "main"}

// ValidateDefinition checks a task body as the engine receives it at create
// (JSON decoded into map/slice/string/float64/bool/nil, or json.Number).
// Issues carry Path and Location but no file position.
func ValidateDefinition(def map[string]any) []Issue {
	return validateTask(def, nil)
}

// ValidateTask checks a task parsed from YAML; issues name file:line:column.
func ValidateTask(d *Doc) []Issue {
	return validateTask(d.Value, d)
}

// ValidateAgent checks an agent definition parsed from YAML.
func ValidateAgent(d *Doc) []Issue {
	var issues []Issue
	if _, ok := d.Value.(map[string]any); !ok {
		issues = append(issues, Issue{Message: "an agent definition must be a mapping", Severity: SeverityError, Type: TypeSchema})
	} else {
		issues = schemaIssues("agent", d.Value)
	}
	return place(d, issues)
}

func validateTask(v any, d *Doc) []Issue {
	v, err := normalize(v)
	if err != nil {
		return place(d, []Issue{{Message: err.Error(), Severity: SeverityError, Type: TypeSyntax}})
	}
	def, ok := v.(map[string]any)
	if !ok {
		return place(d, []Issue{{Message: "a task definition must be a mapping with name and main", Severity: SeverityError, Type: TypeSchema}})
	}
	c := &checker{def: def, labels: map[string]string{}, tools: map[string]bool{}, workflows: map[string]bool{}}
	c.issues = schemaIssues("task", def)
	c.check()
	c.issues = append(c.issues, portabilityIssues(def)...)
	sortIssues(c.issues)
	return capIssues(place(d, c.issues))
}

// place fills File, Line and Column from the document's positions.
func place(d *Doc, issues []Issue) []Issue {
	for i := range issues {
		is := &issues[i]
		if d == nil {
			is.keyPos = false
			continue
		}
		if is.File == "" {
			is.File = d.File
		}
		if is.Line == 0 {
			if is.keyPos {
				is.Line, is.Column = d.KeyPos(is.Path)
			} else {
				is.Line, is.Column = d.Pos(is.Path)
			}
		}
		if is.Line == 0 { // an empty file: point at its start
			is.Line, is.Column = 1, 1
		}
		is.keyPos = false
	}
	return issues
}

func sortIssues(issues []Issue) {
	sort.SliceStable(issues, func(i, j int) bool { return pathLess(issues[i].Path, issues[j].Path) })
}

// pathLess orders paths as they appear in a file: main[2] before main[10].
func pathLess(a, b string) bool {
	ta, tb := pathTokens(a), pathTokens(b)
	for i := 0; i < len(ta) && i < len(tb); i++ {
		if ta[i] == tb[i] {
			continue
		}
		na, ea := strconv.Atoi(ta[i])
		nb, eb := strconv.Atoi(tb[i])
		if ea == nil && eb == nil {
			return na < nb
		}
		return ta[i] < tb[i]
	}
	return len(ta) < len(tb)
}

func pathTokens(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '.' || r == '[' || r == ']' })
}

type checker struct {
	def       map[string]any
	issues    []Issue
	tools     map[string]bool
	workflows map[string]bool
	labels    map[string]string // label -> path of its first use
}

func (c *checker) add(path, typ, sev, format string, args ...any) {
	c.issues = append(c.issues, Issue{Path: path, Location: path, Message: fmt.Sprintf(format, args...), Severity: sev, Type: typ})
}

// addAtKey reports at the mapping key's position (an unknown or extra key).
func (c *checker) addAtKey(path, typ, sev, format string, args ...any) {
	c.add(path, typ, sev, format, args...)
	c.issues[len(c.issues)-1].keyPos = true
}

func (c *checker) check() {
	if name, ok := c.def["name"]; !ok || name == nil {
		c.add("name", TypeSchema, SeverityError, "required: every task needs a name")
	} else if s, ok := name.(string); ok && strings.TrimSpace(s) == "" {
		c.add("name", TypeSchema, SeverityError, "must not be blank")
	}
	if s, ok := c.def["input_schema"].(map[string]any); ok {
		if err := checkJSONSchema(s); err != nil {
			c.add("input_schema", TypeSchema, SeverityError, "not a valid JSON Schema: %s", oneLine(err.Error()))
		}
	}
	if tools, ok := c.def["tools"].([]any); ok {
		for i, t := range tools {
			tm, ok := t.(map[string]any)
			if !ok {
				continue // the schema reports it
			}
			p := joinIndex("tools", i)
			name, _ := tm["name"].(string)
			if name != "" {
				if c.tools[name] {
					c.add(joinKey(p, "name"), TypeReference, SeverityError, "duplicate tool name %q", name)
				}
				c.tools[name] = true
			}
			if typ, _ := tm["type"].(string); typ != "" {
				if _, has := tm[typ]; !has && typ != "function" {
					c.add(p, TypeSchema, SeverityError, "a %s tool needs a %q block", typ, typ)
				}
			}
		}
	}

	// Workflows: main plus any other top-level key holding a step list.
	var names []string
	for k, v := range c.def {
		if slices.Contains(topLevel, k) {
			continue
		}
		if _, ok := v.([]any); ok {
			names = append(names, k)
			continue
		}
		c.addAtKey(k, TypeSchema, SeverityWarning, "unknown top-level key (only a list of steps makes a workflow)")
	}
	sort.Strings(names)
	c.workflows["main"] = true
	for _, n := range names {
		c.workflows[n] = true
	}
	switch main := c.def["main"].(type) {
	case nil:
		c.add("main", TypeSchema, SeverityError, "required: a task needs a main list with at least one step")
	case []any:
		if len(main) == 0 {
			c.add("main", TypeSchema, SeverityError, "must have at least one step")
		}
		c.steps("main", main)
	}
	for _, n := range names {
		steps := c.def[n].([]any)
		if len(steps) == 0 {
			c.add(n, TypeSchema, SeverityError, "workflow %q must have at least one step", n)
		}
		c.steps(n, steps)
	}
}

func (c *checker) steps(path string, steps []any) {
	for i, s := range steps {
		c.step(joinIndex(path, i), s)
	}
}

func (c *checker) step(path string, v any) {
	step, ok := v.(map[string]any)
	if !ok {
		return // the schema reports a step that is not a mapping
	}
	var kinds, other []string
	for k := range step {
		switch {
		case k == "label":
		case k == "map":
			if _, over := step["over"]; !over {
				kinds = append(kinds, "map")
			}
		case slices.Contains(stepKinds, k):
			kinds = append(kinds, k)
		default:
			other = append(other, k)
		}
	}
	sort.Strings(kinds)
	sort.Strings(other)
	if label, ok := step["label"].(string); ok && label != "" {
		if first, dup := c.labels[label]; dup {
			c.add(joinKey(path, "label"), TypeReference, SeverityError, "duplicate label %q (first used at %s)", label, first)
		} else {
			c.labels[label] = path
		}
	}
	switch len(kinds) {
	case 0:
		if len(other) == 0 {
			c.add(path, TypeSchema, SeverityError, "empty step: want one of %s", strings.Join(stepKinds, ", "))
			return
		}
		c.addAtKey(joinKey(path, other[0]), TypeSchema, SeverityError, "unknown step kind %q", other[0])
		return
	case 1:
	default:
		c.add(path, TypeSchema, SeverityError, "one step has two kinds, %q and %q: split it into two steps", kinds[0], kinds[1])
		return
	}
	kind := kinds[0]
	if kind == "map" {
		c.add(joinKey(path, "map"), TypeSchema, SeverityError, "a map step needs over (the list to map over)")
		return
	}
	for _, k := range other {
		if !slices.Contains(stepExtras[kind], k) {
			c.addAtKey(joinKey(path, k), TypeSchema, SeverityWarning, "%q is not used by %s steps (ignored)", k, kind)
		}
	}

	switch kind {
	case "tool":
		if name, ok := step["tool"].(string); ok && !c.tools[name] {
			c.add(joinKey(path, "tool"), TypeReference, SeverityError, "unknown tool %q (tools: %s)", name, listOrNone(c.tools))
		}
		c.exprs(joinKey(path, "arguments"), step["arguments"], SeverityWarning)
	case "workflow":
		if name, ok := step["workflow"].(string); ok && !c.workflows[name] {
			c.add(joinKey(path, "workflow"), TypeReference, SeverityError, "unknown workflow %q (workflows: %s)", name, listOrNone(c.workflows))
		}
		c.exprs(joinKey(path, "arguments"), step["arguments"], SeverityWarning)
	case "prompt":
		c.exprs(joinKey(path, "prompt"), step["prompt"], SeverityWarning)
		if name, ok := step["tool_choice"].(string); ok && name != "auto" && name != "none" && name != "required" && !c.tools[name] {
			c.add(joinKey(path, "tool_choice"), TypeReference, SeverityWarning, "tool_choice %q is neither auto, none, required nor a tool", name)
		}
	case "if":
		c.exprs(joinKey(path, "if"), step["if"], SeverityError)
		if _, ok := step["then"]; !ok {
			c.add(joinKey(path, "then"), TypeSchema, SeverityError, "required: an if step needs then")
		}
		c.step(joinKey(path, "then"), step["then"])
		if e, ok := step["else"]; ok {
			c.step(joinKey(path, "else"), e)
		}
	case "switch":
		cases, _ := step["switch"].([]any)
		for i, cs := range cases {
			cm, ok := cs.(map[string]any)
			if !ok {
				continue
			}
			p := joinIndex(joinKey(path, "switch"), i)
			// "_" is the default case, as in Julep.
			if s, ok := cm["case"].(string); !ok || strings.TrimSpace(s) != "_" {
				c.exprs(joinKey(p, "case"), cm["case"], SeverityWarning)
			}
			c.step(joinKey(p, "then"), cm["then"])
		}
	case "foreach":
		fe, _ := step["foreach"].(map[string]any)
		if fe != nil {
			c.exprs(joinKey(path, "foreach.in"), fe["in"], SeverityError)
			c.step(joinKey(path, "foreach.do"), fe["do"])
		}
	case "over":
		c.exprs(joinKey(path, "over"), step["over"], SeverityWarning)
		if _, ok := step["map"]; !ok {
			c.add(joinKey(path, "map"), TypeSchema, SeverityError, "required: a map-reduce step needs map (the step run for each item)")
		}
		c.step(joinKey(path, "map"), step["map"])
		c.exprs(joinKey(path, "reduce"), step["reduce"], SeverityWarning)
		c.exprs(joinKey(path, "initial"), step["initial"], SeverityWarning)
	case "parallel":
		if ps, ok := step["parallel"].([]any); ok {
			c.steps(joinKey(path, "parallel"), ps)
		}
	case "get", "sleep":
		// a key name and durations: no expressions
	case "evaluate", "set", "return":
		// Julep compiles these values at create: a bad one is an error.
		// Values nested deeper are only evaluated at run time.
		m, _ := step[kind].(map[string]any)
		for k, v := range m {
			p := joinKey(joinKey(path, kind), k)
			if s, ok := v.(string); ok {
				c.expr(p, s, SeverityError)
			} else {
				c.exprs(p, v, SeverityWarning)
			}
		}
	default: // log, wait_for_input, error
		c.exprs(joinKey(path, kind), step[kind], SeverityWarning)
	}
}

// exprs checks every string under v with the given severity. Julep
// compiles only some values at create (evaluate, set and return values, if
// conditions, foreach.in): there a bad expression is an error. Anywhere else
// (prompts, tool arguments, ...) Julep accepts the task and the execution
// fails when it reaches the value, so we warn.
func (c *checker) exprs(path string, v any, sev string) {
	switch v := v.(type) {
	case string:
		c.expr(path, v, sev)
	case []any:
		for i, x := range v {
			c.exprs(joinIndex(path, i), x, sev)
		}
	case map[string]any:
		for k, x := range v {
			c.exprs(joinKey(path, k), x, sev)
		}
	}
}

func (c *checker) expr(path, s, sev string) {
	if isExpression(s) {
		if err := checkExpression(s); err != nil {
			c.add(path, TypeExpression, sev, "%s", oneLine(err.Error()))
		}
		return
	}
	if err := checkBraces(s); err != nil {
		c.add(path, TypeExpression, sev, "%s", err.Error())
		return
	}
	if strings.ContainsAny(s, "{}") {
		if err := checkExpression(s); err != nil {
			c.add(path, TypeExpression, sev, "%s", oneLine(err.Error()))
		}
	}
}

// checkBraces finds an unbalanced { or } in a string Julep treats as an
// f-string ("{{" and "}}" are literal braces there).
func checkBraces(s string) error {
	depth, open := 0, -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			if depth == 0 && i+1 < len(s) && s[i+1] == '{' {
				i++
				continue
			}
			if depth == 0 {
				open = i
			}
			depth++
		case '}':
			if depth == 0 {
				if i+1 < len(s) && s[i+1] == '}' {
					i++
					continue
				}
				return fmt.Errorf("unbalanced braces: \"}\" at offset %d has no \"{\" (write }} for a literal brace)", i)
			}
			depth--
		}
	}
	if depth > 0 {
		return fmt.Errorf("unbalanced braces: \"{\" at offset %d is never closed (write {{ for a literal brace)", open)
	}
	return nil
}

func listOrNone(m map[string]bool) string {
	if len(m) == 0 {
		return "none defined"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
