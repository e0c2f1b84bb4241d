package expr

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// The re module on Go's RE2 engine. Julep used google-re2 as well, so the
// accepted syntax (no backreferences or lookaround) is the same.

const (
	reIgnoreCase = 2
	reMultiline  = 8
	reDotAll     = 16
	reVerbose    = 64
)

var reCache sync.Map // pattern+flags -> *regexp.Regexp (bounded below)
var reCacheN int64
var reCacheMu sync.Mutex

func compileRe(pat string, flags int) (*regexp.Regexp, error) {
	key := strconv.Itoa(flags) + "\x00" + pat
	if r, ok := reCache.Load(key); ok {
		return r.(*regexp.Regexp), nil
	}
	prefix := ""
	if flags&reIgnoreCase != 0 {
		prefix += "i"
	}
	if flags&reMultiline != 0 {
		prefix += "m"
	}
	if flags&reDotAll != 0 {
		prefix += "s"
	}
	src := pat
	if prefix != "" {
		src = "(?" + prefix + ")" + pat
	}
	r, err := regexp.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %v", pat, err)
	}
	reCacheMu.Lock()
	if reCacheN < 1024 {
		reCache.Store(key, r)
		reCacheN++
	}
	reCacheMu.Unlock()
	return r, nil
}

type patternValue struct {
	re    *regexp.Regexp
	src   string
	flags int
}

func (p *patternValue) String() string        { return "re.compile(" + pyQuote(p.src) + ")" }
func (p *patternValue) Type() string          { return "re.Pattern" }
func (p *patternValue) Freeze()               {}
func (p *patternValue) Truth() starlark.Bool  { return true }
func (p *patternValue) Hash() (uint32, error) { return starlark.String(p.src).Hash() }
func (p *patternValue) AttrNames() []string {
	return []string{"findall", "fullmatch", "match", "pattern", "search", "split", "sub"}
}
func (p *patternValue) Attr(name string) (starlark.Value, error) {
	if name == "pattern" {
		return starlark.String(p.src), nil
	}
	switch name {
	case "findall", "fullmatch", "match", "search", "split", "sub", "subn", "finditer":
		return starlark.NewBuiltin(name, func(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			return reApply(t, name, p, args, kw)
		}), nil
	}
	return nil, nil
}

// matchValue is a match object: group(), groups(), groupdict(), start(), end(), span().
type matchValue struct {
	s    string
	loc  []int
	re   *regexp.Regexp
	pos0 int
}

func (m *matchValue) String() string {
	return fmt.Sprintf("<re.Match object; span=(%d, %d), match=%s>", m.loc[0], m.loc[1], pyQuote(m.group0()))
}
func (m *matchValue) Type() string          { return "re.Match" }
func (m *matchValue) Freeze()               {}
func (m *matchValue) Truth() starlark.Bool  { return true }
func (m *matchValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: re.Match") }
func (m *matchValue) group0() string        { return m.s[m.loc[0]:m.loc[1]] }

func (m *matchValue) groupValue(idx starlark.Value) (starlark.Value, error) {
	n := -1
	switch x := idx.(type) {
	case starlark.Int:
		i, _ := x.Int64()
		n = int(i)
	case starlark.String:
		n = m.re.SubexpIndex(string(x))
		if n < 0 {
			return nil, fmt.Errorf("no such group %s", pyQuote(string(x)))
		}
	default:
		return nil, fmt.Errorf("group index must be int or str")
	}
	if n < 0 || 2*n+1 >= len(m.loc) {
		return nil, fmt.Errorf("no such group")
	}
	if m.loc[2*n] < 0 {
		return starlark.None, nil
	}
	return starlark.String(m.s[m.loc[2*n]:m.loc[2*n+1]]), nil
}

func (m *matchValue) AttrNames() []string {
	return []string{"end", "group", "groupdict", "groups", "span", "start", "string"}
}

func (m *matchValue) Attr(name string) (starlark.Value, error) {
	bi := func(f builtinFn) (starlark.Value, error) { return starlark.NewBuiltin(name, f), nil }
	groupArg := func(args starlark.Tuple) int {
		if len(args) == 0 {
			return 0
		}
		switch x := args[0].(type) {
		case starlark.Int:
			i, _ := x.Int64()
			return int(i)
		case starlark.String:
			return m.re.SubexpIndex(string(x))
		}
		return -1
	}
	switch name {
	case "string":
		return starlark.String(m.s), nil
	case "group":
		return bi(func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			if len(args) == 0 {
				return starlark.String(m.group0()), nil
			}
			if len(args) == 1 {
				return m.groupValue(args[0])
			}
			out := make(starlark.Tuple, len(args))
			for i, a := range args {
				v, err := m.groupValue(a)
				if err != nil {
					return nil, err
				}
				out[i] = v
			}
			return out, nil
		})
	case "groups":
		return bi(func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			var dflt starlark.Value = starlark.None
			if len(args) > 0 {
				dflt = args[0]
			}
			n := len(m.loc)/2 - 1
			out := make(starlark.Tuple, n)
			for i := 1; i <= n; i++ {
				if m.loc[2*i] < 0 {
					out[i-1] = dflt
				} else {
					out[i-1] = starlark.String(m.s[m.loc[2*i]:m.loc[2*i+1]])
				}
			}
			return out, nil
		})
	case "groupdict":
		return bi(func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			d := starlark.NewDict(0)
			for i, nm := range m.re.SubexpNames() {
				if nm == "" {
					continue
				}
				v, _ := m.groupValue(starlark.MakeInt(i))
				_ = d.SetKey(starlark.String(nm), v)
			}
			return d, nil
		})
	case "start", "end", "span":
		return bi(func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			g := groupArg(args)
			if g < 0 || 2*g+1 >= len(m.loc) {
				return nil, fmt.Errorf("no such group")
			}
			s, e := m.loc[2*g], m.loc[2*g+1]
			// Offsets are in characters, as in Python.
			cs, ce := runeOffset(m.s, s), runeOffset(m.s, e)
			switch name {
			case "start":
				return starlark.MakeInt(cs), nil
			case "end":
				return starlark.MakeInt(ce), nil
			}
			return starlark.Tuple{starlark.MakeInt(cs), starlark.MakeInt(ce)}, nil
		})
	}
	return nil, nil
}

func runeOffset(s string, byteOff int) int {
	if byteOff < 0 {
		return -1
	}
	return len([]rune(s[:byteOff]))
}

func reModule() *starlarkstruct.Module {
	members := starlark.StringDict{
		"I": starlark.MakeInt(reIgnoreCase), "IGNORECASE": starlark.MakeInt(reIgnoreCase),
		"M": starlark.MakeInt(reMultiline), "MULTILINE": starlark.MakeInt(reMultiline),
		"S": starlark.MakeInt(reDotAll), "DOTALL": starlark.MakeInt(reDotAll),
		"X": starlark.MakeInt(reVerbose), "VERBOSE": starlark.MakeInt(reVerbose),
		"escape": starlark.NewBuiltin("escape", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var s string
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &s); err != nil {
				return nil, err
			}
			return starlark.String(regexp.QuoteMeta(s)), nil
		}),
		"compile": starlark.NewBuiltin("compile", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var pat string
			flags := 0
			if err := starlark.UnpackArgs(b.Name(), args, kw, "pattern", &pat, "flags?", &flags); err != nil {
				return nil, err
			}
			r, err := compileRe(pat, flags)
			if err != nil {
				return nil, err
			}
			return &patternValue{re: r, src: pat, flags: flags}, nil
		}),
	}
	for _, name := range []string{"match", "search", "fullmatch", "findall", "finditer", "sub", "subn", "split"} {
		name := name
		members[name] = starlark.NewBuiltin(name, func(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			return reCall(t, name, args, kw)
		})
	}
	return module("re", members)
}

// reCall handles re.<name>(pattern, ...) by compiling the pattern first.
func reCall(t *starlark.Thread, name string, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("re.%s: missing pattern", name)
	}
	var p *patternValue
	switch x := args[0].(type) {
	case *patternValue:
		p = x
	case starlark.String:
		flags := 0
		var rest []starlark.Tuple
		for _, kv := range kw {
			if kv[0] == starlark.String("flags") {
				if err := starlark.AsInt(kv[1], &flags); err != nil {
					return nil, fmt.Errorf("re.%s: flags must be an int", name)
				}
				continue
			}
			rest = append(rest, kv)
		}
		kw = rest
		// Positional flags come last: match/search/fullmatch/findall/split(pattern, string, flags) etc.
		flagPos := map[string]int{"match": 2, "search": 2, "fullmatch": 2, "findall": 2, "finditer": 2, "split": 3, "sub": 4, "subn": 4}[name]
		if len(args) > flagPos {
			if err := starlark.AsInt(args[flagPos], &flags); err != nil {
				return nil, fmt.Errorf("re.%s: flags must be an int", name)
			}
			args = args[:flagPos]
		}
		r, err := compileRe(string(x), flags)
		if err != nil {
			return nil, err
		}
		p = &patternValue{re: r, src: string(x), flags: flags}
	default:
		return nil, fmt.Errorf("re.%s: first argument must be a string or compiled pattern", name)
	}
	return reApply(t, name, p, args[1:], kw)
}

func reApply(t *starlark.Thread, name string, p *patternValue, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	str := func(v starlark.Value) (string, error) {
		s, ok := v.(starlark.String)
		if !ok {
			return "", fmt.Errorf("re.%s: expected string, got %s", name, v.Type())
		}
		if len(s) > maxInputString*4 {
			return "", fmt.Errorf("re.%s: string too long", name)
		}
		return string(s), nil
	}
	re := p.re
	switch name {
	case "match", "search", "fullmatch":
		if len(args) < 1 {
			return nil, fmt.Errorf("re.%s: missing string", name)
		}
		s, err := str(args[0])
		if err != nil {
			return nil, err
		}
		r := re
		if name == "fullmatch" {
			if r, err = compileRe(`\A(?:`+p.src+`)\z`, p.flags); err != nil {
				return nil, err
			}
		} else if name == "match" {
			if r, err = compileRe(`\A(?:`+p.src+`)`, p.flags); err != nil {
				return nil, err
			}
		}
		loc := r.FindStringSubmatchIndex(s)
		if loc == nil {
			return starlark.None, nil
		}
		return &matchValue{s: s, loc: loc, re: r}, nil
	case "findall", "finditer":
		if len(args) < 1 {
			return nil, fmt.Errorf("re.%s: missing string", name)
		}
		s, err := str(args[0])
		if err != nil {
			return nil, err
		}
		locs, err := boundedMatches(re, s)
		if err != nil {
			return nil, err
		}
		var out []starlark.Value
		for _, loc := range locs {
			m := &matchValue{s: s, loc: loc, re: re}
			if name == "finditer" {
				out = append(out, m)
				continue
			}
			ng := len(loc)/2 - 1
			switch ng {
			case 0:
				out = append(out, starlark.String(m.group0()))
			case 1:
				out = append(out, groupOrEmpty(s, loc, 1))
			default:
				tup := make(starlark.Tuple, ng)
				for i := 1; i <= ng; i++ {
					tup[i-1] = groupOrEmpty(s, loc, i)
				}
				out = append(out, tup)
			}
		}
		return charge(t, starlark.NewList(out))
	case "sub", "subn":
		var repl starlark.Value
		var sv starlark.Value
		count := 0
		if err := starlark.UnpackArgs(name, args, kw, "repl", &repl, "string", &sv, "count?", &count); err != nil {
			return nil, err
		}
		s, err := str(sv)
		if err != nil {
			return nil, err
		}
		bud := budgetOf(t)
		// A literal replacement adds its length at every match: find no
		// more matches than the limit allows rather than all of them.
		most := -1
		if r, ok := repl.(starlark.String); ok && len(r) > 0 && !strings.ContainsRune(string(r), '\\') {
			most = maxValueBytes/len(r) + 2
		}
		if count > 0 && (most < 0 || count < most) {
			most = count
		}
		var b strings.Builder
		last, n := 0, 0
		for _, loc := range re.FindAllStringSubmatchIndex(s, most) {
			if count > 0 && n >= count {
				break
			}
			if err := bud.alive(); err != nil {
				return nil, err
			}
			b.WriteString(s[last:loc[0]])
			switch r := repl.(type) {
			case starlark.String:
				// The expansion is at most the template plus the groups it
				// names, each at most the subject: check before expanding.
				if b.Len()+len(r) > maxValueBytes {
					return nil, textTooLarge("string")
				}
				b.WriteString(string(re.ExpandString(nil, pyReplToGo(string(r)), s, loc)))
			default:
				v, err := starlark.Call(t, repl, starlark.Tuple{&matchValue{s: s, loc: loc, re: re}}, nil)
				if err != nil {
					return nil, err
				}
				rs, ok := v.(starlark.String)
				if !ok {
					return nil, fmt.Errorf("re.sub: replacement function must return str")
				}
				b.WriteString(string(rs))
			}
			last = loc[1]
			n++
			if b.Len() > maxValueBytes {
				return nil, textTooLarge("string")
			}
		}
		b.WriteString(s[last:])
		res, err := charge(t, starlark.String(b.String()))
		if err != nil {
			return nil, err
		}
		if name == "subn" {
			return starlark.Tuple{res, starlark.MakeInt(n)}, nil
		}
		return res, nil
	case "split":
		var sv starlark.Value
		maxsplit := 0
		if err := starlark.UnpackArgs(name, args, kw, "string", &sv, "maxsplit?", &maxsplit); err != nil {
			return nil, err
		}
		s, err := str(sv)
		if err != nil {
			return nil, err
		}
		locs, err := boundedMatches(re, s)
		if err != nil {
			return nil, err
		}
		var out []starlark.Value
		last, n := 0, 0
		for _, loc := range locs {
			if maxsplit > 0 && n >= maxsplit {
				break
			}
			out = append(out, starlark.String(s[last:loc[0]]))
			for g := 1; g < len(loc)/2; g++ {
				if loc[2*g] < 0 {
					out = append(out, starlark.None)
				} else {
					out = append(out, starlark.String(s[loc[2*g]:loc[2*g+1]]))
				}
			}
			last = loc[1]
			n++
		}
		out = append(out, starlark.String(s[last:]))
		return charge(t, starlark.NewList(out))
	}
	return nil, fmt.Errorf("re.%s is not supported", name)
}

// boundedMatches finds the matches of re in s, refusing more than a list
// of maxValueBytes can hold instead of finding them all first.
func boundedMatches(re *regexp.Regexp, s string) ([][]int, error) {
	const most = maxValueBytes / pieceBytes
	locs := re.FindAllStringSubmatchIndex(s, most+1)
	if len(locs) > most {
		return nil, textTooLarge("list")
	}
	return locs, nil
}

func groupOrEmpty(s string, loc []int, g int) starlark.Value {
	if loc[2*g] < 0 {
		return starlark.String("")
	}
	return starlark.String(s[loc[2*g]:loc[2*g+1]])
}

// pyReplToGo converts Python replacement syntax (\1, \g<name>, \g<1>) to Go's
// (${1}, ${name}) and escapes '$'.
func pyReplToGo(r string) string {
	var b strings.Builder
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(r):
			n := r[i+1]
			switch {
			case n >= '0' && n <= '9':
				j := i + 1
				for j < len(r) && j < i+3 && r[j] >= '0' && r[j] <= '9' {
					j++
				}
				b.WriteString("${" + r[i+1:j] + "}")
				i = j - 1
			case n == 'g' && i+2 < len(r) && r[i+2] == '<':
				end := strings.IndexByte(r[i:], '>')
				if end < 0 {
					b.WriteString(r[i:])
					return b.String()
				}
				b.WriteString("${" + r[i+3:i+end] + "}")
				i += end
			case n == 'n':
				b.WriteByte('\n')
				i++
			case n == 't':
				b.WriteByte('\t')
				i++
			case n == '\\':
				b.WriteByte('\\')
				i++
			default:
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
