package expr

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// fileOptions enables the Starlark dialect closest to Python expressions.
// Recursion stays disabled: an expression has no business recursing, and
// without it a self-applied lambda fails fast instead of exhausting the stack.
var fileOptions = &syntax.FileOptions{Set: true}

const resultName = "__result"

// mode is how a task string is read.
type mode uint8

const (
	modeTemplate mode = iota // a Python f-string body
	modeExpr                 // a Python expression
)

// classify applies Julep's rules (including the legacy ones) and returns the
// source to compile, its mode, and the offset of that source in s.
func classify(s string) (src string, m mode, base int) {
	trimmed := strings.TrimSpace(s)
	lead := strings.Index(s, trimmed)
	if lead < 0 {
		lead = 0
	}
	switch {
	case strings.HasPrefix(trimmed, "$ "):
		body := trimmed[1:]
		t := strings.TrimLeft(body, " \t\r\n")
		return strings.TrimRight(t, " \t\r\n"), modeExpr, lead + 1 + (len(body) - len(t))
	case strings.Contains(trimmed, "{{"):
		// Jinja-style: `{{ x }}` becomes the f-string field `{ x }`.
		r := strings.NewReplacer("{{", "{", "}}", "}")
		return r.Replace(trimmed), modeTemplate, lead
	case strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]"),
		strings.HasPrefix(trimmed, "_["), // Julep also requires a closing "]"; we do not
		strings.HasPrefix(trimmed, "_."),
		strings.Contains(trimmed, "outputs["),
		strings.Contains(trimmed, "inputs["),
		trimmed == "_":
		return trimmed, modeExpr, lead
	}
	return trimmed, modeTemplate, lead
}

// IsExpression reports whether s, after Julep's legacy rules, is evaluated as a
// `$ ` expression. Strings with `{{ }}` count: Julep rewrites them to `$ f”'...”'`.
func IsExpression(s string) bool {
	trimmed := strings.TrimSpace(s)
	if strings.Contains(trimmed, "{{") && !strings.HasPrefix(trimmed, "$ ") {
		return true
	}
	_, m, _ := classify(s)
	return m == modeExpr
}

// compiled is the result of translating one task string.
type compiled struct {
	prog  *starlark.Program
	names []string // predeclared names the program reads
	em    *emitter
	// literal is set when the string is a template without fields: no
	// evaluation is needed.
	literal *string
}

func compileString(s string) (*compiled, error) {
	src, m, base := classify(s)
	var toks []token
	var err error
	if m == modeExpr {
		if strings.TrimSpace(src) == "" {
			return nil, &syntaxError{pos: base, msg: "empty expression"}
		}
		toks, err = lexExpr(src, base)
	} else {
		lx := &lexer{src: src, base: base}
		_, err = lx.fstringBody(0, func(int) bool { return false }, false, false)
		toks = lx.toks
		if err == nil {
			if lit, ok := constantTemplate(toks); ok {
				return &compiled{literal: &lit}, nil
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, &syntaxError{pos: base, msg: "empty expression"}
	}
	end := len(s)
	tree, err := buildTree(toks, end)
	if err != nil {
		return nil, err
	}
	tree = rewriteLevel(tree)
	em := &emitter{}
	em.tok(token{kind: tName, text: resultName, pos: base})
	em.tok(token{kind: tOp, text: "=", pos: base})
	em.tok(token{kind: tOp, text: "(", pos: base})
	em.nodes(tree)
	em.tok(token{kind: tOp, text: ")", pos: end})
	text := em.b.String()

	f, err := fileOptions.Parse("expr", text, 0)
	if err != nil {
		return nil, em.syntaxErr(s, text, err, end)
	}
	if len(f.Stmts) != 1 {
		return nil, &syntaxError{pos: base, msg: "not a single expression"}
	}
	assign, ok := f.Stmts[0].(*syntax.AssignStmt)
	if !ok {
		return nil, &syntaxError{pos: base, msg: "not a single expression"}
	}
	if err := checkExpr(assign.RHS); err != nil {
		return nil, err
	}
	assign.RHS = rw(assign.RHS)
	prog, err := starlark.FileProgram(f, func(string) bool { return true })
	if err != nil {
		return nil, em.syntaxErr(s, text, err, end)
	}
	seen := map[string]bool{}
	var names []string
	syntax.Walk(assign.RHS, func(n syntax.Node) bool {
		if id, ok := n.(*syntax.Ident); ok {
			if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Predeclared && !seen[id.Name] {
				seen[id.Name] = true
				names = append(names, id.Name)
			}
		}
		return true
	})
	return &compiled{prog: prog, names: names, em: em}, nil
}

// constantTemplate recognises `__fs(("text",))`, a template with no fields.
func constantTemplate(toks []token) (string, bool) {
	if len(toks) != 7 || toks[3].kind != tStr {
		return "", false
	}
	// toks: __fs ( ( "lit" , ) )
	v, err := unquoteStarlark(toks[3].text)
	if err != nil {
		return "", false
	}
	return v, true
}

func unquoteStarlark(lit string) (string, error) {
	return strconv.Unquote(lit)
}

// checkExpr rejects Starlark constructs that are not valid Python and would
// otherwise slip through (none today; kept as the single place to add them).
func checkExpr(syntax.Expr) error { return nil }

// syntaxErr converts a Starlark parse/resolve error into a syntaxError at an
// offset of the original task string.
func (e *emitter) syntaxErr(s, text string, err error, end int) error {
	var pos syntax.Position
	msg := err.Error()
	switch x := err.(type) {
	case syntax.Error:
		pos, msg = x.Pos, x.Msg
	case resolve.ErrorList:
		if len(x) > 0 {
			pos, msg = x[0].Pos, x[0].Msg
		}
	}
	if pos.Line == 0 {
		return &syntaxError{pos: end, msg: msg}
	}
	off := colToOffset(text, int(pos.Col))
	p := e.origPos(off)
	// A ')' the user did not write closes a wrapper we added around the
	// expression or an f-string field: the user's expression ended early.
	if strings.Contains(msg, "got ')'") && (p >= len(s) || s[p] != ')') {
		msg = "unexpected end of expression"
	}
	msg = strings.ReplaceAll(msg, "__result", "expression")
	return &syntaxError{pos: p, msg: msg}
}

// colToOffset converts a 1-based rune column of a one-line text to a byte offset.
func colToOffset(text string, col int) int {
	off := 0
	for c := 1; c < col && off < len(text); c++ {
		_, size := utf8.DecodeRuneInString(text[off:])
		off += size
	}
	return off
}

// describePos renders an offset of s as "column N" or "line L, column N".
func describePos(s string, off int) string {
	if off > len(s) {
		off = len(s)
	}
	if off < 0 {
		off = 0
	}
	line := 1 + strings.Count(s[:off], "\n")
	lineStart := strings.LastIndexByte(s[:off], '\n') + 1
	col := utf8.RuneCountInString(s[lineStart:off]) + 1
	if strings.Contains(s, "\n") {
		return fmt.Sprintf("line %d, column %d", line, col)
	}
	return fmt.Sprintf("column %d", col)
}

// rw rewrites the Starlark AST where Python semantics need a helper:
// attribute access (dict keys as attributes), `%`, `+`, `*` and slices
// (Python formatting and allocation accounting).
func rw(e syntax.Expr) syntax.Expr {
	switch x := e.(type) {
	case nil:
		return nil
	case *syntax.DotExpr:
		return call("__attr", x.Dot, rw(x.X), &syntax.Literal{Token: syntax.STRING, TokenPos: x.NamePos, Raw: starlarkQuote(x.Name.Name), Value: x.Name.Name})
	case *syntax.BinaryExpr:
		x.X, x.Y = rw(x.X), rw(x.Y)
		switch x.Op {
		case syntax.PERCENT:
			return call("__mod", x.OpPos, x.X, x.Y)
		case syntax.PLUS:
			return call("__add", x.OpPos, x.X, x.Y)
		case syntax.STAR:
			return call("__mul", x.OpPos, x.X, x.Y)
		case syntax.EQL:
			if mayBeBool(x.X) || mayBeBool(x.Y) {
				return call("__eq", x.OpPos, x.X, x.Y)
			}
		case syntax.NEQ:
			if mayBeBool(x.X) || mayBeBool(x.Y) {
				return call("__ne", x.OpPos, x.X, x.Y)
			}
		}
		return x
	case *syntax.UnaryExpr:
		x.X = rw(x.X)
		return x
	case *syntax.CallExpr:
		x.Fn = rw(x.Fn)
		for i, a := range x.Args {
			if b, ok := a.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
				b.Y = rw(b.Y) // keyword argument: keep the name
				continue
			}
			x.Args[i] = rw(a)
		}
		return x
	case *syntax.Comprehension:
		x.Body = rw(x.Body)
		for _, c := range x.Clauses {
			switch c := c.(type) {
			case *syntax.ForClause:
				c.X = call("__iter", c.For, rw(c.X))
			case *syntax.IfClause:
				c.Cond = rw(c.Cond)
			}
		}
		return x
	case *syntax.CondExpr:
		x.Cond, x.True, x.False = rw(x.Cond), rw(x.True), rw(x.False)
		return x
	case *syntax.DictEntry:
		x.Key, x.Value = rw(x.Key), rw(x.Value)
		return x
	case *syntax.DictExpr:
		// Python lets a later duplicate key win; Starlark rejects duplicates.
		args := make([]syntax.Expr, 0, 2*len(x.List))
		for _, e := range x.List {
			entry := e.(*syntax.DictEntry)
			args = append(args, rw(entry.Key), rw(entry.Value))
		}
		return call("__dict", x.Lbrace, args...)
	case *syntax.ListExpr:
		for i := range x.List {
			x.List[i] = rw(x.List[i])
		}
		return x
	case *syntax.TupleExpr:
		for i := range x.List {
			x.List[i] = rw(x.List[i])
		}
		return x
	case *syntax.ParenExpr:
		x.X = rw(x.X)
		return x
	case *syntax.IndexExpr:
		return call("__index", x.Lbrack, rw(x.X), rw(x.Y))
	case *syntax.SliceExpr:
		none := func(e syntax.Expr) syntax.Expr {
			if e == nil {
				return &syntax.Ident{NamePos: x.Lbrack, Name: "None"}
			}
			return rw(e)
		}
		return call("__slice", x.Lbrack, rw(x.X), none(x.Lo), none(x.Hi), none(x.Step))
	case *syntax.LambdaExpr:
		for _, p := range x.Params {
			if b, ok := p.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
				b.Y = rw(b.Y)
			}
		}
		x.Body = rw(x.Body)
		return x
	}
	return e
}

// mayBeBool is false for operands that cannot be a bool (string and number
// literals), so the common `x == 'a'` stays Starlark's own comparison.
func mayBeBool(e syntax.Expr) bool {
	_, lit := e.(*syntax.Literal)
	return !lit
}

func call(fn string, pos syntax.Position, args ...syntax.Expr) syntax.Expr {
	return &syntax.CallExpr{Fn: &syntax.Ident{NamePos: pos, Name: fn}, Lparen: pos, Args: args, Rparen: pos}
}
