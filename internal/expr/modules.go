package expr

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	starmath "go.starlark.net/lib/math"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.yaml.in/yaml/v3"

	"github.com/astra-app/astra/internal/yamlsize"
)

// The standard-library subset Julep exposes (evaluator.py's stdlib and
// ALLOWED_FUNCTIONS), implemented in Go.

// maxInputString bounds the text handed to parsers (Julep: 1 MB).
const maxInputString = 1_000_000

func module(name string, members starlark.StringDict) *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: name, Members: members}
}

func fn(name string, f builtinFn) *starlark.Builtin { return newFn(name, f) }

func oneString(name string, args starlark.Tuple, kw []starlark.Tuple) (string, error) {
	var s string
	if err := starlark.UnpackPositionalArgs(name, args, kw, 1, &s); err != nil {
		return "", err
	}
	if len(s) > maxInputString {
		return "", fmt.Errorf("%s: string exceeds maximum length of %d", name, maxInputString)
	}
	return s, nil
}

func modules() starlark.StringDict {
	loadJSON := fn("load_json", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var s string
		var strict = true
		if err := starlark.UnpackArgs(b.Name(), args, kw, "s", &s, "strict?", &strict); err != nil {
			return nil, err
		}
		if len(s) > maxInputString {
			return nil, fmt.Errorf("string exceeds maximum length of %d", maxInputString)
		}
		// Decoded values take a few times their text; only the top level is
		// charged once built, so reserve for the rest now.
		if err := budgetOf(t).reserve(parsedBytes*int64(len(s)), "value"); err != nil {
			return nil, err
		}
		return parseJSON(s, strict)
	})
	dumpJSON := fn("dump_json", fnDumpJSON)
	loadYAML := fn("load_yaml", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		s, err := oneString(b.Name(), args, kw)
		if err != nil {
			return nil, err
		}
		return parseYAML(t, s)
	})
	dumpYAML := fn("dump_yaml", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		if len(args) < 1 {
			return nil, fmt.Errorf("%s: missing argument", b.Name())
		}
		g, err := fromStarlark(args[0], budgetOf(t))
		if err != nil {
			return nil, err
		}
		if len(args) > 1 || len(kw) > 0 {
			// Julep's dump(value) takes the value alone.
			return nil, fmt.Errorf("%s() takes 1 positional argument", b.Name())
		}
		out, err := pyYAMLDump(g)
		if err != nil {
			return nil, err
		}
		return charge(t, starlark.String(out))
	})
	extractJSON := fn("extract_json", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		s, err := oneString(b.Name(), args, kw)
		if err != nil {
			return nil, err
		}
		return extractJSON(s)
	})

	mathMembers := starlark.StringDict{}
	for k, v := range starmath.Module.Members {
		mathMembers[k] = v
	}
	floatFn := func(name string, f func(float64) starlark.Value) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var x starlark.Value
			if err := starlark.UnpackPositionalArgs(name, args, kw, 1, &x); err != nil {
				return nil, err
			}
			v, ok := starlark.AsFloat(boolToInt(x))
			if !ok {
				return nil, fmt.Errorf("%s: must be real number, not %s", name, x.Type())
			}
			return f(v), nil
		})
	}
	domain := func(name string, f func(float64) float64) *starlark.Builtin {
		return floatFn(name, func(x float64) starlark.Value {
			if x <= 0 {
				return nil
			}
			return starlark.Float(f(x))
		})
	}
	mathMembers["log10"] = wrapDomain(domain("log10", math.Log10))
	mathMembers["log2"] = wrapDomain(domain("log2", func(x float64) float64 {
		// C's log2, which Python calls, is exact for powers of two and
		// otherwise agrees with log10(x)/log10(2) where Go's Log2 is an ulp off.
		if frac, exp := math.Frexp(x); frac == 0.5 {
			return float64(exp - 1)
		}
		return math.Log10(x) / math.Log10(2)
	}))
	mathMembers["isnan"] = floatFn("isnan", func(x float64) starlark.Value { return starlark.Bool(math.IsNaN(x)) })
	mathMembers["isinf"] = floatFn("isinf", func(x float64) starlark.Value { return starlark.Bool(math.IsInf(x, 0)) })
	mathMembers["isfinite"] = floatFn("isfinite", func(x float64) starlark.Value { return starlark.Bool(!math.IsInf(x, 0) && !math.IsNaN(x)) })
	mathMembers["inf"] = starlark.Float(math.Inf(1))
	mathMembers["nan"] = starlark.Float(math.NaN())
	mathMembers["pow"] = starlark.NewBuiltin("pow", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		if len(args) != 2 {
			return nil, fmt.Errorf("pow expected 2 arguments")
		}
		x, ok1 := starlark.AsFloat(args[0])
		y, ok2 := starlark.AsFloat(args[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("pow: must be real numbers")
		}
		return starlark.Float(math.Pow(x, y)), nil
	})
	mathMembers["isclose"] = starlark.NewBuiltin("isclose", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var a, c starlark.Value
		relTol, absTol := 1e-9, 0.0
		if err := starlark.UnpackArgs(b.Name(), args, kw, "a", &a, "b", &c, "rel_tol?", &relTol, "abs_tol?", &absTol); err != nil {
			return nil, err
		}
		x, _ := starlark.AsFloat(a)
		y, _ := starlark.AsFloat(c)
		return starlark.Bool(math.Abs(x-y) <= math.Max(relTol*math.Max(math.Abs(x), math.Abs(y)), absTol)), nil
	})

	str := func(s string) starlark.Value { return starlark.String(s) }
	return starlark.StringDict{
		"load_json": loadJSON, "dump_json": dumpJSON, "load_yaml": loadYAML, "dump_yaml": dumpYAML,
		"extract_json": extractJSON,
		"chunk_doc": fn("chunk_doc", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			s, err := oneString(b.Name(), args, kw)
			if err != nil {
				return nil, err
			}
			var out []starlark.Value
			for _, c := range chunkDoc(s) {
				out = append(out, starlark.String(c))
			}
			return starlark.NewList(out), nil
		}),
		"search_regex": starlark.NewBuiltin("search_regex", func(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			return reCall(t, "search", args, kw)
		}),
		"match_regex": starlark.NewBuiltin("match_regex", func(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			v, err := reCall(t, "fullmatch", args, kw)
			if err != nil {
				return nil, err
			}
			return starlark.Bool(v != starlark.None), nil
		}),
		"json": module("json", starlark.StringDict{"loads": loadJSON, "dumps": dumpJSON}),
		"yaml": module("yaml", starlark.StringDict{"load": loadYAML, "safe_load": loadYAML, "dump": dumpYAML, "safe_dump": dumpYAML}),
		"re":   reModule(),
		"string": module("string", starlark.StringDict{
			"ascii_letters":   str("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
			"ascii_lowercase": str("abcdefghijklmnopqrstuvwxyz"),
			"ascii_uppercase": str("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
			"digits":          str("0123456789"),
			"hexdigits":       str("0123456789abcdefABCDEF"),
			"octdigits":       str("01234567"),
			"punctuation":     str("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
			"whitespace":      str(" \t\n\r\x0b\x0c"),
			"printable":       str("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\x0b\x0c"),
		}),
		"math":       module("math", mathMembers),
		"statistics": statisticsModule(),
		"base64":     base64Module(),
		"random":     randomModule(),
		"time":       timeModule(),
		"datetime":   datetimeModule(),
		"csv":        csvModule(),
		"urllib": module("urllib", starlark.StringDict{"parse": module("parse", urlParseMembers(starlark.StringDict{
			"quote": fn("quote", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
				var s string
				safe := "/"
				if err := starlark.UnpackArgs(b.Name(), args, kw, "string", &s, "safe?", &safe); err != nil {
					return nil, err
				}
				return starlark.String(pyQuoteURL(s, safe)), nil
			}),
			"unquote": fn("unquote", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
				s, err := oneString(b.Name(), args, kw)
				if err != nil {
					return nil, err
				}
				u, err := url.PathUnescape(s)
				if err != nil {
					return starlark.String(s), nil
				}
				return starlark.String(u), nil
			}),
			"urlencode": fn("urlencode", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
				var d *starlark.Dict
				if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &d); err != nil {
					return nil, err
				}
				var parts []string
				n := 0
				for _, item := range d.Items() {
					k, err := pyStrE(item[0])
					if err != nil {
						return nil, err
					}
					v, err := pyStrE(item[1])
					if err != nil {
						return nil, err
					}
					// Escaping can triple a value.
					if n += 3 * (len(k) + len(v) + 2); n > maxValueBytes {
						return nil, textTooLarge("string")
					}
					parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
				}
				return starlark.String(strings.Join(parts, "&")), nil
			}),
		}))}),
	}
}

// parsedBytes is how many bytes of Starlark values one byte of JSON or YAML
// text is reckoned to decode into.
const parsedBytes = 4

// parseYAML decodes a YAML document, refusing one whose aliases expand it
// beyond yamlsize.Limit before any alias is followed.
func parseYAML(t *starlark.Thread, s string) (starlark.Value, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(s), &root); err != nil {
		return nil, fmt.Errorf("invalid YAML: %v", err)
	}
	if len(root.Content) == 0 {
		return starlark.None, nil
	}
	if err := yamlsize.Check(&root, yamlsize.Limit(len(s))); err != nil {
		return nil, err
	}
	if err := budgetOf(t).reserve(mulSat(parsedBytes, yamlsize.Size(&root)), "value"); err != nil {
		return nil, err
	}
	var v any
	if err := root.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid YAML: %v", err)
	}
	return toStarlark(normalizeYAML(v), 0)
}

func pyQuoteURL(s, safe string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~", c) >= 0 || strings.IndexByte(safe, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// ---- JSON ----

func parseJSON(s string, strict bool) (starlark.Value, error) {
	if !strict {
		s = escapeControlInStrings(s)
	}
	var v any
	if err := decodeJSON([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	return toStarlark(v, 0)
}

// escapeControlInStrings escapes raw control characters inside JSON strings,
// which Python accepts with strict=False and LLMs often produce.
func escapeControlInStrings(s string) string {
	var b strings.Builder
	in, esc := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case in && c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func extractJSON(s string) (starlark.Value, error) {
	text := s
	if strings.Contains(s, "```") {
		var start int
		if i := strings.Index(s, "```json"); i >= 0 {
			start = i + 7
		} else {
			start = strings.Index(s, "```") + 3
		}
		end := strings.Index(s[start:], "```")
		if end < 0 {
			return nil, fmt.Errorf("code block has invalid or missing markers")
		}
		text = strings.TrimSpace(s[start : start+end])
	}
	v, err := parseJSON(text, false)
	if err != nil {
		preview := text
		if len(preview) > 100 {
			preview = preview[:100]
		}
		return nil, fmt.Errorf("failed to parse JSON: %v. The extracted text was: %s...", err, preview)
	}
	return v, nil
}

func fnDumpJSON(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	var indent starlark.Value = starlark.None
	var sortKeys bool
	ensureASCII := true
	var separators starlark.Value = starlark.None
	var dflt starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kw, "obj", &v, "indent?", &indent, "sort_keys?", &sortKeys,
		"ensure_ascii?", &ensureASCII, "separators?", &separators, "default?", &dflt); err != nil {
		return nil, err
	}
	e := jsonEncoder{itemSep: ", ", keySep: ": ", sortKeys: sortKeys, ascii: ensureASCII, bud: budgetOf(t)}
	switch ind := indent.(type) {
	case starlark.Int:
		n, _ := ind.Int64()
		if n > 64 {
			n = 64
		}
		if n >= 0 {
			e.indent = strings.Repeat(" ", int(n))
			e.pretty = true
			e.itemSep = ","
		}
	case starlark.String:
		if len(ind) > 64 {
			ind = ind[:64]
		}
		e.indent, e.pretty, e.itemSep = string(ind), true, ","
	}
	if t, ok := separators.(starlark.Tuple); ok && len(t) == 2 {
		a, ok1 := t[0].(starlark.String)
		c, ok2 := t[1].(starlark.String)
		if ok1 && ok2 && len(a) <= 64 && len(c) <= 64 {
			e.itemSep, e.keySep = string(a), string(c)
		}
	}
	sep := int64(min(len(e.itemSep), len(e.keySep)))
	if err := checkTextSize(v, sep, "JSON string"); err != nil {
		return nil, err
	}
	if err := e.encode(v, 0); err != nil {
		return nil, err
	}
	return starlark.String(e.b.String()), nil
}

// jsonEncoder writes JSON the way Python's json.dumps does by default:
// ", " and ": " separators, non-ASCII escaped as \uXXXX. It stops at
// maxValueBytes of output: a shared reference repeated
// (json.dumps([[0]*3000]*3000)) is small in memory and huge as text.
type jsonEncoder struct {
	b                bytes.Buffer
	itemSep, keySep  string
	indent           string
	pretty, sortKeys bool
	ascii            bool
	bud              *budget
	visits           int
}

func (e *jsonEncoder) newline(depth int) {
	if e.pretty {
		e.b.WriteByte('\n')
		for i := 0; i < depth; i++ {
			e.b.WriteString(e.indent)
		}
	}
}

func (e *jsonEncoder) encode(v starlark.Value, depth int) error {
	if depth > 100 {
		return fmt.Errorf("json.dumps: value nested too deeply (or circular)")
	}
	if e.b.Len() > maxValueBytes {
		return textTooLarge("JSON string")
	}
	if e.visits++; e.visits&4095 == 0 {
		if err := e.bud.alive(); err != nil {
			return err
		}
	}
	switch x := v.(type) {
	case starlark.NoneType:
		e.b.WriteString("null")
	case starlark.Bool:
		if x {
			e.b.WriteString("true")
		} else {
			e.b.WriteString("false")
		}
	case starlark.Int:
		e.b.WriteString(x.String())
	case starlark.Float:
		f := float64(x)
		switch {
		case math.IsNaN(f):
			e.b.WriteString("NaN")
		case math.IsInf(f, 1):
			e.b.WriteString("Infinity")
		case math.IsInf(f, -1):
			e.b.WriteString("-Infinity")
		default:
			e.b.WriteString(pyFloatRepr(f))
		}
	case starlark.String:
		if err := e.str(string(x)); err != nil {
			return err
		}
	case *starlark.List, starlark.Tuple, *starlark.Set, *stepList:
		it := starlark.Iterate(v)
		defer it.Done()
		e.b.WriteByte('[')
		var el starlark.Value
		n := 0
		for it.Next(&el) {
			if n > 0 {
				e.b.WriteString(e.itemSep)
			}
			e.newline(depth + 1)
			if err := e.encode(el, depth+1); err != nil {
				return err
			}
			n++
		}
		if n > 0 {
			e.newline(depth)
		}
		e.b.WriteByte(']')
	case *starlark.Dict:
		items := x.Items()
		type kv struct {
			k string
			v starlark.Value
		}
		pairs := make([]kv, 0, len(items))
		for _, it := range items {
			k, err := jsonKey(it[0])
			if err != nil {
				return fmt.Errorf("json.dumps: keys must be str, int, float, bool or None, not %s", it[0].Type())
			}
			pairs = append(pairs, kv{k, it[1]})
		}
		if e.sortKeys {
			sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].k < pairs[j].k })
		}
		e.b.WriteByte('{')
		for i, p := range pairs {
			if i > 0 {
				e.b.WriteString(e.itemSep)
			}
			e.newline(depth + 1)
			if err := e.str(p.k); err != nil {
				return err
			}
			e.b.WriteString(e.keySep)
			if err := e.encode(p.v, depth+1); err != nil {
				return err
			}
		}
		if len(pairs) > 0 {
			e.newline(depth)
		}
		e.b.WriteByte('}')
	case *datetimeValue:
		return fmt.Errorf("json.dumps: Object of type datetime is not JSON serializable")
	default:
		return fmt.Errorf("json.dumps: Object of type %s is not JSON serializable", v.Type())
	}
	return nil
}

func (e *jsonEncoder) str(s string) error {
	if e.b.Len()+len(s) > maxValueBytes {
		return textTooLarge("JSON string")
	}
	e.b.WriteByte('"')
	n := 0
	for _, r := range s {
		// Escapes can make a string six times longer.
		if n++; n&4095 == 0 && e.b.Len() > maxValueBytes {
			return textTooLarge("JSON string")
		}
		switch r {
		case '"':
			e.b.WriteString(`\"`)
		case '\\':
			e.b.WriteString(`\\`)
		case '\n':
			e.b.WriteString(`\n`)
		case '\r':
			e.b.WriteString(`\r`)
		case '\t':
			e.b.WriteString(`\t`)
		case '\b':
			e.b.WriteString(`\b`)
		case '\f':
			e.b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20:
				fmt.Fprintf(&e.b, `\u%04x`, r)
			case r > 0x7e && e.ascii:
				if r > 0xffff {
					r -= 0x10000
					fmt.Fprintf(&e.b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
				} else {
					fmt.Fprintf(&e.b, `\u%04x`, r)
				}
			default:
				e.b.WriteRune(r)
			}
		}
	}
	e.b.WriteByte('"')
	return nil
}

// normalizeYAML turns map[any]any (possible with non-string keys) into
// map[string]any so the value converts like JSON.
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
		return x
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalizeYAML(e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
		return x
	case int:
		return int64(x)
	case float64:
		if x == math.Trunc(x) && !math.IsInf(x, 0) {
			return starlark.Float(x) // keep YAML's 1.0 a float
		}
		return x
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// chunkDoc splits text into sentences and groups them into chunks of about
// 1,000 characters. Julep used a spaCy pipeline; this keeps its shape (a list
// of strings made of whole sentences) without the model.
func chunkDoc(s string) []string {
	var sentences []string
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' || c == '!' || c == '?' || c == '\n' && i+1 < len(s) && s[i+1] == '\n' {
			if i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\n' {
				if t := strings.TrimSpace(s[start : i+1]); t != "" {
					sentences = append(sentences, t)
				}
				start = i + 1
			}
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		sentences = append(sentences, t)
	}
	var chunks []string
	var cur []string
	size := 0
	for _, sent := range sentences {
		if size > 0 && size+len(sent) > 1000 {
			chunks = append(chunks, strings.Join(cur, " "))
			cur, size = nil, 0
		}
		cur = append(cur, sent)
		size += len(sent) + 1
	}
	if len(cur) > 0 {
		chunks = append(chunks, strings.Join(cur, " "))
	}
	return chunks
}

// ---- statistics ----

func floatsOf(name string, args starlark.Tuple) ([]float64, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%s expected 1 argument", name)
	}
	it := starlark.Iterate(args[0])
	if it == nil {
		return nil, fmt.Errorf("%s: %s is not iterable", name, args[0].Type())
	}
	defer it.Done()
	var out []float64
	var e starlark.Value
	for it.Next(&e) {
		f, ok := starlark.AsFloat(e)
		if !ok {
			return nil, fmt.Errorf("%s: can't convert type '%s' to numerator/denominator", name, e.Type())
		}
		out = append(out, f)
	}
	return out, nil
}

func allInts(v starlark.Value) bool {
	it := starlark.Iterate(v)
	if it == nil {
		return false
	}
	defer it.Done()
	var e starlark.Value
	for it.Next(&e) {
		if _, ok := e.(starlark.Int); !ok {
			return false
		}
	}
	return true
}

// wrapDomain turns a nil result of b (an argument outside the function's
// domain) into Python's "math domain error".
func wrapDomain(b *starlark.Builtin) *starlark.Builtin {
	return starlark.NewBuiltin(b.Name(), func(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		v, err := b.CallInternal(t, args, kw)
		if err == nil && v == nil {
			return nil, fmt.Errorf("math domain error")
		}
		return v, err
	})
}

func statisticsModule() *starlarkstruct.Module {
	stat := func(name string, f func([]float64) (float64, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			xs, err := floatsOf(name, args)
			if err != nil {
				return nil, err
			}
			r, err := f(xs)
			if err != nil {
				return nil, err
			}
			// Python keeps ints for an integral mean/median of ints.
			if (name == "mean" || name == "median" || name == "median_low" || name == "median_high") && allInts(args[0]) && r == math.Trunc(r) && math.Abs(r) < maxExactFloat {
				if name != "median" || len(xs)%2 == 1 {
					return starlark.MakeInt64(int64(r)), nil
				}
			}
			return starlark.Float(r), nil
		})
	}
	mean := func(xs []float64) (float64, error) {
		if len(xs) == 0 {
			return 0, fmt.Errorf("mean requires at least one data point")
		}
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs)), nil
	}
	sorted := func(xs []float64) []float64 {
		c := append([]float64(nil), xs...)
		sort.Float64s(c)
		return c
	}
	return module("statistics", starlark.StringDict{
		"mean":  stat("mean", mean),
		"fmean": stat("fmean", mean),
		"median": stat("median", func(xs []float64) (float64, error) {
			if len(xs) == 0 {
				return 0, fmt.Errorf("no median for empty data")
			}
			c := sorted(xs)
			n := len(c)
			if n%2 == 1 {
				return c[n/2], nil
			}
			return (c[n/2-1] + c[n/2]) / 2, nil
		}),
		"median_low": stat("median_low", func(xs []float64) (float64, error) {
			if len(xs) == 0 {
				return 0, fmt.Errorf("no median for empty data")
			}
			c := sorted(xs)
			return c[(len(c)-1)/2], nil
		}),
		"median_high": stat("median_high", func(xs []float64) (float64, error) {
			if len(xs) == 0 {
				return 0, fmt.Errorf("no median for empty data")
			}
			c := sorted(xs)
			return c[len(c)/2], nil
		}),
		"geometric_mean": stat("geometric_mean", func(xs []float64) (float64, error) {
			if len(xs) == 0 {
				return 0, fmt.Errorf("geometric_mean requires a non-empty dataset containing positive numbers")
			}
			s := 0.0
			for _, x := range xs {
				if x <= 0 {
					return 0, fmt.Errorf("geometric_mean requires a non-empty dataset containing positive numbers")
				}
				s += math.Log(x)
			}
			return math.Exp(s / float64(len(xs))), nil
		}),
		"quantiles": starlark.NewBuiltin("quantiles", fnQuantiles),
		"stdev": stat("stdev", func(xs []float64) (float64, error) {
			if len(xs) < 2 {
				return 0, fmt.Errorf("stdev requires at least two data points")
			}
			m, _ := mean(xs)
			s := 0.0
			for _, x := range xs {
				s += (x - m) * (x - m)
			}
			return math.Sqrt(s / float64(len(xs)-1)), nil
		}),
		"pstdev": stat("pstdev", func(xs []float64) (float64, error) {
			if len(xs) < 1 {
				return 0, fmt.Errorf("pstdev requires at least one data point")
			}
			m, _ := mean(xs)
			s := 0.0
			for _, x := range xs {
				s += (x - m) * (x - m)
			}
			return math.Sqrt(s / float64(len(xs))), nil
		}),
		"mode": starlark.NewBuiltin("mode", func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			if len(args) != 1 {
				return nil, fmt.Errorf("mode expected 1 argument")
			}
			it := starlark.Iterate(args[0])
			if it == nil {
				return nil, fmt.Errorf("mode: %s is not iterable", args[0].Type())
			}
			defer it.Done()
			counts := starlark.NewDict(0)
			var best starlark.Value
			bestN := 0
			var e starlark.Value
			for it.Next(&e) {
				c, found, err := counts.Get(e)
				if err != nil {
					return nil, err
				}
				n := 1
				if found {
					n = int(c.(starlark.Int).BigInt().Int64()) + 1
				}
				_ = counts.SetKey(e, starlark.MakeInt(n))
				if n > bestN {
					best, bestN = e, n
				}
			}
			if best == nil {
				return nil, fmt.Errorf("no mode for empty data")
			}
			return best, nil
		}),
	})
}

// ---- base64 ----

// base64Arg reads the one str or bytes argument of a base64 function.
func base64Arg(name string, args starlark.Tuple) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("%s expected 1 argument", name)
	}
	var s string
	switch x := args[0].(type) {
	case starlark.String:
		s = string(x)
	case starlark.Bytes:
		s = string(x)
	default:
		return "", fmt.Errorf("%s: a str or bytes is required, not %s", name, x.Type())
	}
	if len(s) > maxInputString {
		return "", fmt.Errorf("%s: string exceeds maximum length of %d", name, maxInputString)
	}
	return s, nil
}

func base64Module() *starlarkstruct.Module {
	enc := func(name string, e *base64.Encoding) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			s, err := base64Arg(name, args)
			if err != nil {
				return nil, err
			}
			if err := budgetOf(t).reserve(int64(e.EncodedLen(len(s))), "string"); err != nil {
				return nil, err
			}
			return starlark.String(e.EncodeToString([]byte(s))), nil
		})
	}
	dec := func(name string, e *base64.Encoding) *starlark.Builtin {
		return fn(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			s, err := base64Arg(name, args)
			if err != nil {
				return nil, err
			}
			s = strings.TrimSpace(s)
			out, err := e.DecodeString(s)
			if err != nil {
				// Python accepts missing padding in practice via altchars; retry raw.
				out, err = e.WithPadding(base64.NoPadding).DecodeString(strings.TrimRight(s, "="))
				if err != nil {
					return nil, fmt.Errorf("invalid base64 string: %v", err)
				}
			}
			if !utf8.Valid(out) {
				return nil, fmt.Errorf("invalid base64 string: decoded bytes are not UTF-8")
			}
			return starlark.String(out), nil
		})
	}
	return module("base64", starlark.StringDict{
		"b64encode":         enc("b64encode", base64.StdEncoding),
		"b64decode":         dec("b64decode", base64.StdEncoding),
		"urlsafe_b64encode": enc("urlsafe_b64encode", base64.URLEncoding),
		"urlsafe_b64decode": dec("urlsafe_b64decode", base64.URLEncoding),
	})
}

// ---- random ----

func randomModule() *starlarkstruct.Module {
	return module("random", starlark.StringDict{
		"random": starlark.NewBuiltin("random", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return starlark.Float(rand.Float64()), nil
		}),
		"randint": starlark.NewBuiltin("randint", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var lo, hi int64
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 2, &lo, &hi); err != nil {
				return nil, err
			}
			if hi < lo {
				return nil, fmt.Errorf("empty range for randint(%d, %d)", lo, hi)
			}
			span := uint64(hi - lo)
			if span == math.MaxUint64 {
				return starlark.MakeInt64(int64(rand.Uint64())), nil
			}
			return starlark.MakeInt64(lo + int64(rand.Uint64N(span+1))), nil
		}),
		"uniform": starlark.NewBuiltin("uniform", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var lo, hi float64
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 2, &lo, &hi); err != nil {
				return nil, err
			}
			return starlark.Float(lo + (hi-lo)*rand.Float64()), nil
		}),
		"choice": starlark.NewBuiltin("choice", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var seq starlark.Indexable
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &seq); err != nil {
				return nil, err
			}
			if seq.Len() == 0 {
				return nil, fmt.Errorf("cannot choose from an empty sequence")
			}
			return seq.Index(rand.IntN(seq.Len())), nil
		}),
		"sample": fn("sample", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var seq starlark.Indexable
			var k int
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 2, &seq, &k); err != nil {
				return nil, err
			}
			if k < 0 || k > seq.Len() {
				return nil, fmt.Errorf("sample larger than population or is negative")
			}
			perm := rand.Perm(seq.Len())[:k]
			out := make([]starlark.Value, k)
			for i, p := range perm {
				out[i] = seq.Index(p)
			}
			return starlark.NewList(out), nil
		}),
		"shuffle": starlark.NewBuiltin("shuffle", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var l *starlark.List
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &l); err != nil {
				return nil, err
			}
			n := l.Len()
			for i := n - 1; i > 0; i-- {
				j := rand.IntN(i + 1)
				a, c := l.Index(i), l.Index(j)
				if err := l.SetIndex(i, c); err != nil {
					return nil, err
				}
				_ = l.SetIndex(j, a)
			}
			return starlark.None, nil
		}),
	})
}

// ---- time ----

func timeModule() *starlarkstruct.Module {
	return module("time", starlark.StringDict{
		"time": starlark.NewBuiltin("time", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return starlark.Float(float64(time.Now().UnixNano()) / 1e9), nil
		}),
		"strftime": starlark.NewBuiltin("strftime", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var f string
			var tv starlark.Value
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &f, &tv); err != nil {
				return nil, err
			}
			when := time.Now().UTC()
			if len(args) > 1 {
				t, ok := timeOf(args[1])
				if !ok {
					return nil, fmt.Errorf("strftime: Tuple or struct_time argument required")
				}
				when = t
			}
			out, err := strftime(when, f)
			return starlark.String(out), err
		}),
		"strptime": starlark.NewBuiltin("strptime", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			v, err := dtStrptime.CallInternal(t, args, kw)
			if err != nil {
				return nil, err
			}
			return structTime(v.(*datetimeValue).t), nil
		}),
	})
}

// strftime implements the common C/Python directives. A directive expands
// to at most 24 bytes (%c), so a long format is checked as it is written.
func strftime(t time.Time, f string) (string, error) {
	if n := addSat(int64(len(f)), mulSat(22, int64(strings.Count(f, "%")))); n > maxValueBytes {
		return "", tooLarge(n, "string")
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if b.Len() > maxValueBytes {
			return "", textTooLarge("string")
		}
		if f[i] != '%' || i+1 >= len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&b, "%02d", h)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'f':
			fmt.Fprintf(&b, "%06d", t.Nanosecond()/1000)
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'B':
			b.WriteString(t.Month().String())
		case 'b', 'h':
			b.WriteString(t.Month().String()[:3])
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'w':
			fmt.Fprintf(&b, "%d", int(t.Weekday()))
		case 'u':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			fmt.Fprintf(&b, "%d", wd)
		case 'Z':
			name, _ := t.Zone()
			b.WriteString(name)
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'c':
			b.WriteString(t.Format("Mon Jan  2 15:04:05 2006"))
		case 'x':
			b.WriteString(t.Format("01/02/06"))
		case 'X':
			b.WriteString(t.Format("15:04:05"))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 's':
			b.WriteString(strconv.FormatInt(t.Unix(), 10))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String(), nil
}

var _ = json.Valid
var _ = regexp.QuoteMeta

// fnQuantiles is Python 3.12's statistics.quantiles (methods "exclusive",
// the default, and "inclusive").
func fnQuantiles(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var data starlark.Iterable
	n := 4
	method := "exclusive"
	if err := starlark.UnpackArgs(b.Name(), args, kw, "data", &data, "n?", &n, "method?", &method); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("n must be at least 1")
	}
	xs, err := floatsOf(b.Name(), starlark.Tuple{data})
	if err != nil {
		return nil, err
	}
	sort.Float64s(xs)
	ld := len(xs)
	if ld < 2 {
		return nil, fmt.Errorf("must have at least two data points")
	}
	out := make([]starlark.Value, 0, n-1)
	switch method {
	case "inclusive":
		m := ld - 1
		for i := 1; i < n; i++ {
			j := i * m / n
			delta := float64(i*m - j*n)
			out = append(out, starlark.Float((xs[j]*(float64(n)-delta)+xs[j+1]*delta)/float64(n)))
		}
	case "exclusive":
		m := ld + 1
		for i := 1; i < n; i++ {
			j := min(max(i*m/n, 1), ld-1)
			delta := float64(i*m - j*n)
			out = append(out, starlark.Float((xs[j-1]*(float64(n)-delta)+xs[j]*delta)/float64(n)))
		}
	default:
		return nil, fmt.Errorf("unknown method: %q", method)
	}
	return starlark.NewList(out), nil
}
