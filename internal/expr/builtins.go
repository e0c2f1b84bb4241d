package expr

import (
	"fmt"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

type builtinFn = func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)

// newFn makes a builtin whose result is charged to the budget. Functions
// that can build more than their inputs reserve their size themselves first.
func newFn(name string, fn builtinFn) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		v, err := fn(t, b, args, kw)
		if err != nil {
			return nil, err
		}
		return charge(t, v)
	})
}

// charged wraps an existing builtin (from Starlark's universe or a method)
// so that what it builds is reserved before the call when estimators[key]
// can tell, and charged after it otherwise.
func charged(b *starlark.Builtin, key string) *starlark.Builtin {
	est := estimators[key]
	return starlark.NewBuiltin(b.Name(), func(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		return guarded(t, est, b.Receiver(), args, kw, func() (starlark.Value, error) { return b.CallInternal(t, args, kw) })
	})
}

// ---- helpers the compiler emits calls to ----

// __fs(lits, prefix1, conv1, spec1, val1, ...) renders an f-string.
func fnFString(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	lits, ok := args[0].(starlark.Tuple)
	if !ok || len(args) != 1+4*(len(lits)-1) {
		return nil, fmt.Errorf("internal error: malformed f-string")
	}
	bud := budgetOf(t)
	var b strings.Builder
	b.WriteString(string(lits[0].(starlark.String)))
	for k := 0; k+1 < len(lits); k++ {
		prefix := args[1+4*k].(starlark.String)
		conv := args[2+4*k].(starlark.String)
		spec, ok := args[3+4*k].(starlark.String)
		if !ok {
			return nil, fmt.Errorf("format spec must be a string")
		}
		v := args[4+4*k]
		b.WriteString(string(prefix))
		var err error
		switch conv {
		case "r", "a":
			v, err = reprValue(v)
		case "s":
			v, err = strValue(v)
		}
		if err != nil {
			return nil, err
		}
		s, err := formatValue(v, string(spec))
		if err != nil {
			return nil, err
		}
		if b.Len()+len(s) > maxValueBytes {
			return nil, textTooLarge("string")
		}
		if err := bud.reserve(int64(len(s)), "string"); err != nil {
			return nil, err
		}
		b.WriteString(s)
		b.WriteString(string(lits[k+1].(starlark.String)))
	}
	return starlark.String(b.String()), nil
}

func fnAttr(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	return getAttr(t, args[0], string(args[1].(starlark.String)))
}

// getAttr implements Python attribute access. On dicts, methods win (as in
// Python and Julep's Box); otherwise the attribute is the key.
func getAttr(_ *starlark.Thread, v starlark.Value, name string) (starlark.Value, error) {
	if strings.HasPrefix(name, "__") {
		return nil, fmt.Errorf("access to attribute %q is not allowed", name)
	}
	switch x := v.(type) {
	case *starlark.Dict:
		if m := dictExtras[name]; m != nil {
			return m.BindReceiver(x), nil
		}
		if m, _ := x.Attr(name); m != nil {
			return charged(m.(*starlark.Builtin), "dict."+name), nil
		}
		if val, found, _ := x.Get(starlark.String(name)); found {
			return val, nil
		}
		// python-box (Julep's Box) also reaches a key by its "safe" attribute
		// name: "foo-bar" and "foo bar" as foo_bar.
		for _, item := range x.Items() {
			if k, ok := item[0].(starlark.String); ok && boxSafeAttr(string(k)) == name {
				return item[1], nil
			}
		}
		return nil, fmt.Errorf("dict has no key or attribute %q", name)
	case starlark.String:
		if m := strExtras[name]; m != nil {
			return m.BindReceiver(x), nil
		}
		if m, _ := x.Attr(name); m != nil {
			return charged(m.(*starlark.Builtin), "string."+name), nil
		}
	case *starlark.List:
		if m := listExtras[name]; m != nil {
			return m.BindReceiver(x), nil
		}
		if m, _ := x.Attr(name); m != nil {
			return charged(m.(*starlark.Builtin), "list."+name), nil
		}
	case *starlark.Set:
		if m, _ := x.Attr(name); m != nil {
			return charged(m.(*starlark.Builtin), "set."+name), nil
		}
	case *stepList:
		return getAttr(nil, x.list, name)
	case *starlark.Builtin:
		if x.Name() == "dict" && name == "fromkeys" {
			return dictFromkeys, nil
		}
	case starlark.HasAttrs:
		a, err := x.Attr(name)
		if err != nil {
			return nil, err
		}
		if a != nil {
			return a, nil
		}
	}
	return nil, fmt.Errorf("%s has no attribute %q", v.Type(), name)
}

func fnMod(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if s, ok := args[0].(starlark.String); ok {
		out, err := printf(string(s), args[1])
		if err != nil {
			return nil, err
		}
		return charge(t, starlark.String(out))
	}
	return starlark.Binary(syntax.PERCENT, args[0], args[1])
}

// concatSize is the size of x + y for strings, lists and tuples.
func concatSize(x, y starlark.Value) int64 {
	switch x.(type) {
	case starlark.String, starlark.Bytes, *starlark.List, starlark.Tuple:
		return addSat(sizeOf(x), sizeOf(y))
	}
	return 0
}

// boolToInt makes bools take part in arithmetic as Python's ints do (True + 1 is 2).
func boolToInt(v starlark.Value) starlark.Value {
	if b, ok := v.(starlark.Bool); ok {
		if b {
			return starlark.MakeInt(1)
		}
		return starlark.MakeInt(0)
	}
	return v
}

// boxSafeAttr is python-box 7's attribute name for a key: characters that
// cannot be in an identifier become "_", and the result is stripped of
// surrounding "_"s; a leading digit gets an "x" prefix.
func boxSafeAttr(k string) string {
	var b strings.Builder
	for _, r := range k {
		if r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := strings.Trim(b.String(), "_")
	if out != "" && out[0] >= '0' && out[0] <= '9' {
		out = "x" + out
	}
	return out
}

func fnAdd(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	args = starlark.Tuple{boolToInt(args[0]), boolToInt(args[1])}
	if err := budgetOf(t).reserve(concatSize(args[0], args[1]), kindOf(args[0])); err != nil {
		return nil, err
	}
	return starlark.Binary(syntax.PLUS, args[0], args[1])
}

func fnMul(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	x, y := boolToInt(args[0]), boolToInt(args[1])
	// The repetition's size is known before Starlark builds it.
	seq, n := x, y
	if _, ok := x.(starlark.Int); ok {
		seq, n = y, x
	}
	if cnt, ok := n.(starlark.Int); ok && cnt.Sign() > 0 {
		if per := sizeOf(seq); per > 0 {
			k, ok := cnt.Int64()
			if !ok {
				k = math.MaxInt64
			}
			if err := budgetOf(t).reserve(mulSat(per, k), kindOf(seq)); err != nil {
				return nil, err
			}
		}
	}
	return starlark.Binary(syntax.STAR, x, y)
}

// fnIndex is x[k]. Strings index by code point, as in Python.
func fnIndex(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	x, k := args[0], boolToInt(args[1])
	if s, ok := x.(starlark.String); ok && !isASCII(string(s)) {
		x = chars(s)
	}
	switch v := x.(type) {
	case starlark.Mapping:
		r, found, err := v.Get(k)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("key %s not in %s", k.String(), x.Type())
		}
		return r, nil
	case starlark.Indexable:
		var i int
		if err := starlark.AsInt(k, &i); err != nil {
			return nil, fmt.Errorf("%s indices must be integers, not %s", pyTypeName(args[0]), k.Type())
		}
		n := v.Len()
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return nil, fmt.Errorf("%s index out of range", pyTypeName(args[0]))
		}
		return v.Index(i), nil
	}
	return nil, fmt.Errorf("'%s' object is not subscriptable", pyTypeName(args[0]))
}

func pyTypeName(v starlark.Value) string {
	if _, ok := v.(starlark.String); ok {
		return "str"
	}
	return typeName(v)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func fnSlice(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	x := args[0]
	if s, ok := x.(starlark.String); ok && !isASCII(string(s)) {
		// Python slices code points; slice the characters and rejoin.
		r, err := fnSlice(t, nil, starlark.Tuple{chars(s), args[1], args[2], args[3]}, nil)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		l := r.(*starlark.List)
		for i := 0; i < l.Len(); i++ {
			b.WriteString(string(l.Index(i).(starlark.String)))
		}
		return starlark.String(b.String()), nil
	}
	if s, ok := x.(*stepList); ok {
		x = s.list
	}
	sl, ok := x.(starlark.Sliceable)
	if !ok {
		return nil, fmt.Errorf("invalid slice operand %s", x.Type())
	}
	n := sl.Len()
	step := 1
	if args[3] != starlark.None {
		if err := starlark.AsInt(args[3], &step); err != nil {
			return nil, fmt.Errorf("invalid slice step: %v", err)
		}
		if step == 0 {
			return nil, fmt.Errorf("slice step cannot be zero")
		}
	}
	var lo, hi int
	if step > 0 {
		lo, hi = 0, n
	} else {
		lo, hi = n-1, -1
	}
	idx := func(v starlark.Value, def int) (int, error) {
		if v == starlark.None {
			return def, nil
		}
		var i int
		if err := starlark.AsInt(v, &i); err != nil {
			return 0, fmt.Errorf("slice indices must be integers or None")
		}
		if i < 0 {
			i += n
			if i < 0 {
				if step < 0 {
					return -1, nil
				}
				return 0, nil
			}
		}
		if i > n {
			if step < 0 {
				return n - 1, nil
			}
			return n, nil
		}
		if step < 0 && i == n {
			return n - 1, nil
		}
		return i, nil
	}
	var err error
	if lo, err = idx(args[1], lo); err != nil {
		return nil, err
	}
	if hi, err = idx(args[2], hi); err != nil {
		return nil, err
	}
	// An empty range, as Python gives for '0000'[7:0]: Slice itself
	// requires lo <= hi going forwards and lo >= hi going backwards.
	if (step > 0 && hi < lo) || (step < 0 && hi > lo) {
		hi = lo
	}
	v := sl.Slice(lo, hi, step)
	if _, isStr := v.(starlark.String); isStr && step == 1 {
		return v, nil // shares the original's memory
	}
	return charge(t, v)
}

func fnPow(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	return pow(t, args[0], args[1])
}

func pow(_ *starlark.Thread, x, y starlark.Value) (starlark.Value, error) {
	xi, xInt := x.(starlark.Int)
	yi, yInt := y.(starlark.Int)
	if xInt && yInt && yi.Sign() >= 0 {
		e, ok := yi.Int64()
		bits := int64(xi.BigInt().BitLen())
		if !ok || bits*e > 1<<16 {
			return nil, fmt.Errorf("integer power result too large")
		}
		return starlark.MakeBigInt(new(big.Int).Exp(xi.BigInt(), big.NewInt(e), nil)), nil
	}
	xf, ok1 := starlark.AsFloat(x)
	yf, ok2 := starlark.AsFloat(y)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("unsupported operand type(s) for ** or pow(): %s and %s", x.Type(), y.Type())
	}
	if xf == 0 && yf < 0 {
		return nil, fmt.Errorf("zero to a negative power")
	}
	r := math.Pow(xf, yf)
	if math.IsNaN(r) && !math.IsNaN(xf) && !math.IsNaN(yf) {
		return nil, fmt.Errorf("math domain error (negative number to a fractional power)")
	}
	return starlark.Float(r), nil
}

func fnDict(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	d := starlark.NewDict(len(args) / 2)
	for i := 0; i+1 < len(args); i += 2 {
		if err := d.SetKey(args[i], args[i+1]); err != nil {
			return nil, err
		}
	}
	return charge(t, d)
}

// chars returns the one-character strings of s: Python iterates strings,
// Starlark does not.
func chars(s starlark.String) *starlark.List {
	out := make([]starlark.Value, 0, len(s))
	for _, r := range string(s) {
		out = append(out, starlark.String(string(r)))
	}
	return starlark.NewList(out)
}

// joinChars is sep.join(s) for a string s: its characters with sep between.
func joinChars(sep, s string) starlark.String {
	if sep == "" && utf8.ValidString(s) {
		return starlark.String(s)
	}
	var b strings.Builder
	b.Grow(len(s) + len(sep)*utf8.RuneCountInString(s))
	for i, r := range s {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteRune(r)
	}
	return starlark.String(b.String())
}

func fnIter(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if s, ok := args[0].(starlark.String); ok {
		if err := budgetOf(t).reserve(charsSize(string(s)), "list"); err != nil {
			return nil, err
		}
		return chars(s), nil
	}
	return args[0], nil
}

// iterArgs wraps a builtin so that string arguments in the given positions
// (all positions if max < 0) are passed as lists of characters. For min/max
// only a sole argument is an iterable.
func iterArgs(b *starlark.Builtin, max int, soleOnly bool) *starlark.Builtin {
	est := estimators[b.Name()]
	return starlark.NewBuiltin(b.Name(), func(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		if !soleOnly || len(args) == 1 {
			var conv starlark.Tuple
			for i, a := range args {
				if s, ok := a.(starlark.String); ok && (max < 0 || i < max) {
					if conv == nil {
						conv = append(starlark.Tuple(nil), args...)
					}
					if err := budgetOf(t).reserve(charsSize(string(s)), "list"); err != nil {
						return nil, err
					}
					conv[i] = chars(s)
				}
			}
			if conv != nil {
				args = conv
			}
		}
		return guarded(t, est, nil, args, kw, func() (starlark.Value, error) { return b.CallInternal(t, args, kw) })
	})
}

var dictFromkeys = starlark.NewBuiltin("fromkeys", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var keysV starlark.Value
	var v starlark.Value = starlark.None
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &keysV, &v); err != nil {
		return nil, err
	}
	if s, ok := keysV.(starlark.String); ok {
		keysV = chars(s)
	}
	keys, ok := keysV.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("'%s' object is not iterable", keysV.Type())
	}
	if err := budgetOf(t).reserve(mulSat(entryBytes, int64(max(starlark.Len(keys), 0))), "dict"); err != nil {
		return nil, err
	}
	d := starlark.NewDict(0)
	it := keys.Iterate()
	defer it.Done()
	var k starlark.Value
	for it.Next(&k) {
		if err := d.SetKey(k, v); err != nil {
			return nil, err
		}
	}
	return d, nil
})

// fnEq is == and != with Python's bools equal to 1 and 0.
func fnEq(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	x, y := args[0], args[1]
	_, xb := x.(starlark.Bool)
	_, yb := y.(starlark.Bool)
	if xb != yb {
		x, y = boolToInt(x), boolToInt(y)
	}
	eq, err := starlark.Equal(x, y)
	if err != nil {
		return nil, err
	}
	if b.Name() == "!=" {
		return starlark.Bool(!eq), nil
	}
	return starlark.Bool(eq), nil
}

// fnDictMerge builds {**a, 'k': v, **b}: later keys win, as in Python.
func fnDictMerge(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	n := 0
	for _, a := range args {
		d, ok := a.(starlark.IterableMapping)
		if !ok {
			return nil, fmt.Errorf("'%s' object is not a mapping", a.Type())
		}
		n += starlark.Len(d)
	}
	if err := budgetOf(t).reserve(mulSat(entryBytes, int64(n)), "dict"); err != nil {
		return nil, err
	}
	out := starlark.NewDict(n)
	for _, a := range args {
		for _, item := range a.(starlark.IterableMapping).Items() {
			if err := out.SetKey(item[0], item[1]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// fnListCat builds [*a, x, *b] from iterables (a string gives its characters).
func fnListCat(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	var elems []starlark.Value
	for _, a := range args {
		if s, ok := a.(starlark.String); ok {
			a = chars(s)
		}
		if err := budgetOf(t).reserve(mulSat(slotBytes, int64(len(elems)+max(starlark.Len(a), 0))), "list"); err != nil {
			return nil, err
		}
		it := starlark.Iterate(a)
		if it == nil {
			return nil, fmt.Errorf("value after * must be an iterable, not %s", a.Type())
		}
		var e starlark.Value
		for it.Next(&e) {
			elems = append(elems, e)
		}
		it.Done()
	}
	return starlark.NewList(elems), nil
}

// fnLen counts a string's code points, as Python does (Starlark counts bytes).
func fnLen(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	if err := starlark.UnpackPositionalArgs("len", args, kw, 1, &x); err != nil {
		return nil, err
	}
	if s, ok := x.(starlark.String); ok {
		return starlark.MakeInt(utf8.RuneCountInString(string(s))), nil
	}
	if n := starlark.Len(x); n >= 0 {
		return starlark.MakeInt(n), nil
	}
	return nil, fmt.Errorf("object of type '%s' has no len()", x.Type())
}

// withDefault adds Python's default= to min and max: the value for an empty
// iterable.
func withDefault(b *starlark.Builtin) *starlark.Builtin {
	return starlark.NewBuiltin(b.Name(), func(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var def starlark.Value
		rest := kw[:0:0]
		for _, p := range kw {
			if string(p[0].(starlark.String)) == "default" {
				def = p[1]
				continue
			}
			rest = append(rest, p)
		}
		if def != nil {
			if len(args) != 1 {
				return nil, fmt.Errorf("%s: cannot specify a default with multiple positional arguments", b.Name())
			}
			if starlark.Len(args[0]) == 0 {
				return def, nil
			}
		}
		return b.CallInternal(t, args, rest)
	})
}

func fnSet(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if err := budgetOf(t).reserve(mulSat(setBytes, length(args[0])), "set"); err != nil {
		return nil, err
	}
	s := starlark.NewSet(starlark.Len(args[0]))
	it := starlark.Iterate(args[0])
	defer it.Done()
	var e starlark.Value
	for it.Next(&e) {
		if err := s.Insert(e); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ---- Python builtins that Starlark lacks or spells differently ----

func fnStr(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 0 {
		return starlark.String(""), nil
	}
	if b, ok := args[0].(starlark.Bytes); ok && (len(args) > 1 || len(kw) > 0) {
		return starlark.String(strings.ToValidUTF8(string(b), "\uFFFD")), nil
	}
	if len(args) > 1 {
		return nil, fmt.Errorf("str() takes at most 1 argument")
	}
	if s, ok := args[0].(starlark.String); ok {
		return s, nil
	}
	v, err := strValue(args[0])
	if err != nil {
		return nil, err
	}
	return charge(t, v)
}

func fnRepr(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("repr() takes exactly one argument")
	}
	v, err := reprValue(args[0])
	if err != nil {
		return nil, err
	}
	return charge(t, v)
}

func fnInt(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if len(args) >= 1 {
		if s, ok := args[0].(starlark.String); ok {
			trimmed := strings.ReplaceAll(strings.TrimSpace(string(s)), "_", "")
			args = append(starlark.Tuple{starlark.String(trimmed)}, args[1:]...)
		}
	}
	return starlark.Universe["int"].(*starlark.Builtin).CallInternal(t, args, kw)
}

func fnFloat(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 1 {
		if s, ok := args[0].(starlark.String); ok {
			args = starlark.Tuple{starlark.String(strings.TrimSpace(string(s)))}
		}
	}
	return starlark.Universe["float"].(*starlark.Builtin).CallInternal(t, args, kw)
}

const maxRange = 1_000_000 // Julep's MAX_RANGE_SIZE

func fnRange(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	v, err := starlark.Universe["range"].(*starlark.Builtin).CallInternal(t, args, kw)
	if err != nil {
		return nil, err
	}
	if starlark.Len(v) > maxRange {
		return nil, fmt.Errorf("range size exceeds maximum of %d", maxRange)
	}
	return v, nil
}

func fnSum(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var iterable starlark.Iterable
	var start starlark.Value = starlark.MakeInt(0)
	if err := starlark.UnpackArgs("sum", args, kw, "iterable", &iterable, "start?", &start); err != nil {
		return nil, err
	}
	acc := start
	it := iterable.Iterate()
	defer it.Done()
	var e starlark.Value
	for it.Next(&e) {
		if _, ok := e.(starlark.String); ok {
			return nil, fmt.Errorf("sum() can't sum strings [use ''.join(seq) instead]")
		}
		acc, e = boolToInt(acc), boolToInt(e)
		if err := budgetOf(t).reserve(concatSize(acc, e), kindOf(acc)); err != nil {
			return nil, err
		}
		var err error
		if acc, err = starlark.Binary(syntax.PLUS, acc, e); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

func fnRound(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var x starlark.Value
	var nd starlark.Value = starlark.None
	if err := starlark.UnpackArgs("round", args, kw, "number", &x, "ndigits?", &nd); err != nil {
		return nil, err
	}
	if i, ok := x.(starlark.Int); ok {
		if nd == starlark.None {
			return i, nil
		}
		var n int
		if err := starlark.AsInt(nd, &n); err != nil {
			return nil, err
		}
		if n >= 0 {
			return i, nil
		}
		f, _ := starlark.AsFloat(i)
		p := math.Pow(10, float64(-n))
		return starlark.NumberToInt(starlark.Float(math.RoundToEven(f/p) * p))
	}
	f, ok := starlark.AsFloat(x)
	if !ok {
		return nil, fmt.Errorf("round() argument must be a number, not %s", x.Type())
	}
	if nd == starlark.None {
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("cannot convert float %s to integer", pyFloatRepr(f))
		}
		return starlark.NumberToInt(starlark.Float(math.RoundToEven(f)))
	}
	var n int
	if err := starlark.AsInt(nd, &n); err != nil {
		return nil, err
	}
	if n > 300 || n < -300 {
		return starlark.Float(f), nil
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return starlark.Float(f), nil
	}
	if n >= 0 {
		// FormatFloat rounds the exact binary value, as Python's round does
		// (round(2.675, 2) == 2.67).
		r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'f', n, 64), 64)
		if err != nil {
			return nil, err
		}
		return starlark.Float(r), nil
	}
	p := math.Pow(10, float64(-n))
	return starlark.Float(math.RoundToEven(f/p) * p), nil
}

// typeBuiltins maps Starlark type names to the builtin that `type()` returns
// and `isinstance` accepts, so `type(x) == str` works.
var typeBuiltins map[string]*starlark.Builtin
var noneType = starlark.NewBuiltin("NoneType", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return starlark.None, nil
})

func typeName(v starlark.Value) string {
	switch v.(type) {
	case *stepList:
		return "list"
	case *starlark.Builtin, *starlark.Function:
		return "function"
	}
	return v.Type()
}

func fnType(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("type() takes 1 argument")
	}
	if b := typeBuiltins[typeName(args[0])]; b != nil {
		return b, nil
	}
	return starlark.String(typeName(args[0])), nil
}

func fnIsinstance(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("isinstance expected 2 arguments, got %d", len(args))
	}
	var classes []starlark.Value
	if tup, ok := args[1].(starlark.Tuple); ok {
		classes = tup
	} else {
		classes = []starlark.Value{args[1]}
	}
	tn := typeName(args[0])
	for _, c := range classes {
		b, ok := c.(*starlark.Builtin)
		if !ok {
			return nil, fmt.Errorf("isinstance() arg 2 must be a type or tuple of types")
		}
		if typeBuiltins[tn] == b || (tn == "bool" && b == typeBuiltins["int"]) {
			return starlark.True, nil
		}
	}
	return starlark.False, nil
}

func callArg(t *starlark.Thread, fn starlark.Value, args ...starlark.Value) (starlark.Value, error) {
	return starlark.Call(t, fn, args, nil)
}

func fnMap(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("map() must have at least two arguments")
	}
	iters := make([]starlark.Iterator, len(args)-1)
	for i, a := range args[1:] {
		it := starlark.Iterate(a)
		if it == nil {
			return nil, fmt.Errorf("map: %s is not iterable", a.Type())
		}
		defer it.Done()
		iters[i] = it
	}
	bud := budgetOf(t)
	var out []starlark.Value
	for {
		if err := bud.reserve(slotBytes, "list"); err != nil {
			return nil, err
		}
		call := make(starlark.Tuple, len(iters))
		for i, it := range iters {
			if !it.Next(&call[i]) {
				return starlark.NewList(out), nil
			}
		}
		v, err := starlark.Call(t, args[0], call, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func fnFilter(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("filter expected 2 arguments")
	}
	it := starlark.Iterate(args[1])
	if it == nil {
		return nil, fmt.Errorf("filter: %s is not iterable", args[1].Type())
	}
	defer it.Done()
	bud := budgetOf(t)
	var out []starlark.Value
	var e starlark.Value
	for it.Next(&e) {
		if err := bud.reserve(slotBytes, "list"); err != nil {
			return nil, err
		}
		keep := e.Truth()
		if args[0] != starlark.None {
			v, err := callArg(t, args[0], e)
			if err != nil {
				return nil, err
			}
			keep = v.Truth()
		}
		if keep {
			out = append(out, e)
		}
	}
	return starlark.NewList(out), nil
}

func fnReduce(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) < 2 || len(args) > 3 {
		return nil, fmt.Errorf("reduce expected 2 or 3 arguments")
	}
	it := starlark.Iterate(args[1])
	if it == nil {
		return nil, fmt.Errorf("reduce: %s is not iterable", args[1].Type())
	}
	defer it.Done()
	var acc starlark.Value
	if len(args) == 3 {
		acc = args[2]
	} else if !it.Next(&acc) {
		return nil, fmt.Errorf("reduce() of empty iterable with no initial value")
	}
	bud := budgetOf(t)
	var e starlark.Value
	for it.Next(&e) {
		if err := bud.alive(); err != nil {
			return nil, err
		}
		v, err := callArg(t, args[0], acc, e)
		if err != nil {
			return nil, err
		}
		acc = v
	}
	return acc, nil
}

func fnDivmod(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("divmod expected 2 arguments")
	}
	q, err := starlark.Binary(syntax.SLASHSLASH, args[0], args[1])
	if err != nil {
		return nil, err
	}
	r, err := starlark.Binary(syntax.PERCENT, args[0], args[1])
	if err != nil {
		return nil, err
	}
	return starlark.Tuple{q, r}, nil
}

func fnPowBuiltin(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("pow expected 2 arguments")
	}
	return pow(t, args[0], args[1])
}

func fnFormat(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, fmt.Errorf("format expected 1 or 2 arguments")
	}
	spec := ""
	if len(args) == 2 {
		s, ok := args[1].(starlark.String)
		if !ok {
			return nil, fmt.Errorf("format() argument 2 must be str")
		}
		spec = string(s)
	}
	s, err := formatValue(args[0], spec)
	if err != nil {
		return nil, err
	}
	return charge(t, starlark.String(s))
}

func fnHasattr(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("hasattr expected 2 arguments")
	}
	name, ok := args[1].(starlark.String)
	if !ok {
		return nil, fmt.Errorf("hasattr(): attribute name must be string")
	}
	_, err := getAttr(t, args[0], string(name))
	return starlark.Bool(err == nil), nil
}

func fnGetattr(t *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
	if len(args) < 2 || len(args) > 3 {
		return nil, fmt.Errorf("getattr expected 2 or 3 arguments")
	}
	name, ok := args[1].(starlark.String)
	if !ok {
		return nil, fmt.Errorf("getattr(): attribute name must be string")
	}
	v, err := getAttr(t, args[0], string(name))
	if err != nil && len(args) == 3 {
		return args[2], nil
	}
	return v, err
}

func intRadix(prefix string, base int) builtinFn {
	return func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("%s expected 1 argument", b.Name())
		}
		i, ok := args[0].(starlark.Int)
		if !ok {
			return nil, fmt.Errorf("%s() argument must be int", b.Name())
		}
		n := i.BigInt()
		sign := ""
		if n.Sign() < 0 {
			sign = "-"
			n.Abs(n)
		}
		return starlark.String(sign + prefix + n.Text(base)), nil
	}
}

// ---- extra methods ----

func recvString(b *starlark.Builtin) string { return string(b.Receiver().(starlark.String)) }

var strExtras map[string]*starlark.Builtin

// pySplitlines is Python's str.splitlines: every Unicode line boundary
// (\n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, \u2028, \u2029) ends a line.
func pySplitlines(s string, keep bool) *starlark.List {
	var out []starlark.Value
	start := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			end := i + n
			if r == '\r' && end < len(s) && s[end] == '\n' {
				end++
			}
			if keep {
				out = append(out, starlark.String(s[start:end]))
			} else {
				out = append(out, starlark.String(s[start:i]))
			}
			start, i = end, end
			continue
		}
		i += n
	}
	if start < len(s) {
		out = append(out, starlark.String(s[start:]))
	}
	return starlark.NewList(out)
}

// runeFind is str.find/rfind/index/rindex with Python's code-point offsets
// (Starlark's count bytes).
func runeFind(name string, last, raise bool) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var sub string
		var startV, endV starlark.Value = starlark.None, starlark.None
		if err := starlark.UnpackPositionalArgs(name, args, kw, 1, &sub, &startV, &endV); err != nil {
			return nil, err
		}
		rs := []rune(recvString(b))
		n := len(rs)
		idx := func(v starlark.Value, def int) (int, error) {
			if v == starlark.None {
				return def, nil
			}
			var i int
			if err := starlark.AsInt(v, &i); err != nil {
				return 0, fmt.Errorf("%s: slice indices must be integers", name)
			}
			if i < 0 {
				i += n
			}
			return min(max(i, 0), n), nil
		}
		lo, err := idx(startV, 0)
		if err != nil {
			return nil, err
		}
		hi, err := idx(endV, n)
		if err != nil {
			return nil, err
		}
		pos := -1
		if lo <= hi {
			hay := string(rs[lo:hi])
			var j int
			if last {
				j = strings.LastIndex(hay, sub)
			} else {
				j = strings.Index(hay, sub)
			}
			if j >= 0 {
				pos = lo + utf8.RuneCountInString(hay[:j])
			}
		}
		if pos < 0 && raise {
			return nil, fmt.Errorf("substring not found")
		}
		return starlark.MakeInt(pos), nil
	})
}

func initStrExtras() {
	strExtras = map[string]*starlark.Builtin{
		"format": starlark.NewBuiltin("format", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			s, err := strFormat(t, recvString(b), args, kw)
			if err != nil {
				return nil, err
			}
			return charge(t, starlark.String(s))
		}),
		"join": starlark.NewBuiltin("join", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			sep := recvString(b)
			if len(args) == 1 && len(kw) == 0 {
				if s, ok := args[0].(starlark.String); ok {
					// Python joins a string's characters; done directly
					// because ''.join(text) is a common idiom on big texts.
					n := addSat(int64(len(s)), mulSat(int64(len(sep)), int64(utf8.RuneCountInString(string(s)))))
					if err := budgetOf(t).reserve(n, "string"); err != nil {
						return nil, err
					}
					return joinChars(sep, string(s)), nil
				}
			}
			n, _ := estimateJoin(starlark.String(sep), args, kw)
			if err := budgetOf(t).reserve(n, "string"); err != nil {
				return nil, err
			}
			m, _ := starlark.String(sep).Attr("join")
			return m.(*starlark.Builtin).CallInternal(t, args, kw)
		}),
		"zfill": starlark.NewBuiltin("zfill", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var w int
			if err := starlark.UnpackPositionalArgs("zfill", args, kw, 1, &w); err != nil {
				return nil, err
			}
			if err := budgetOf(t).reserve(max(int64(w), int64(len(recvString(b)))), "string"); err != nil {
				return nil, err
			}
			s := recvString(b)
			sign := ""
			if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
				sign, s = s[:1], s[1:]
			}
			n := w - len(sign) - utf8.RuneCountInString(s)
			if n <= 0 {
				return starlark.String(sign + s), nil
			}
			return starlark.String(sign + strings.Repeat("0", n) + s), nil
		}),
		"center": justify("center"),
		"ljust":  justify("ljust"),
		"rjust":  justify("rjust"),
		// Python's case mappings are Unicode's full ones ('straße'.upper() is
		// 'STRASSE', final sigma lowers to 'ς'); x/text/cases implements them.
		"casefold": newFn("casefold", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			return starlark.String(cases.Fold().String(recvString(b))), nil
		}),
		"upper": newFn("upper", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			return starlark.String(cases.Upper(language.Und).String(recvString(b))), nil
		}),
		"lower": newFn("lower", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			return starlark.String(cases.Lower(language.Und).String(recvString(b))), nil
		}),
		"splitlines": starlark.NewBuiltin("splitlines", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var keep bool
			if err := starlark.UnpackArgs("splitlines", args, kw, "keepends?", &keep); err != nil {
				return nil, err
			}
			return pySplitlines(recvString(b), keep), nil
		}),
		"find":   runeFind("find", false, false),
		"rfind":  runeFind("rfind", true, false),
		"index":  runeFind("index", false, true),
		"rindex": runeFind("rindex", true, true),
		"swapcase": newFn("swapcase", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			return starlark.String(strings.Map(func(r rune) rune {
				if unicode.IsUpper(r) {
					return unicode.ToLower(r)
				}
				return unicode.ToUpper(r)
			}, recvString(b))), nil
		}),
		"isnumeric": strPred(func(r rune) bool { return unicode.IsNumber(r) }),
		"isdecimal": strPred(func(r rune) bool { return unicode.Is(unicode.Nd, r) }),
		"isascii": starlark.NewBuiltin("isascii", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			for _, r := range recvString(b) {
				if r > 0x7f {
					return starlark.False, nil
				}
			}
			return starlark.True, nil
		}),
		"encode": starlark.NewBuiltin("encode", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			return starlark.Bytes(recvString(b)), nil
		}),
		"expandtabs": starlark.NewBuiltin("expandtabs", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			size := 8
			if err := starlark.UnpackArgs("expandtabs", args, kw, "tabsize?", &size); err != nil {
				return nil, err
			}
			if size < 0 || size > 64 {
				size = 8
			}
			s := recvString(b)
			n := addSat(int64(len(s)), mulSat(int64(strings.Count(s, "\t")), int64(size)))
			if err := budgetOf(t).reserve(n, "string"); err != nil {
				return nil, err
			}
			// Python pads each tab to the next multiple of tabsize within its line.
			var out strings.Builder
			col := 0
			for _, r := range s {
				switch r {
				case '\t':
					if size > 0 {
						pad := size - col%size
						out.WriteString(strings.Repeat(" ", pad))
						col += pad
					}
				case '\n', '\r':
					out.WriteRune(r)
					col = 0
				default:
					out.WriteRune(r)
					col++
				}
			}
			return starlark.String(out.String()), nil
		}),
	}
}

func strPred(pred func(rune) bool) *starlark.Builtin {
	return starlark.NewBuiltin("is", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		s := recvString(b)
		if s == "" {
			return starlark.False, nil
		}
		for _, r := range s {
			if !pred(r) {
				return starlark.False, nil
			}
		}
		return starlark.True, nil
	})
}

func justify(name string) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var w int
		fill := " "
		if err := starlark.UnpackPositionalArgs(name, args, kw, 1, &w, &fill); err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(fill) != 1 {
			return nil, fmt.Errorf("the fill character must be exactly one character long")
		}
		s := recvString(b)
		if err := budgetOf(t).reserve(max(mulSat(int64(w), int64(len(fill))), int64(len(s))), "string"); err != nil {
			return nil, err
		}
		fs := formatSpec{fill: []rune(fill)[0], width: w, align: map[string]byte{"center": '^', "ljust": '<', "rjust": '>'}[name]}
		return starlark.String(pad(s, fs, '<')), nil
	})
}

var listExtras = map[string]*starlark.Builtin{
	"sort": starlark.NewBuiltin("sort", func(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		l := b.Receiver().(*starlark.List)
		sorted, err := starlark.Universe["sorted"].(*starlark.Builtin).CallInternal(t, starlark.Tuple{l}, kw)
		if err != nil {
			return nil, err
		}
		if len(args) > 0 {
			return nil, fmt.Errorf("sort() takes no positional arguments")
		}
		sl := sorted.(*starlark.List)
		for i := 0; i < sl.Len(); i++ {
			if err := l.SetIndex(i, sl.Index(i)); err != nil {
				return nil, err
			}
		}
		return starlark.None, nil
	}),
	"reverse": starlark.NewBuiltin("reverse", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		l := b.Receiver().(*starlark.List)
		n := l.Len()
		for i := 0; i < n/2; i++ {
			a, c := l.Index(i), l.Index(n-1-i)
			if err := l.SetIndex(i, c); err != nil {
				return nil, err
			}
			_ = l.SetIndex(n-1-i, a)
		}
		return starlark.None, nil
	}),
	"copy": newFn("copy", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		l := b.Receiver().(*starlark.List)
		elems := make([]starlark.Value, l.Len())
		for i := range elems {
			elems[i] = l.Index(i)
		}
		return starlark.NewList(elems), nil
	}),
	"count": starlark.NewBuiltin("count", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("count() takes exactly one argument")
		}
		l := b.Receiver().(*starlark.List)
		n := 0
		for i := 0; i < l.Len(); i++ {
			if eq, err := starlark.Equal(l.Index(i), args[0]); err == nil && eq {
				n++
			}
		}
		return starlark.MakeInt(n), nil
	}),
}

var dictExtras = map[string]*starlark.Builtin{
	"copy": newFn("copy", func(_ *starlark.Thread, b *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
		d := b.Receiver().(*starlark.Dict)
		out := starlark.NewDict(d.Len())
		for _, item := range d.Items() {
			_ = out.SetKey(item[0], item[1])
		}
		return out, nil
	}),
}

// builtins is the predeclared environment shared by every evaluation. It is
// frozen, so concurrent evaluations may share it.
var builtins starlark.StringDict

func init() {
	initStrExtras()
	u := func(name string) *starlark.Builtin { return starlark.Universe[name].(*starlark.Builtin) }
	b := starlark.StringDict{
		"None": starlark.None, "True": starlark.True, "False": starlark.False,
		"true": starlark.True, "false": starlark.False, "null": starlark.None,
		"NEWLINE": starlark.String("\n"),

		"__fs":    starlark.NewBuiltin("f-string", fnFString),
		"__attr":  starlark.NewBuiltin("getattr", fnAttr),
		"__mod":   starlark.NewBuiltin("%", fnMod),
		"__add":   starlark.NewBuiltin("+", fnAdd),
		"__mul":   starlark.NewBuiltin("*", fnMul),
		"__slice": starlark.NewBuiltin("slice", fnSlice),
		"__pow":   starlark.NewBuiltin("**", fnPow),
		"__set":   starlark.NewBuiltin("set", fnSet),
		"__dict":  starlark.NewBuiltin("dict", fnDict),

		"__iter":   starlark.NewBuiltin("iter", fnIter),
		"__index":  starlark.NewBuiltin("index", fnIndex),
		"__eq":     starlark.NewBuiltin("==", fnEq),
		"__ne":     starlark.NewBuiltin("!=", fnEq),
		"__dmerge": starlark.NewBuiltin("dict display", fnDictMerge),
		"__lcat":   starlark.NewBuiltin("list display", fnListCat),
		"abs":      u("abs"), "bool": u("bool"),
		"all": iterArgs(u("all"), 1, false), "any": iterArgs(u("any"), 1, false),
		"chr": u("chr"), "ord": u("ord"), "len": starlark.NewBuiltin("len", fnLen), "hash": u("hash"),
		"min": withDefault(iterArgs(u("min"), 1, true)), "max": withDefault(iterArgs(u("max"), 1, true)),
		"dict": charged(u("dict"), "dict"), "list": iterArgs(u("list"), 1, false), "tuple": iterArgs(u("tuple"), 1, false),
		"set": iterArgs(u("set"), 1, false), "sorted": iterArgs(u("sorted"), 1, false), "reversed": iterArgs(u("reversed"), 1, false),
		"enumerate": iterArgs(u("enumerate"), 1, false), "zip": iterArgs(u("zip"), -1, false), "dir": u("dir"),
		"str":        starlark.NewBuiltin("str", fnStr),
		"repr":       starlark.NewBuiltin("repr", fnRepr),
		"int":        starlark.NewBuiltin("int", fnInt),
		"float":      starlark.NewBuiltin("float", fnFloat),
		"range":      starlark.NewBuiltin("range", fnRange),
		"sum":        starlark.NewBuiltin("sum", fnSum),
		"round":      starlark.NewBuiltin("round", fnRound),
		"type":       starlark.NewBuiltin("type", fnType),
		"isinstance": starlark.NewBuiltin("isinstance", fnIsinstance),
		"map":        starlark.NewBuiltin("map", fnMap),
		"filter":     starlark.NewBuiltin("filter", fnFilter),
		"reduce":     starlark.NewBuiltin("reduce", fnReduce),
		"divmod":     starlark.NewBuiltin("divmod", fnDivmod),
		"pow":        starlark.NewBuiltin("pow", fnPowBuiltin),
		"format":     starlark.NewBuiltin("format", fnFormat),
		"hasattr":    starlark.NewBuiltin("hasattr", fnHasattr),
		"getattr":    starlark.NewBuiltin("getattr", fnGetattr),
		"hex":        starlark.NewBuiltin("hex", intRadix("0x", 16)),
		"oct":        starlark.NewBuiltin("oct", intRadix("0o", 8)),
		"bin":        starlark.NewBuiltin("bin", intRadix("0b", 2)),
	}
	typeBuiltins = map[string]*starlark.Builtin{
		"string": b["str"].(*starlark.Builtin), "int": b["int"].(*starlark.Builtin),
		"float": b["float"].(*starlark.Builtin), "bool": b["bool"].(*starlark.Builtin),
		"list": b["list"].(*starlark.Builtin), "dict": b["dict"].(*starlark.Builtin),
		"tuple": b["tuple"].(*starlark.Builtin), "set": b["set"].(*starlark.Builtin),
		"NoneType": noneType,
	}
	for name, v := range modules() {
		b[name] = v
	}
	b.Freeze()
	builtins = b
	_ = sort.Strings
}
