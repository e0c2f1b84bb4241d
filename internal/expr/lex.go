package expr

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The lexer reads Python expression source and produces Starlark tokens.
// Python and Starlark share most of their lexical grammar; where they differ
// (f-strings, string escapes, number spellings, `is`) the lexer emits the
// Starlark spelling, and every token remembers the byte offset in the original
// task string it came from so syntax errors point at the user's text.

type tokKind uint8

const (
	tName tokKind = iota
	tKeyword
	tNum
	tStr
	tOp
)

type token struct {
	kind tokKind
	text string // Starlark text to emit
	pos  int    // byte offset in the original task string
}

// syntaxError is a compile error at a byte offset of the original task string.
type syntaxError struct {
	pos int
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

var pyKeywords = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "is": true, "if": true, "else": true,
	"for": true, "lambda": true, "None": true, "True": true, "False": true,
}

// lexer scans src; base is the offset of src[0] in the original task string.
type lexer struct {
	src   string
	base  int
	i     int
	toks  []token
	depth int // bracket depth, used to stop f-string fields at the right brace
}

func lexErr(pos int, format string, args ...any) error {
	return &syntaxError{pos: pos, msg: fmt.Sprintf(format, args...)}
}

// lexExpr tokenizes a whole Python expression.
func lexExpr(src string, base int) ([]token, error) {
	lx := &lexer{src: src, base: base}
	if err := lx.run(false); err != nil {
		return nil, err
	}
	return lx.toks, nil
}

func (lx *lexer) emit(k tokKind, text string, pos int) {
	lx.toks = append(lx.toks, token{kind: k, text: text, pos: lx.base + pos})
}

// run scans tokens until the end of input, or, when field is true, until the
// end of an f-string replacement field (a `}`, `!`, `:` or `=` at depth 0),
// leaving lx.i at that character.
func (lx *lexer) run(field bool) error {
	src := lx.src
	for lx.i < len(src) {
		c := src[lx.i]
		start := lx.i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			lx.i++
		case c == '\\' && lx.i+1 < len(src) && (src[lx.i+1] == '\n' || src[lx.i+1] == '\r'):
			lx.i += 2 // line continuation
		case c == '#':
			if field {
				return lexErr(start, "f-string expression part cannot include '#'")
			}
			for lx.i < len(src) && src[lx.i] != '\n' {
				lx.i++
			}
		case isIdentStart(c) || c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(src[lx.i:])
			if c >= utf8.RuneSelf && !unicode.IsLetter(r) {
				return lexErr(start, "invalid character %q", r)
			}
			j := lx.i + size
			for j < len(src) {
				r, size := utf8.DecodeRuneInString(src[j:])
				if r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) {
					j += size
					continue
				}
				break
			}
			word := src[lx.i:j]
			// String prefix?
			if j < len(src) && (src[j] == '"' || src[j] == '\'') && isStrPrefix(word) {
				lx.i = j
				if err := lx.str(start, strings.ToLower(word)); err != nil {
					return err
				}
				continue
			}
			lx.i = j
			if pyKeywords[word] {
				lx.emit(tKeyword, word, start)
			} else {
				lx.emit(tName, word, start)
			}
		case c >= '0' && c <= '9' || c == '.' && lx.i+1 < len(src) && src[lx.i+1] >= '0' && src[lx.i+1] <= '9':
			if err := lx.number(); err != nil {
				return err
			}
		case c == '"' || c == '\'':
			if err := lx.str(start, ""); err != nil {
				return err
			}
		default:
			if field && lx.depth == 0 {
				switch {
				case c == '}' || c == ':':
					return nil
				case c == '!' && !strings.HasPrefix(src[lx.i:], "!="):
					return nil
				case c == '=' && !strings.HasPrefix(src[lx.i:], "=="):
					return nil
				}
			}
			op := matchOp(src[lx.i:])
			if op == "" {
				r, _ := utf8.DecodeRuneInString(src[lx.i:])
				return lexErr(start, "invalid character %q", r)
			}
			switch op {
			case "(", "[", "{":
				lx.depth++
			case ")", "]", "}":
				lx.depth--
			}
			lx.i += len(op)
			lx.emit(tOp, op, start)
		}
	}
	return nil
}

var ops3 = []string{"**=", "//=", ">>=", "<<=", "..."}
var ops2 = []string{"**", "//", "==", "!=", "<=", ">=", "<<", ">>", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", ":=", "->"}

func matchOp(s string) string {
	for _, o := range ops3 {
		if strings.HasPrefix(s, o) {
			return o
		}
	}
	for _, o := range ops2 {
		if strings.HasPrefix(s, o) {
			return o
		}
	}
	if strings.ContainsRune("+-*/%@&|^~<>()[]{},:.;=", rune(s[0])) {
		return s[:1]
	}
	return ""
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isStrPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "r", "u", "b", "f", "rb", "br", "fr", "rf":
		return true
	}
	return false
}

func (lx *lexer) number() error {
	src := lx.src
	start := lx.i
	j := lx.i
	if strings.HasPrefix(src[j:], "0x") || strings.HasPrefix(src[j:], "0X") ||
		strings.HasPrefix(src[j:], "0o") || strings.HasPrefix(src[j:], "0O") ||
		strings.HasPrefix(src[j:], "0b") || strings.HasPrefix(src[j:], "0B") {
		j += 2
		for j < len(src) && (isHex(src[j]) || src[j] == '_') {
			j++
		}
	} else {
		for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '_' || src[j] == '.') {
			j++
		}
		if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
			k := j + 1
			if k < len(src) && (src[k] == '+' || src[k] == '-') {
				k++
			}
			if k < len(src) && src[k] >= '0' && src[k] <= '9' {
				j = k
				for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '_') {
					j++
				}
			}
		}
	}
	if j < len(src) && (src[j] == 'j' || src[j] == 'J') {
		return lexErr(start, "complex numbers are not supported")
	}
	text := strings.ToLower(strings.ReplaceAll(src[start:j], "_", ""))
	if strings.HasPrefix(text, ".") {
		text = "0" + text
	}
	if strings.HasSuffix(text, ".") {
		text += "0"
	}
	text = strings.Replace(text, ".e", ".0e", 1)
	lx.i = j
	lx.emit(tNum, text, start)
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// str scans a string literal whose quote is at lx.i; start is where its prefix began.
func (lx *lexer) str(start int, prefix string) error {
	raw := strings.Contains(prefix, "r")
	isBytes := strings.Contains(prefix, "b")
	isF := strings.Contains(prefix, "f")
	src := lx.src
	q := src[lx.i : lx.i+1]
	if strings.HasPrefix(src[lx.i:], q+q+q) {
		q = q + q + q
	}
	lx.i += len(q)
	if isF {
		return lx.fstring(start, q, raw)
	}
	// Find the closing quote.
	j := lx.i
	for {
		if j >= len(src) {
			return lexErr(start, "unterminated string literal")
		}
		if src[j] == '\\' {
			j += 2
			continue
		}
		if len(q) == 1 && src[j] == '\n' {
			return lexErr(start, "unterminated string literal")
		}
		if strings.HasPrefix(src[j:], q) {
			break
		}
		j++
	}
	body := src[lx.i:j]
	lx.i = j + len(q)
	val := body
	if !raw {
		var err error
		val, err = unescapePy(body, isBytes)
		if err != nil {
			return lexErr(start, "%v", err)
		}
	}
	text := starlarkQuote(val)
	if isBytes {
		text = "b" + text
	}
	lx.emit(tStr, text, start)
	return nil
}

// fstring scans the body of an f-string (the opening quote q is consumed) and
// emits `__fs((lit0, ..., litN), conv1, spec1, (expr1), ...)`.
func (lx *lexer) fstring(start int, q string, raw bool) error {
	src := lx.src
	end := func(j int) bool { return strings.HasPrefix(src[j:], q) }
	j, err := lx.fstringBody(start, end, raw, len(q) == 1)
	if err != nil {
		return err
	}
	if j >= len(src) {
		return lexErr(start, "unterminated f-string")
	}
	lx.i = j + len(q)
	return nil
}

// fstringBody emits the __fs call for an f-string body starting at lx.i and
// ending where stop reports true (or at end of input). It returns the offset
// where the body stopped.
func (lx *lexer) fstringBody(start int, stop func(int) bool, raw, singleLine bool) (int, error) {
	src := lx.src
	var lits []string
	var cur strings.Builder
	litStart := lx.i
	var fields [][]token
	j := lx.i
	for j < len(src) && !stop(j) {
		c := src[j]
		switch {
		case c == '\\' && !raw:
			// Escapes are processed per literal chunk below; copy the pair.
			if j+1 < len(src) {
				if src[j+1] == 'N' && j+2 < len(src) && src[j+2] == '{' {
					k := strings.IndexByte(src[j:], '}')
					if k < 0 {
						return 0, lexErr(j, "malformed \\N character escape")
					}
					cur.WriteString(src[j : j+k+1])
					j += k + 1
					continue
				}
				cur.WriteString(src[j : j+2])
				j += 2
				continue
			}
			cur.WriteByte(c)
			j++
		case c == '\n' && singleLine:
			return 0, lexErr(start, "unterminated f-string")
		case c == '{' && j+1 < len(src) && src[j+1] == '{':
			cur.WriteByte('{')
			j += 2
		case c == '}' && j+1 < len(src) && src[j+1] == '}':
			cur.WriteByte('}')
			j += 2
		case c == '}':
			return 0, lexErr(j, "f-string: single '}' is not allowed")
		case c == '{':
			lit := cur.String()
			if !raw {
				var err error
				lit, err = unescapePy(lit, false)
				if err != nil {
					return 0, lexErr(litStart, "%v", err)
				}
			}
			lits = append(lits, lit)
			cur.Reset()
			ftoks, next, err := lx.fieldAt(j, raw, singleLine)
			if err != nil {
				return 0, err
			}
			fields = append(fields, ftoks)
			j = next
			litStart = j
		default:
			cur.WriteByte(c)
			j++
		}
	}
	lit := cur.String()
	if !raw {
		var err error
		lit, err = unescapePy(lit, false)
		if err != nil {
			return 0, lexErr(litStart, "%v", err)
		}
	}
	lits = append(lits, lit)

	lx.emit(tName, "__fs", start)
	lx.emit(tOp, "(", start)
	lx.emit(tOp, "(", start)
	for _, l := range lits {
		lx.emit(tStr, starlarkQuote(l), start)
		lx.emit(tOp, ",", start)
	}
	lx.emit(tOp, ")", start)
	for _, f := range fields {
		lx.emit(tOp, ",", start)
		lx.toks = append(lx.toks, f...)
	}
	lx.emit(tOp, ")", start)
	return j, nil
}

// fieldAt parses a replacement field whose '{' is at j. It returns the tokens
// `conv, spec, (expr)` and the offset just past the closing '}'.
func (lx *lexer) fieldAt(j int, raw, singleLine bool) ([]token, int, error) {
	src := lx.src
	open := j
	sub := &lexer{src: src, base: lx.base, i: j + 1}
	if err := sub.run(true); err != nil {
		return nil, 0, err
	}
	if len(sub.toks) == 0 {
		return nil, 0, lexErr(open, "f-string: empty expression not allowed")
	}
	k := sub.i
	if k >= len(src) {
		return nil, 0, lexErr(open, "f-string: expecting '}'")
	}
	exprText := src[j+1 : k]
	conv := ""
	debug := false
	if src[k] == '=' {
		debug = true
		k++
	}
	if k < len(src) && src[k] == '!' {
		if k+1 >= len(src) || !strings.ContainsRune("rsa", rune(src[k+1])) {
			return nil, 0, lexErr(k, "f-string: invalid conversion character: expected 's', 'r', or 'a'")
		}
		conv = src[k+1 : k+2]
		k += 2
	}
	var out []token
	pos := lx.base + open
	if debug && conv == "" {
		conv = "r"
	}
	var specToks []token
	if k < len(src) && src[k] == ':' {
		// The spec is itself an f-string body that ends at the matching '}'.
		spec := &lexer{src: src, base: lx.base, i: k + 1}
		end, err := spec.fstringBody(k+1, func(p int) bool { return src[p] == '}' }, true, singleLine)
		if err != nil {
			return nil, 0, err
		}
		specToks = spec.toks
		k = end
		if debug && conv == "r" {
			conv = "" // Python: {x=:spec} formats the value with spec, not repr
		}
	}
	if k >= len(src) || src[k] != '}' {
		return nil, 0, lexErr(open, "f-string: expecting '}'")
	}
	k++
	if debug {
		// {x=} prints the expression text, '=', then the value.
		out = append(out, token{tStr, starlarkQuote(exprText + "="), pos})
	} else {
		out = append(out, token{tStr, `""`, pos})
	}
	out = append(out, token{tOp, ",", pos}, token{tStr, strconv.Quote(conv), pos}, token{tOp, ",", pos})
	if specToks == nil {
		out = append(out, token{tStr, `""`, pos})
	} else {
		out = append(out, specToks...)
	}
	out = append(out, token{tOp, ",", pos}, token{tOp, "(", pos})
	out = append(out, sub.toks...)
	out = append(out, token{tOp, ")", lx.base + k - 1})
	return out, k, nil
}

// unescapePy decodes Python string escapes. Unknown escapes are kept verbatim,
// as Python does.
func unescapePy(s string, isBytes bool) (string, error) {
	if !strings.ContainsRune(s, '\\') {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'a':
			b.WriteByte(7)
		case 'b':
			b.WriteByte(8)
		case 'f':
			b.WriteByte(12)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte(11)
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n := 0
			k := i
			for k < len(s) && k < i+3 && s[k] >= '0' && s[k] <= '7' {
				n = n*8 + int(s[k]-'0')
				k++
			}
			i = k - 1
			writeCode(&b, n, isBytes)
		case 'x', 'u', 'U':
			size := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if isBytes && e != 'x' {
				b.WriteByte('\\')
				b.WriteByte(e)
				continue
			}
			if i+size >= len(s) {
				return "", fmt.Errorf("truncated \\%c escape", e)
			}
			n, err := strconv.ParseUint(s[i+1:i+1+size], 16, 32)
			if err != nil {
				return "", fmt.Errorf("truncated \\%c escape", e)
			}
			if n > unicode.MaxRune {
				return "", fmt.Errorf("illegal Unicode character in \\U escape")
			}
			i += size
			writeCode(&b, int(n), isBytes)
		case 'N':
			return "", fmt.Errorf("\\N{...} escapes are not supported")
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), nil
}

func writeCode(b *strings.Builder, n int, isBytes bool) {
	if isBytes {
		b.WriteByte(byte(n))
		return
	}
	b.WriteRune(rune(n))
}

// starlarkQuote renders s as a Starlark string literal.
func starlarkQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else if !unicode.IsPrint(r) && r > 0x7f {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				b.WriteString(s[i : i+size])
			}
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}
