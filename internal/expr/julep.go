package expr

import (
	"fmt"
	"sort"
	"strings"
)

// julepAllowedNames is what Julep v1's create-time validator
// (common/utils/task_validation.py, allowed_names) lets an expression name:
// evaluator.py's ALLOWED_FUNCTIONS, its stdlib modules, the helper constants
// and the special variables. Anything else is an "Undefined name" error.
var julepAllowedNames = map[string]bool{
	// ALLOWED_FUNCTIONS
	"abs": true, "all": true, "any": true, "bool": true, "dict": true, "enumerate": true, "float": true,
	"int": true, "len": true, "list": true, "map": true, "max": true, "min": true, "round": true,
	"set": true, "str": true, "sum": true, "tuple": true, "zip": true, "reduce": true, "range": true,
	"load_json": true, "load_yaml": true, "dump_json": true, "dump_yaml": true, "extract_json": true,
	"search_regex": true, "match_regex": true, "nlp": true, "chunk_doc": true,
	"humanize_text_alpha": true, "markdown_to_html": true, "html_to_markdown": true,
	// stdlib
	"re": true, "json": true, "yaml": true, "string": true, "datetime": true, "math": true,
	"statistics": true, "base64": true, "urllib": true, "random": true, "time": true, "csv": true,
	// helpers and special variables
	"true": true, "false": true, "null": true, "NEWLINE": true, "hasattr": true,
	"_": true, "inputs": true, "outputs": true, "state": true, "steps": true,
	// Python constants (ast.Constant in Python, names here)
	"True": true, "False": true, "None": true,
}

// JulepRefusals lists what Julep v1's validate_py_expression reports as an
// error for the task string s: a syntax error, names outside its allowed
// set (sorted, reversed, isinstance, filter, chr, ord, repr, getattr, type,
// agent, execution, secrets...), lambdas, set comprehensions and the walrus
// operator. Like Julep, it looks only at strings that are `$ ` expressions
// after backwards_compatibility (including "{{ }}" templates); a plain
// f-string body is not checked. The messages are Julep's, sorted.
func JulepRefusals(s string) []string { return julepRefusals(s, true) }

// julepRuntimeNames are the names Julep's evaluator has at run time beyond
// the validator's set: prepare_for_step's dump of the step context
// (execution input fields and secrets).
var julepRuntimeNames = map[string]bool{
	"agent": true, "task": true, "execution": true, "secrets": true, "user": true, "session": true,
	"arguments": true, "agent_tools": true, "tools": true, "developer_id": true,
}

// JulepRuntimeRefusals lists what Julep v1's evaluator refuses when it
// evaluates s at run time, in a place its create-time validator does not
// look (a prompt, tool arguments...): syntax errors, names it does not have,
// and lambdas (simpleeval has no lambda).
func JulepRuntimeRefusals(s string) []string { return julepRefusals(s, false) }

func julepRefusals(s string, atCreate bool) []string {
	if !IsExpression(s) {
		return nil
	}
	var out []string
	p, err := Compile(s)
	if err != nil {
		return []string{"Syntax error: " + err.Error()}
	}
	for _, n := range p.c.names {
		if strings.HasPrefix(n, "__") || julepAllowedNames[n] || !atCreate && julepRuntimeNames[n] {
			continue
		}
		out = append(out, fmt.Sprintf("Undefined name: '%s'", n))
	}
	src, m, base := classify(s)
	var toks []token
	if m == modeExpr {
		toks, _ = lexExpr(src, base)
	} else {
		lx := &lexer{src: src, base: base}
		_, _ = lx.fstringBody(0, func(int) bool { return false }, false, false)
		toks = lx.toks
	}
	for _, t := range toks {
		if t.kind == tKeyword && t.text == "lambda" {
			out = append(out, "Lambda functions are not supported in this evaluator")
			break
		}
	}
	if !atCreate {
		sort.Strings(out)
		return out
	}
	for _, t := range toks {
		if t.kind == tOp && t.text == ":=" {
			out = append(out, "Assignment expressions (walrus operator) are not supported in this evaluator")
			break
		}
	}
	if tree, err := buildTree(toks, len(s)); err == nil && hasSetComp(tree) {
		out = append(out, "Set comprehensions are not supported in this evaluator")
	}
	sort.Strings(out)
	return out
}

func hasSetComp(ns []*node) bool {
	for _, n := range ns {
		if !n.group {
			continue
		}
		if n.tok.text == "{" && hasKw(n.kids, "for") && !hasOpAtLevel(n.kids, ":") {
			return true
		}
		if hasSetComp(n.kids) {
			return true
		}
	}
	return false
}

// UndefinedNames lists the names s reads that are neither the evaluator's
// own (builtins, modules) nor in vars, sorted. A template or expression that
// does not compile has none (Check reports it).
func UndefinedNames(s string, vars map[string]bool) []string {
	p, err := Compile(s)
	if err != nil || p.c.prog == nil {
		return nil
	}
	var out []string
	for _, n := range p.c.names {
		if _, ok := builtins[n]; ok || vars[n] {
			continue
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
