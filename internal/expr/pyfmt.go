package expr

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.starlark.net/starlark"
)

// Python's str() and repr(), which differ from Starlark's (single quotes,
// `{'a': 1}`), so prompts built from data look the way they did in Julep.

func pyStr(v starlark.Value) string {
	s, _ := pyStrE(v)
	return s
}

func pyRepr(v starlark.Value) string {
	s, _ := pyReprE(v)
	return s
}

// pyStrE is Python's str(v), failing when the text would exceed
// maxValueBytes: a shared reference repeated (str([[0]*3000]*3000)) is
// small in memory and huge as text, so the writer stops at the limit.
func pyStrE(v starlark.Value) (string, error) {
	if s, ok := v.(starlark.String); ok {
		return string(s), nil
	}
	return pyReprE(v)
}

func pyReprE(v starlark.Value) (string, error) {
	if err := checkTextSize(v, 2, "string"); err != nil {
		return "", err
	}
	var w reprWriter
	w.repr(v, 0)
	if w.full {
		return "", textTooLarge("string")
	}
	return w.b.String(), nil
}

func textTooLarge(kind string) error {
	return fmt.Errorf("expression would build a %s larger than %s; the limit is %s", kind, humanBytes(maxValueBytes), humanBytes(maxValueBytes))
}

// checkTextSize refuses a container whose text (repr or JSON, with sep
// bytes between items) would exceed maxValueBytes, before writing any of it.
func checkTextSize(v starlark.Value, sep int64, kind string) error {
	switch v.(type) {
	case *starlark.List, starlark.Tuple, *starlark.Dict, *starlark.Set, *stepList:
		var memo map[any]int64
		if n := textSize(v, sep, &memo, 0); n > maxValueBytes {
			return tooLarge(n, kind)
		}
	}
	return nil
}

// textSize is a lower bound on the length of v's repr or JSON text. Nested
// containers are measured once (memo), so a shared reference repeated a
// million times costs one measurement.
func textSize(v starlark.Value, sep int64, memo *map[any]int64, depth int) int64 {
	if depth > 50 {
		return 3
	}
	var key any
	if depth > 0 {
		key = shareKey(v)
	}
	if key != nil {
		if *memo == nil {
			*memo = map[any]int64{}
		}
		if n, ok := (*memo)[key]; ok {
			return n
		}
		(*memo)[key] = 0 // a cycle counts once
	}
	var n int64
	switch x := v.(type) {
	case starlark.NoneType, starlark.Bool:
		n = 4
	case starlark.Int:
		n = 1
		if i, ok := x.Int64(); ok {
			for i >= 10 || i <= -10 {
				i /= 10
				n++
			}
		} else {
			n = int64(x.BigInt().BitLen() * 3 / 10)
		}
	case starlark.Float:
		n = 3
	case starlark.String:
		n = int64(len(x)) + 2
	case starlark.Bytes:
		n = int64(len(x)) + 3
	case *starlark.Dict:
		n = 2
		for i, item := range x.Items() {
			if i > 0 {
				n = addSat(n, sep)
			}
			n = addSat(n, addSat(textSize(item[0], sep, memo, depth+1), addSat(sep, textSize(item[1], sep, memo, depth+1))))
		}
	case starlark.Iterable:
		n = 2
		it := x.Iterate()
		var e starlark.Value
		for i := 0; it.Next(&e); i++ {
			if i > 0 {
				n = addSat(n, sep)
			}
			n = addSat(n, textSize(e, sep, memo, depth+1))
		}
		it.Done()
	default:
		n = 1
	}
	if key != nil {
		(*memo)[key] = n
	}
	return n
}

// reprWriter writes Python reprs until maxValueBytes, then only records
// that it is full.
type reprWriter struct {
	b    strings.Builder
	full bool
}

func (w *reprWriter) room(n int) bool {
	if w.full || w.b.Len()+n > maxValueBytes {
		w.full = true
		return false
	}
	return true
}

func (w *reprWriter) str(s string) {
	if w.room(len(s)) {
		w.b.WriteString(s)
	}
}

func (w *reprWriter) byte(c byte) {
	if w.room(1) {
		w.b.WriteByte(c)
	}
}

func (w *reprWriter) repr(v starlark.Value, depth int) {
	if w.full {
		return
	}
	if depth > 50 {
		w.str("...")
		return
	}
	switch x := v.(type) {
	case starlark.NoneType:
		w.str("None")
	case starlark.Bool:
		if x {
			w.str("True")
		} else {
			w.str("False")
		}
	case starlark.Int:
		w.str(x.String())
	case starlark.Float:
		w.str(pyFloatRepr(float64(x)))
	case starlark.String:
		if w.room(len(x) + 2) { // quoting only grows it
			w.str(pyQuote(string(x)))
		}
	case starlark.Bytes:
		if w.room(len(x) + 3) {
			w.str("b" + pyQuote(string(x)))
		}
	case *starlark.List:
		w.seq("[", "]", x, depth, false)
	case *stepList:
		w.seq("[", "]", x.list, depth, false)
	case starlark.Tuple:
		w.seq("(", ")", x, depth, x.Len() == 1)
	case *starlark.Set:
		if x.Len() == 0 {
			w.str("set()")
			return
		}
		w.seq("{", "}", x, depth, false)
	case *starlark.Dict:
		w.byte('{')
		for i, item := range x.Items() {
			if w.full {
				return
			}
			if i > 0 {
				w.str(", ")
			}
			w.repr(item[0], depth+1)
			w.str(": ")
			w.repr(item[1], depth+1)
		}
		w.byte('}')
	case *datetimeValue:
		w.str(x.String())
	default:
		w.str(v.String())
	}
}

func (w *reprWriter) seq(open, close string, it starlark.Iterable, depth int, single bool) {
	w.str(open)
	iter := it.Iterate()
	defer iter.Done()
	var e starlark.Value
	i := 0
	for !w.full && iter.Next(&e) {
		if i > 0 {
			w.str(", ")
		}
		w.repr(e, depth+1)
		i++
	}
	if single {
		w.byte(',')
	}
	w.str(close)
}

// pyQuote quotes s the way Python's repr does.
func pyQuote(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r > 0x7f && !unicode.IsPrint(r):
			if r <= 0xff {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else if r <= 0xffff {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// pyFloatRepr formats f as Python's repr: shortest round-trip digits, with an
// exponent only below 1e-4 or from 1e16.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	if exp < -4 || exp >= 16 {
		if !strings.Contains(mant, ".") {
			// Python writes 1e+16, not 1.0e+16.
		}
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// formatSpec is Python's format-spec mini-language:
// [[fill]align][sign][z][#][0][width][grouping][.precision][type]
type formatSpec struct {
	fill      rune
	align     byte
	sign      byte
	alt       bool
	zero      bool
	width     int
	grouping  byte
	precision int // -1 if absent
	typ       byte
}

func parseSpec(spec string) (formatSpec, error) {
	fs := formatSpec{fill: ' ', precision: -1}
	s := spec
	if r, size := utf8.DecodeRuneInString(s); size > 0 && len(s) > size && strings.IndexByte("<>=^", s[size]) >= 0 {
		fs.fill, fs.align = r, s[size]
		s = s[size+1:]
	} else if len(s) > 0 && strings.IndexByte("<>=^", s[0]) >= 0 {
		fs.align = s[0]
		s = s[1:]
	}
	if len(s) > 0 && strings.IndexByte("+- ", s[0]) >= 0 {
		fs.sign = s[0]
		s = s[1:]
	}
	if len(s) > 0 && s[0] == 'z' {
		s = s[1:]
	}
	if len(s) > 0 && s[0] == '#' {
		fs.alt = true
		s = s[1:]
	}
	if len(s) > 0 && s[0] == '0' {
		fs.zero = true
		s = s[1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 {
		// The padding is built from the width: check its size first.
		w, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			w = math.MaxInt64
		}
		if n := mulSat(w, int64(utf8.RuneLen(fs.fill))); n > maxValueBytes {
			return fs, tooLarge(n, "string")
		}
		fs.width = int(w)
		s = s[i:]
	}
	if len(s) > 0 && (s[0] == ',' || s[0] == '_') {
		fs.grouping = s[0]
		s = s[1:]
	}
	if len(s) > 0 && s[0] == '.' {
		i = 1
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 1 {
			return fs, fmt.Errorf("invalid format spec %q: format specifier missing precision", spec)
		}
		p, err := strconv.Atoi(s[1:i])
		if err != nil || p > 1000 {
			return fs, fmt.Errorf("invalid format spec %q: precision too large", spec)
		}
		fs.precision = p
		s = s[i:]
	}
	if len(s) > 1 {
		return fs, fmt.Errorf("invalid format specifier %q", spec)
	}
	if len(s) == 1 {
		fs.typ = s[0]
	}
	return fs, nil
}

// formatValue implements format(v, spec).
func formatValue(v starlark.Value, spec string) (string, error) {
	if spec == "" {
		return pyStrE(v)
	}
	fs, err := parseSpec(spec)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case starlark.String:
		if fs.typ != 0 && fs.typ != 's' {
			return "", fmt.Errorf("unknown format code '%c' for object of type 'str'", fs.typ)
		}
		s := string(x)
		if fs.precision >= 0 && utf8.RuneCountInString(s) > fs.precision {
			s = string([]rune(s)[:fs.precision])
		}
		return pad(s, fs, '<'), nil
	case starlark.Bool:
		if fs.typ == 0 || fs.typ == 's' {
			return pad(pyStr(x), fs, '<'), nil
		}
		if x {
			return formatInt(big.NewInt(1), fs)
		}
		return formatInt(big.NewInt(0), fs)
	case starlark.Int:
		switch fs.typ {
		case 'e', 'E', 'f', 'F', 'g', 'G', '%':
			f, _ := starlark.AsFloat(x)
			return formatFloat(f, fs)
		}
		return formatInt(x.BigInt(), fs)
	case starlark.Float:
		return formatFloat(float64(x), fs)
	case *datetimeValue:
		return x.strftime(spec)
	}
	if fs.typ == 0 && v == starlark.None && spec == "" {
		return pyStr(v), nil
	}
	return "", fmt.Errorf("unsupported format string passed to %s.__format__", v.Type())
}

func pad(s string, fs formatSpec, defAlign byte) string {
	n := utf8.RuneCountInString(s)
	if n >= fs.width {
		return s
	}
	align := fs.align
	fill := fs.fill
	if align == 0 {
		align = defAlign
		if fs.zero && defAlign == '>' {
			align, fill = '=', '0'
		}
	}
	padN := fs.width - n
	f := string(fill)
	switch align {
	case '<':
		return s + strings.Repeat(f, padN)
	case '^':
		left := padN / 2
		return strings.Repeat(f, left) + s + strings.Repeat(f, padN-left)
	case '=':
		// Padding goes after the sign (and base prefix).
		signLen := 0
		if len(s) > 0 && (s[0] == '-' || s[0] == '+' || s[0] == ' ') {
			signLen = 1
		}
		if len(s) > signLen+1 && s[signLen] == '0' && strings.IndexByte("xXobB", s[signLen+1]) >= 0 {
			signLen += 2
		}
		return s[:signLen] + strings.Repeat(f, padN) + s[signLen:]
	}
	return strings.Repeat(f, padN) + s
}

func signOf(neg bool, fs formatSpec) string {
	if neg {
		return "-"
	}
	switch fs.sign {
	case '+':
		return "+"
	case ' ':
		return " "
	}
	return ""
}

func group(digits string, sep byte, every int) string {
	if sep == 0 || len(digits) <= every {
		return digits
	}
	var b strings.Builder
	first := len(digits) % every
	if first > 0 {
		b.WriteString(digits[:first])
	}
	for i := first; i < len(digits); i += every {
		if b.Len() > 0 {
			b.WriteByte(sep)
		}
		b.WriteString(digits[i : i+every])
	}
	return b.String()
}

func formatInt(n *big.Int, fs formatSpec) (string, error) {
	neg := n.Sign() < 0
	abs := new(big.Int).Abs(n)
	var digits, prefix string
	switch fs.typ {
	case 0, 'd', 'n':
		digits = group(abs.String(), fs.grouping, 3)
	case 'x':
		digits, prefix = group(abs.Text(16), fs.grouping, 4), "0x"
	case 'X':
		digits, prefix = strings.ToUpper(group(abs.Text(16), fs.grouping, 4)), "0X"
	case 'o':
		digits, prefix = group(abs.Text(8), fs.grouping, 4), "0o"
	case 'b':
		digits, prefix = group(abs.Text(2), fs.grouping, 4), "0b"
	case 'c':
		if !abs.IsInt64() || abs.Int64() > unicode.MaxRune {
			return "", fmt.Errorf("%%c arg not in range(0x110000)")
		}
		return pad(string(rune(abs.Int64())), fs, '<'), nil
	case 's':
		return "", fmt.Errorf("unknown format code 's' for object of type 'int'")
	default:
		return "", fmt.Errorf("unknown format code '%c' for object of type 'int'", fs.typ)
	}
	if !fs.alt {
		prefix = ""
	}
	return pad(signOf(neg, fs)+prefix+digits, fs, '>'), nil
}

func formatFloat(f float64, fs formatSpec) (string, error) {
	neg := math.Signbit(f) && !math.IsNaN(f)
	a := math.Abs(f)
	prec := fs.precision
	var body string
	switch fs.typ {
	case 'f', 'F', '%':
		if prec < 0 {
			prec = 6
		}
		if fs.typ == '%' {
			a *= 100
		}
		body = strconv.FormatFloat(a, 'f', prec, 64)
	case 'e', 'E':
		if prec < 0 {
			prec = 6
		}
		body = fixExp(strconv.FormatFloat(a, 'e', prec, 64))
	case 'g', 'G':
		if prec < 0 {
			prec = 6
		}
		if prec == 0 {
			prec = 1
		}
		body = pyGeneral(a, prec, fs.alt)
	case 0, 'n':
		if prec < 0 {
			body = pyFloatRepr(a)
		} else {
			if prec == 0 {
				prec = 1
			}
			body = pyGeneral(a, prec, true)
			if !strings.ContainsAny(body, ".e") && !math.IsInf(a, 0) && !math.IsNaN(a) {
				body += ".0"
			}
		}
	default:
		return "", fmt.Errorf("unknown format code '%c' for object of type 'float'", fs.typ)
	}
	if math.IsInf(a, 0) {
		body = "inf"
	} else if math.IsNaN(a) {
		body = "nan"
	}
	if fs.typ == 'F' || fs.typ == 'E' || fs.typ == 'G' {
		body = strings.ToUpper(body)
	}
	if fs.grouping != 0 {
		intPart, rest := body, ""
		if i := strings.IndexAny(body, ".e"); i >= 0 {
			intPart, rest = body[:i], body[i:]
		}
		body = group(intPart, fs.grouping, 3) + rest
	}
	if fs.typ == '%' {
		body += "%"
	}
	return pad(signOf(neg, fs)+body, fs, '>'), nil
}

// pyGeneral implements the 'g' presentation with precision p.
func pyGeneral(a float64, p int, keepZeros bool) string {
	if a == 0 {
		return "0"
	}
	exp := int(math.Floor(math.Log10(a)))
	// Round first: 9.9999 with p=2 becomes 10, changing the exponent.
	e := strconv.FormatFloat(a, 'e', p-1, 64)
	if _, es, ok := strings.Cut(e, "e"); ok {
		exp, _ = strconv.Atoi(es)
	}
	var s string
	if exp < -4 || exp >= p {
		s = strconv.FormatFloat(a, 'e', p-1, 64)
		mant, ex, _ := strings.Cut(s, "e")
		if !keepZeros && strings.Contains(mant, ".") {
			mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
		}
		return fixExp(mant + "e" + ex)
	}
	s = strconv.FormatFloat(a, 'f', max(p-1-exp, 0), 64)
	if !keepZeros && strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// fixExp makes Go's exponent (e+07) look like Python's (e+07): both use at
// least two digits, so only ensure the sign is present.
func fixExp(s string) string { return s }

// printf implements Python's `str % args`.
func printf(format string, args starlark.Value) (string, error) {
	var list []starlark.Value
	var mapping starlark.Mapping
	switch a := args.(type) {
	case starlark.Tuple:
		list = a
	case *starlark.Dict:
		mapping = a
		list = []starlark.Value{a}
	default:
		list = []starlark.Value{args}
	}
	next := 0
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return "", fmt.Errorf("incomplete format")
		}
		var arg starlark.Value
		if format[i] == '(' {
			end := strings.IndexByte(format[i:], ')')
			if end < 0 || mapping == nil {
				return "", fmt.Errorf("format requires a mapping")
			}
			key := format[i+1 : i+end]
			v, found, err := mapping.Get(starlark.String(key))
			if err != nil || !found {
				return "", fmt.Errorf("key %q not found in format mapping", key)
			}
			arg = v
			i += end + 1
		}
		start := i
		for i < len(format) && strings.IndexByte("-+ #0", format[i]) >= 0 {
			i++
		}
		flags := format[start:i]
		wStart := i
		for i < len(format) && (format[i] >= '0' && format[i] <= '9' || format[i] == '.') {
			i++
		}
		widthPrec := format[wStart:i]
		if i >= len(format) {
			return "", fmt.Errorf("incomplete format")
		}
		verb := format[i]
		if verb == '%' {
			b.WriteByte('%')
			continue
		}
		if arg == nil {
			if next >= len(list) {
				return "", fmt.Errorf("not enough arguments for format string")
			}
			arg = list[next]
			next++
		}
		// Translate to a format spec.
		var spec strings.Builder
		align := ""
		zero := ""
		sign := ""
		alt := ""
		for _, f := range flags {
			switch f {
			case '-':
				align = "<"
			case '+':
				sign = "+"
			case ' ':
				if sign == "" {
					sign = " "
				}
			case '#':
				alt = "#"
			case '0':
				zero = "0"
			}
		}
		if align != "" {
			zero = ""
		}
		var s string
		var err error
		switch verb {
		case 's', 'r', 'a':
			if verb == 's' {
				s, err = pyStrE(arg)
			} else {
				s, err = pyReprE(arg)
			}
			if err != nil {
				return "", err
			}
			spec.WriteString(align + widthPrec)
			s, err = formatValue(starlark.String(s), spec.String())
		case 'd', 'i', 'u':
			n, convErr := toIntValue(arg)
			if convErr != nil {
				return "", fmt.Errorf("%%%c format: a real number is required, not %s", verb, arg.Type())
			}
			w, _, _ := strings.Cut(widthPrec, ".")
			spec.WriteString(align + sign + zero + w + "d")
			s, err = formatValue(n, spec.String())
		case 'x', 'X', 'o':
			n, convErr := toIntValue(arg)
			if convErr != nil {
				return "", fmt.Errorf("%%%c format: an integer is required, not %s", verb, arg.Type())
			}
			w, _, _ := strings.Cut(widthPrec, ".")
			spec.WriteString(align + sign + alt + zero + w + string(verb))
			s, err = formatValue(n, spec.String())
		case 'e', 'E', 'f', 'F', 'g', 'G':
			f, ok := starlark.AsFloat(arg)
			if !ok {
				return "", fmt.Errorf("must be real number, not %s", arg.Type())
			}
			spec.WriteString(align + sign + alt + zero + widthPrec + string(verb))
			s, err = formatValue(starlark.Float(f), spec.String())
		case 'c':
			switch a := arg.(type) {
			case starlark.String:
				s = string(a)
			default:
				spec.WriteString("c")
				s, err = formatValue(arg, spec.String())
			}
		default:
			return "", fmt.Errorf("unsupported format character '%c'", verb)
		}
		if err != nil {
			return "", err
		}
		// Fields are bounded one by one; many of them must be bounded too
		// (('%s' * 1000) % ((big,) * 1000)).
		if b.Len()+len(s) > maxValueBytes {
			return "", textTooLarge("string")
		}
		b.WriteString(s)
	}
	if mapping == nil && next < len(list) {
		return "", fmt.Errorf("not all arguments converted during string formatting")
	}
	return b.String(), nil
}

func strValue(v starlark.Value) (starlark.Value, error) {
	s, err := pyStrE(v)
	return starlark.String(s), err
}

func reprValue(v starlark.Value) (starlark.Value, error) {
	s, err := pyReprE(v)
	return starlark.String(s), err
}

func toIntValue(v starlark.Value) (starlark.Value, error) {
	switch x := v.(type) {
	case starlark.Int:
		return x, nil
	case starlark.Bool:
		if x {
			return starlark.MakeInt(1), nil
		}
		return starlark.MakeInt(0), nil
	case starlark.Float:
		return starlark.NumberToInt(x)
	}
	return nil, fmt.Errorf("not a number")
}

// strFormat implements Python's str.format: `{}`, `{0}`, `{name}`, with
// `.attr`/`[key]` access, `!r`/`!s` and a format spec.
func strFormat(thread *starlark.Thread, format string, args starlark.Tuple, kwargs []starlark.Tuple) (string, error) {
	var b strings.Builder
	auto := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c == '}' {
			if i+1 < len(format) && format[i+1] == '}' {
				b.WriteByte('}')
				i++
				continue
			}
			return "", fmt.Errorf("single '}' encountered in format string")
		}
		if c != '{' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(format) && format[i+1] == '{' {
			b.WriteByte('{')
			i++
			continue
		}
		end := strings.IndexByte(format[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("single '{' encountered in format string")
		}
		field := format[i+1 : i+end]
		i += end
		name, spec, _ := strings.Cut(field, ":")
		conv := ""
		if k := strings.IndexByte(name, '!'); k >= 0 {
			name, conv = name[:k], name[k+1:]
		}
		// Split the argument name from .attr / [key] accessors.
		head := name
		rest := ""
		if k := strings.IndexAny(name, ".["); k >= 0 {
			head, rest = name[:k], name[k:]
		}
		var v starlark.Value
		if head == "" {
			if auto >= len(args) {
				return "", fmt.Errorf("replacement index %d out of range for positional args tuple", auto)
			}
			v = args[auto]
			auto++
		} else if n, err := strconv.Atoi(head); err == nil {
			if n < 0 || n >= len(args) {
				return "", fmt.Errorf("replacement index %d out of range for positional args tuple", n)
			}
			v = args[n]
		} else {
			for _, kv := range kwargs {
				if string(kv[0].(starlark.String)) == head {
					v = kv[1]
				}
			}
			if v == nil {
				return "", fmt.Errorf("format: missing key %q", head)
			}
		}
		for rest != "" {
			if rest[0] == '.' {
				k := strings.IndexAny(rest[1:], ".[")
				attr := rest[1:]
				if k >= 0 {
					attr, rest = rest[1:1+k], rest[1+k:]
				} else {
					rest = ""
				}
				nv, err := getAttr(thread, v, attr)
				if err != nil {
					return "", err
				}
				v = nv
				continue
			}
			k := strings.IndexByte(rest, ']')
			if k < 0 {
				return "", fmt.Errorf("missing ']' in format string")
			}
			key := rest[1:k]
			rest = rest[k+1:]
			var kv starlark.Value = starlark.String(key)
			if n, err := strconv.Atoi(key); err == nil {
				kv = starlark.MakeInt(n)
			}
			nv, err := getIndex(v, kv)
			if err != nil {
				return "", err
			}
			v = nv
		}
		var err error
		switch conv {
		case "r", "a":
			v, err = reprValue(v)
		case "s":
			v, err = strValue(v)
		case "":
		default:
			return "", fmt.Errorf("unknown conversion specifier %s", conv)
		}
		if err != nil {
			return "", err
		}
		s, err := formatValue(v, spec)
		if err != nil {
			return "", err
		}
		if b.Len()+len(s) > maxValueBytes {
			return "", textTooLarge("string")
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func getIndex(v, k starlark.Value) (starlark.Value, error) {
	switch x := v.(type) {
	case starlark.Mapping:
		r, found, err := x.Get(k)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("key %s not found", pyRepr(k))
		}
		return r, nil
	case starlark.Indexable:
		i, ok := k.(starlark.Int)
		if !ok {
			return nil, fmt.Errorf("%s indices must be integers", v.Type())
		}
		n, _ := i.Int64()
		if n < 0 {
			n += int64(x.Len())
		}
		if n < 0 || n >= int64(x.Len()) {
			return nil, fmt.Errorf("%s index out of range", v.Type())
		}
		return x.Index(int(n)), nil
	}
	return nil, fmt.Errorf("%s is not subscriptable", v.Type())
}
