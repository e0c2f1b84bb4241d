package expr

import (
	"strings"
)

// Token-level rewrites from Python to Starlark. Tokens are first grouped by
// brackets into a tree, so every rewrite works on one bracket level at a time.

type node struct {
	tok   token   // the token, or the opening bracket of a group
	kids  []*node // group contents
	close token   // closing bracket of a group
	group bool
}

var closerOf = map[string]string{"(": ")", "[": "]", "{": "}"}

// buildTree groups tokens by brackets; end is the offset reported when a
// bracket is never closed.
func buildTree(toks []token, end int) ([]*node, error) {
	root := &node{group: true}
	stack := []*node{root}
	for _, t := range toks {
		top := stack[len(stack)-1]
		if t.kind == tOp {
			switch t.text {
			case "(", "[", "{":
				g := &node{tok: t, group: true}
				top.kids = append(top.kids, g)
				stack = append(stack, g)
				continue
			case ")", "]", "}":
				if len(stack) == 1 {
					return nil, lexErr(t.pos, "unmatched '%s'", t.text)
				}
				if closerOf[top.tok.text] != t.text {
					return nil, lexErr(t.pos, "closing '%s' does not match opening '%s'", t.text, top.tok.text)
				}
				top.close = t
				stack = stack[:len(stack)-1]
				continue
			}
		}
		top.kids = append(top.kids, &node{tok: t})
	}
	if len(stack) > 1 {
		open := stack[len(stack)-1].tok
		return nil, lexErr(end, "unexpected end of expression: '%s' at column %d was never closed", open.text, open.pos+1)
	}
	return root.kids, nil
}

func (n *node) isLeaf(kind tokKind, text string) bool {
	return n != nil && !n.group && n.tok.kind == kind && n.tok.text == text
}
func (n *node) isOp(text string) bool { return n.isLeaf(tOp, text) }
func (n *node) isKw(text string) bool { return n.isLeaf(tKeyword, text) }

func leaf(kind tokKind, text string, pos int) *node {
	return &node{tok: token{kind: kind, text: text, pos: pos}}
}

func groupOf(open string, pos int, kids []*node) *node {
	return &node{group: true, tok: token{kind: tOp, text: open, pos: pos},
		close: token{kind: tOp, text: closerOf[open], pos: pos}, kids: kids}
}

// rewriteLevel applies all rewrites to one bracket level, children first.
func rewriteLevel(ns []*node) []*node {
	for _, n := range ns {
		if n.group {
			n.kids = rewriteLevel(n.kids)
			if n.tok.text == "(" && hasKw(n.kids, "for") {
				// A generator expression becomes a list comprehension.
				n.kids = []*node{groupOf("[", n.tok.pos, n.kids)}
			}
		}
	}
	ns = rewriteUnpack(ns)
	ns = rewriteIs(ns)
	ns = rewriteSets(ns)
	ns = rewritePow(ns)
	ns = rewriteChains(ns)
	return ns
}

// rewriteUnpack turns displays with unpacking, {**d, 'k': v} and [*xs, 4],
// into calls of __dmerge / __lcat on the pieces, since Starlark has neither.
func rewriteUnpack(ns []*node) []*node {
	out := ns[:0:0]
	for _, n := range ns {
		if !n.group || (n.tok.text != "{" && n.tok.text != "[") || hasKw(n.kids, "for") {
			out = append(out, n)
			continue
		}
		star, fn := "*", "__lcat"
		if n.tok.text == "{" {
			star, fn = "**", "__dmerge"
		}
		var elems [][]*node
		cur := []*node{}
		for _, k := range n.kids {
			if k.isOp(",") {
				elems = append(elems, cur)
				cur = []*node{}
				continue
			}
			cur = append(cur, k)
		}
		if len(cur) > 0 {
			elems = append(elems, cur)
		}
		starred := false
		for _, e := range elems {
			if len(e) > 0 && e[0].isOp(star) {
				starred = true
			}
		}
		if !starred {
			out = append(out, n)
			continue
		}
		var args []*node
		var plain []*node
		flush := func() {
			if len(plain) > 0 {
				if len(args) > 0 {
					args = append(args, leaf(tOp, ",", n.tok.pos))
				}
				args = append(args, groupOf(n.tok.text, n.tok.pos, plain))
				plain = nil
			}
		}
		for _, e := range elems {
			if len(e) > 0 && e[0].isOp(star) {
				flush()
				if len(args) > 0 {
					args = append(args, leaf(tOp, ",", n.tok.pos))
				}
				args = append(args, groupOf("(", e[0].tok.pos, e[1:]))
				continue
			}
			if len(plain) > 0 {
				plain = append(plain, leaf(tOp, ",", n.tok.pos))
			}
			plain = append(plain, e...)
		}
		flush()
		call := groupOf("(", n.tok.pos, []*node{leaf(tName, fn, n.tok.pos), groupOf("(", n.tok.pos, args)})
		out = append(out, call)
	}
	return out
}

func hasKw(ns []*node, kw string) bool {
	for _, n := range ns {
		if n.isKw(kw) {
			return true
		}
	}
	return false
}

// rewriteIs turns `is not` into `!=` and `is` into `==`; Starlark has no
// identity operator, and for None/True/False equality is the same thing.
func rewriteIs(ns []*node) []*node {
	out := ns[:0:0]
	for i := 0; i < len(ns); i++ {
		n := ns[i]
		if n.isKw("is") {
			if i+1 < len(ns) && ns[i+1].isKw("not") {
				out = append(out, leaf(tOp, "!=", n.tok.pos))
				i++
				continue
			}
			out = append(out, leaf(tOp, "==", n.tok.pos))
			continue
		}
		out = append(out, n)
	}
	return out
}

// rewriteSets turns set displays `{a, b}` and set comprehensions into
// `__set([a, b])`, since Starlark has no set literal syntax.
func rewriteSets(ns []*node) []*node {
	out := ns[:0:0]
	for _, n := range ns {
		if n.group && n.tok.text == "{" && len(n.kids) > 0 && !hasOpAtLevel(n.kids, ":") && !n.kids[0].isOp("**") {
			list := &node{group: true, tok: token{kind: tOp, text: "[", pos: n.tok.pos}, close: token{kind: tOp, text: "]", pos: n.close.pos}, kids: n.kids}
			out = append(out, leaf(tName, "__set", n.tok.pos), &node{group: true, tok: token{kind: tOp, text: "(", pos: n.tok.pos}, close: token{kind: tOp, text: ")", pos: n.close.pos}, kids: []*node{list}})
			continue
		}
		out = append(out, n)
	}
	return out
}

func hasOpAtLevel(ns []*node, op string) bool {
	for i, n := range ns {
		if n.isOp(op) {
			// `lambda x: y` inside a set display is not a dict colon.
			if op == ":" && precededByLambda(ns[:i]) {
				continue
			}
			return true
		}
	}
	return false
}

func precededByLambda(ns []*node) bool {
	for i := len(ns) - 1; i >= 0; i-- {
		if ns[i].isOp(",") || ns[i].isOp(":") {
			return false
		}
		if ns[i].isKw("lambda") {
			return true
		}
	}
	return false
}

// isOperandEnd reports whether n can end an operand (so a following `**` is
// the power operator, not keyword-argument unpacking).
func isOperandEnd(n *node) bool {
	if n.group {
		return true
	}
	switch n.tok.kind {
	case tName, tNum, tStr:
		return true
	case tKeyword:
		return n.tok.text == "None" || n.tok.text == "True" || n.tok.text == "False"
	}
	return false
}

// isAtom reports whether n can start a primary (name, literal or bracket group).
func isAtom(n *node) bool { return isOperandEnd(n) }

// rewritePow turns `a ** b` into `__pow(a, b)`. Operands are primaries (an atom
// followed by .name, (...) and [...] trailers); the right operand may carry
// unary signs. Rewriting right to left gives right associativity.
func rewritePow(ns []*node) []*node {
	for i := len(ns) - 1; i >= 0; i-- {
		if !ns[i].isOp("**") || i == 0 || !isOperandEnd(ns[i-1]) {
			continue
		}
		// Left operand: walk back over trailers.
		k := i - 1
		for {
			if k >= 2 && ns[k-1].isOp(".") && !ns[k].group {
				k -= 2
				continue
			}
			if ns[k].group && ns[k].tok.text != "{" && k >= 1 && isOperandEnd(ns[k-1]) {
				k--
				continue
			}
			break
		}
		// Right operand.
		r := i + 1
		for r < len(ns) && !ns[r].group && ns[r].tok.kind == tOp && (ns[r].tok.text == "-" || ns[r].tok.text == "+" || ns[r].tok.text == "~") {
			r++
		}
		if r >= len(ns) || !isAtom(ns[r]) {
			continue // leave it; the parser reports the error
		}
		for r+1 < len(ns) {
			nx := ns[r+1]
			if nx.isOp(".") && r+2 < len(ns) && ns[r+2].tok.kind == tName && !ns[r+2].group {
				r += 2
				continue
			}
			if nx.group && (nx.tok.text == "(" || nx.tok.text == "[") {
				r++
				continue
			}
			break
		}
		args := make([]*node, 0, r-k+1)
		args = append(args, ns[k:i]...)
		args = append(args, leaf(tOp, ",", ns[i].tok.pos))
		args = append(args, ns[i+1:r+1]...)
		repl := []*node{leaf(tName, "__pow", ns[i].tok.pos), groupOf("(", ns[i].tok.pos, args)}
		rest := append(repl, ns[r+1:]...)
		ns = append(ns[:k:k], rest...)
		i = k
	}
	return ns
}

var cmpOps = map[string]bool{"<": true, ">": true, "==": true, "!=": true, "<=": true, ">=": true}

func isSegmentBoundary(n *node) bool {
	if n.group {
		return false
	}
	switch n.tok.kind {
	case tOp:
		switch n.tok.text {
		case ",", ":", "=", ";", ":=":
			return true
		}
	case tKeyword:
		switch n.tok.text {
		case "and", "or", "if", "else", "for", "lambda":
			return true
		}
	}
	return false
}

// rewriteChains turns Python's chained comparisons `a < b < c` into
// `(a < b and b < c)`. The middle operand is evaluated twice, which is
// harmless for side-effect-free expressions.
func rewriteChains(ns []*node) []*node {
	var out []*node
	segStart := 0
	afterFor := false
	flush := func(end int) {
		seg := ns[segStart:end]
		if !afterFor {
			seg = chainSegment(seg)
		}
		out = append(out, seg...)
	}
	for i := 0; i < len(ns); i++ {
		n := ns[i]
		unaryNot := n.isKw("not") && !(i+1 < len(ns) && ns[i+1].isKw("in")) && !(i > 0 && isOperandEnd(ns[i-1]))
		if isSegmentBoundary(n) || unaryNot {
			flush(i)
			out = append(out, n)
			segStart = i + 1
			if n.isKw("for") {
				afterFor = true
			} else if !unaryNot {
				afterFor = false
			}
		}
	}
	flush(len(ns))
	return out
}

func chainSegment(seg []*node) []*node {
	type opAt struct{ start, end int }
	var ops []opAt
	for i := 0; i < len(seg); i++ {
		n := seg[i]
		switch {
		case !n.group && n.tok.kind == tOp && cmpOps[n.tok.text]:
			ops = append(ops, opAt{i, i + 1})
		case n.isKw("in"):
			ops = append(ops, opAt{i, i + 1})
		case n.isKw("not") && i+1 < len(seg) && seg[i+1].isKw("in"):
			ops = append(ops, opAt{i, i + 2})
			i++
		}
	}
	if len(ops) < 2 {
		return seg
	}
	var kids []*node
	prev := 0
	for j, op := range ops {
		left := seg[prev:op.start]
		nextEnd := len(seg)
		if j+1 < len(ops) {
			nextEnd = ops[j+1].start
		}
		right := seg[op.end:nextEnd]
		if j > 0 {
			kids = append(kids, leaf(tKeyword, "and", seg[op.start].tok.pos))
		}
		kids = append(kids, groupOf("(", seg[op.start].tok.pos, append([]*node(nil), left...)))
		kids = append(kids, seg[op.start:op.end]...)
		kids = append(kids, groupOf("(", seg[op.start].tok.pos, append([]*node(nil), right...)))
		prev = op.end
	}
	return []*node{groupOf("(", seg[0].tok.pos, kids)}
}

// emitter renders a node tree as one line of Starlark text and remembers,
// for each emitted token, where it came from.
type emitter struct {
	b    strings.Builder
	offs []int // output offset of each token
	pos  []int // original offset of each token
}

func (e *emitter) tok(t token) {
	if e.b.Len() > 0 {
		e.b.WriteByte(' ')
	}
	e.offs = append(e.offs, e.b.Len())
	e.pos = append(e.pos, t.pos)
	e.b.WriteString(t.text)
}

func (e *emitter) nodes(ns []*node) {
	for _, n := range ns {
		e.tok(n.tok)
		if n.group {
			e.nodes(n.kids)
			e.tok(n.close)
		}
	}
}

// origPos maps an output byte offset back to an offset of the task string.
func (e *emitter) origPos(off int) int {
	lo, hi := 0, len(e.offs)
	for lo < hi {
		m := (lo + hi) / 2
		if e.offs[m] <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		if len(e.pos) > 0 {
			return e.pos[0]
		}
		return 0
	}
	return e.pos[lo-1]
}
