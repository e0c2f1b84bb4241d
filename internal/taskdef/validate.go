package taskdef

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/astra-app/astra/internal/expr"
)

// stepKinds are the keys that name a step's kind, in Julep's v1 task
// language. A map-reduce step is named by "over" and "map" together.
var stepKinds = []string{
	"prompt", "tool", "evaluate", "if", "switch", "foreach", "over", "parallel",
	"get", "set", "log", "return", "sleep", "wait_for_input", "workflow", "yield", "error",
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
	// The engine's structural checks, each only where nothing above
	// already reported the same place (or a place inside it).
	reported := reportedPaths(c.issues)
	for _, is := range structuralIssues(def) {
		if !reported[is.Path] {
			c.issues = append(c.issues, is)
		}
	}
	// A warning where an error already stands adds nothing (a name neither
	// Julep nor the engine has is an error here and a refusal there).
	failed := map[string]bool{}
	for _, is := range c.issues {
		if is.Severity == SeverityError {
			failed[is.Path] = true
		}
	}
	for _, check := range warningChecks {
		for _, is := range check(def) {
			if is.Severity == SeverityWarning && failed[is.Path] {
				continue
			}
			c.issues = append(c.issues, is)
		}
	}
	sortIssues(c.issues)
	return capIssues(place(d, c.issues))
}

// warningChecks run after ours on every task body (a file, a push, the
// engine's create). They are the hook for checks that only warn, such as
// what would not run the same on Julep itself: register one from an init
// function with addWarningCheck. Their issues get file:line:col from the
// path like ours; one with Severity error would refuse the task everywhere,
// so keep them warnings.
var warningChecks = []func(def map[string]any) []Issue{portabilityIssues}

func addWarningCheck(check func(def map[string]any) []Issue) {
	warningChecks = append(warningChecks, check)
}

// reportedPaths is every path with an issue and every path above one
// (main[2].tool marks main[2] and main too), so a structural issue is only
// added where nothing at or inside its place was reported. A set, because a
// file may have 100,000 issues.
func reportedPaths(issues []Issue) map[string]bool {
	out := make(map[string]bool, len(issues))
	for _, is := range issues {
		p := is.Path
		for !out[p] {
			out[p] = true
			i := strings.LastIndexAny(p, ".[")
			if i <= 0 {
				break
			}
			p = p[:i]
		}
	}
	return out
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
		msg := "unknown top-level key (only a list of steps makes a workflow)"
		if h := suggest(k, topLevel); h != "" {
			msg = fmt.Sprintf("unknown top-level key (did you mean %q?)", h)
		}
		c.addAtKey(k, TypeSchema, SeverityWarning, "%s", msg)
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
		// Blame the key closest to a kind ("toool" beside "arguments"),
		// else one that no kind uses, else the first.
		bad, hint := other[0], ""
		for _, k := range other {
			if h := suggest(k, stepKinds); h != "" {
				bad, hint = k, h
				break
			}
		}
		if hint == "" {
			for _, k := range other {
				if !isExtraKey(k) {
					bad = k
					break
				}
			}
		}
		msg := fmt.Sprintf("unknown step kind %q", bad)
		if hint != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", hint)
		} else {
			msg += " (a step needs one of " + strings.Join(stepKinds, ", ") + ")"
		}
		c.addAtKey(joinKey(path, bad), TypeSchema, SeverityError, "%s", msg)
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
			hint := ""
			if h := suggest(k, append([]string{"label"}, stepExtras[kind]...)); h != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", h)
			}
			c.addAtKey(joinKey(path, k), TypeSchema, SeverityWarning, "%q is not used by %s steps (ignored)%s", k, kind, hint)
		}
	}

	switch kind {
	case "tool":
		if name, ok := step["tool"].(string); ok && !c.tools[name] {
			c.add(joinKey(path, "tool"), TypeReference, SeverityError, "unknown tool %q (tools: %s)", name, listOrNone(c.tools))
		}
		c.exprs(joinKey(path, "arguments"), step["arguments"])
	case "workflow", "yield":
		if name, ok := step["workflow"].(string); ok && !c.workflows[name] {
			c.add(joinKey(path, "workflow"), TypeReference, SeverityError, "unknown workflow %q (workflows: %s)", name, listOrNone(c.workflows))
		}
		if y, ok := step["yield"].(map[string]any); ok {
			if name, ok := y["workflow"].(string); ok && !c.workflows[name] {
				c.add(joinKey(path, "yield.workflow"), TypeReference, SeverityError, "unknown workflow %q (workflows: %s)", name, listOrNone(c.workflows))
			}
			c.exprs(joinKey(path, "yield.arguments"), y["arguments"])
		}
		c.exprs(joinKey(path, "arguments"), step["arguments"])
	case "prompt":
		c.exprs(joinKey(path, "prompt"), step["prompt"])
		if name, ok := step["tool_choice"].(string); ok && name != "auto" && name != "none" && name != "required" && !c.tools[name] {
			c.add(joinKey(path, "tool_choice"), TypeReference, SeverityWarning, "tool_choice %q is neither auto, none, required nor a tool", name)
		}
	case "if":
		c.exprs(joinKey(path, "if"), step["if"])
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
				c.exprs(joinKey(p, "case"), cm["case"])
			}
			c.step(joinKey(p, "then"), cm["then"])
		}
	case "foreach":
		fe, _ := step["foreach"].(map[string]any)
		if fe != nil {
			c.exprs(joinKey(path, "foreach.in"), fe["in"])
			c.step(joinKey(path, "foreach.do"), fe["do"])
		}
	case "over":
		c.exprs(joinKey(path, "over"), step["over"])
		if _, ok := step["map"]; !ok {
			c.add(joinKey(path, "map"), TypeSchema, SeverityError, "required: a map-reduce step needs map (the step run for each item)")
		}
		c.step(joinKey(path, "map"), step["map"])
		if r, ok := step["reduce"].(string); ok {
			// reduce is always an expression, reading results too.
			src := strings.TrimSpace(r)
			if !strings.HasPrefix(src, "$") {
				src = "$ " + src
			}
			c.expr(joinKey(path, "reduce"), src, "results")
		}
		c.exprs(joinKey(path, "initial"), step["initial"])
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
				c.expr(p, s)
			} else {
				c.exprs(p, v)
			}
		}
	default: // log, wait_for_input, error
		c.exprs(joinKey(path, kind), step[kind])
	}
}

// exprs checks every string under v. A string that does not compile, or
// reads a name no execution defines, is an error wherever it is: Julep
// itself compiles only some values at create, but every other one fails the
// execution when it is reached, and the embedded engine refuses the task at
// create (it runs these very checks), so validate, push and the engine agree.
func (c *checker) exprs(path string, v any) {
	switch v := v.(type) {
	case string:
		c.expr(path, v)
	case []any:
		for i, x := range v {
			c.exprs(joinIndex(path, i), x)
		}
	case map[string]any:
		for k, x := range v {
			c.exprs(joinKey(path, k), x)
		}
	}
}

func (c *checker) expr(path, s string, extra ...string) {
	const sev = SeverityError
	n := len(c.issues)
	defer func() { atRunTime(c.issues, n, path, s) }()
	if !isExpression(s) {
		if err := checkBraces(s); err != nil {
			c.add(path, TypeExpression, sev, "%s", err.Error())
			return
		}
		if !strings.ContainsAny(s, "{}") {
			return // plain text
		}
	}
	if err := checkExpression(s); err != nil {
		c.add(path, TypeExpression, sev, "%s", oneLine(err.Error()))
		return
	}
	names, err := expr.FreeNames(s)
	if err != nil {
		return
	}
	for _, n := range names {
		if slices.Contains(Variables, n) || slices.Contains(extra, n) {
			continue
		}
		msg := fmt.Sprintf("Undefined name: '%s'", n) // as Julep words it
		if s := suggest(n, Variables); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else {
			msg += " (an expression can read " + strings.Join(Variables, ", ") + ")"
		}
		c.add(path, TypeReference, sev, "%s", msg)
	}
}

// Variables are the names every expression of an execution can read besides
// Python's builtins, as the engine defines them for each step
// (internal/engine/steps.go, frame.vars) after Julep's.
var Variables = []string{"_", "inputs", "outputs", "steps", "state", "agent", "task", "secrets", "execution"}

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

// isExtraKey reports whether some step kind uses k besides its kind key.
func isExtraKey(k string) bool {
	if k == "label" {
		return true
	}
	for _, extras := range stepExtras {
		if slices.Contains(extras, k) {
			return true
		}
	}
	return false
}

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo (one edit in a short word, up to three in a long one), else "".
func suggest(s string, candidates []string) string {
	limit := min(len(s)/3, 3)
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d > 0 && d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of neighbours that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
