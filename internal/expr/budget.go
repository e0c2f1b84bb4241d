package expr

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"go.starlark.net/starlark"
)

// Memory accounting. Starlark bounds interpreter steps but not memory, and a
// single builtin call can build gigabytes in one step ('a' * 10**10,
// s.replace(x, y * 100000)). So every helper that can build a large value
// works out the size it is about to build and reserves it before building:
// one value may not exceed maxValueBytes, and everything an evaluation builds
// (the converted result included) may not exceed limits.maxAlloc.
//
// Sizes approximate Go memory: a string costs its bytes; a list or tuple 16
// bytes a slot (one interface value); a dict entry 64; a set element 48.

const (
	budgetKey = "expr.budget"

	// maxValueBytes bounds one string, list, dict or result. Julep's own
	// limit on a task value is far smaller (Temporal payloads are ~2 MB).
	maxValueBytes = 16 << 20

	slotBytes  = 16 // one starlark.Value in a list or tuple
	entryBytes = 64 // one dict entry
	setBytes   = 48 // one set element
	pieceBytes = 32 // one substring in a list: its slot plus its boxed header
)

// budget is one evaluation's allowance, kept in its thread.
type budget struct {
	used, limit int64
	// cancelled is set by the evaluation's timer or context so that loops
	// inside builtins, which the interpreter's cancellation does not reach,
	// stop too.
	cancelled atomic.Bool
}

func budgetOf(t *starlark.Thread) *budget {
	if t == nil {
		return nil
	}
	b, _ := t.Local(budgetKey).(*budget)
	return b
}

var errInterrupted = errors.New("evaluation interrupted")

// alive reports errInterrupted once the evaluation has been cancelled.
func (b *budget) alive() error {
	if b != nil && b.cancelled.Load() {
		return errInterrupted
	}
	return nil
}

// reserve charges n bytes for a value of the given kind ("string", "list",
// ...) that is about to be built, failing if that one value or the
// evaluation's total would exceed its limit.
func (b *budget) reserve(n int64, kind string) error {
	if n <= 0 {
		return nil
	}
	if n > maxValueBytes {
		return tooLarge(n, kind)
	}
	if b == nil {
		return nil
	}
	if err := b.alive(); err != nil {
		return err
	}
	b.used += n
	if b.used > b.limit {
		return fmt.Errorf("expression exceeded its memory budget of %s (it built %s in all)", humanBytes(b.limit), humanBytes(b.used))
	}
	return nil
}

func tooLarge(n int64, kind string) error {
	return fmt.Errorf("expression would build a %s %s; the limit is %s", humanBytes(n), kind, humanBytes(maxValueBytes))
}

// humanBytes renders n as "16 MB" or "9.3 GB" (binary multiples).
func humanBytes(n int64) string {
	if n == math.MaxInt64 {
		return "more than 8 EB"
	}
	units := []string{"bytes", "KB", "MB", "GB", "TB", "PB", "EB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	switch {
	case u == 0:
		return fmt.Sprintf("%d bytes", n)
	case f == math.Trunc(f):
		return fmt.Sprintf("%d %s", int64(f), units[u])
	}
	return fmt.Sprintf("%.1f %s", f, units[u])
}

// mulSat and addSat saturate instead of overflowing: sizes computed from
// hostile counts must still compare as too large.
func mulSat(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func sizeOf(v starlark.Value) int64 {
	switch x := v.(type) {
	case starlark.String:
		return int64(len(x))
	case starlark.Bytes:
		return int64(len(x))
	case *starlark.List:
		return slotBytes * int64(x.Len())
	case starlark.Tuple:
		return slotBytes * int64(len(x))
	case *starlark.Dict:
		return entryBytes * int64(x.Len())
	case *starlark.Set:
		return setBytes * int64(x.Len())
	}
	return 0
}

func kindOf(v starlark.Value) string {
	switch v.(type) {
	case starlark.String:
		return "string"
	case *starlark.List, *stepList:
		return "list"
	case starlark.Tuple:
		return "tuple"
	case *starlark.Dict:
		return "dict"
	case *starlark.Set:
		return "set"
	}
	return "value"
}

// chargeN charges n bytes of a value already built.
func chargeN(thread *starlark.Thread, n int64) error {
	return budgetOf(thread).reserve(n, "value")
}

// charge charges a value already built (its top level: nested values were
// charged when they were built).
func charge(thread *starlark.Thread, v starlark.Value) (starlark.Value, error) {
	if err := budgetOf(thread).reserve(sizeOf(v), kindOf(v)); err != nil {
		return nil, err
	}
	return v, nil
}

// estimator returns the size a builtin is about to build from its receiver
// (nil for functions) and arguments, and what it builds. Zero means "no more
// than its inputs", charged once built.
type estimator func(recv starlark.Value, args starlark.Tuple, kw []starlark.Tuple) (int64, string)

// guarded reserves the estimate, calls fn, and charges whatever the result
// turned out to need beyond the estimate.
func guarded(t *starlark.Thread, est estimator, recv starlark.Value, args starlark.Tuple, kw []starlark.Tuple,
	fn func() (starlark.Value, error)) (starlark.Value, error) {
	b := budgetOf(t)
	var n int64
	if est != nil {
		var kind string
		n, kind = est(recv, args, kw)
		if err := b.reserve(n, kind); err != nil {
			return nil, err
		}
	}
	v, err := fn()
	if err != nil {
		return nil, err
	}
	if extra := sizeOf(v) - n; extra > 0 {
		if err := b.reserve(extra, kindOf(v)); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// length is starlark.Len, or 0 when the length is unknown.
func length(v starlark.Value) int64 {
	if n := starlark.Len(v); n > 0 {
		return int64(n)
	}
	return 0
}

func perItem(per int64, kind string) estimator {
	return func(_ starlark.Value, args starlark.Tuple, _ []starlark.Tuple) (int64, string) {
		if len(args) == 0 {
			return 0, kind
		}
		return mulSat(per, length(args[0])), kind
	}
}

// estimators of Starlark's own builtins and methods that can build more than
// their inputs, by "type.name" ("string.replace") or builtin name.
var estimators = map[string]estimator{
	"string.replace":           estimateReplace,
	"string.join":              estimateJoin,
	"string.split":             estimateSplit,
	"string.rsplit":            estimateSplit,
	"string.splitlines":        estimateSplitlines,
	"string.upper":             sameString,
	"string.lower":             sameString,
	"string.title":             sameString,
	"string.capitalize":        sameString,
	"list.append":              constant(slotBytes, "list"),
	"list.insert":              constant(slotBytes, "list"),
	"list.extend":              perItem(slotBytes, "list"),
	"dict.items":               receiverItems(slotBytes+2*slotBytes+24, "list"),
	"dict.keys":                receiverItems(slotBytes, "list"),
	"dict.values":              receiverItems(slotBytes, "list"),
	"dict.update":              dictArgs,
	"dict.setdefault":          constant(entryBytes, "dict"),
	"set.add":                  constant(setBytes, "set"),
	"set.update":               setArgs,
	"set.union":                setArgs,
	"set.intersection":         setArgs,
	"set.difference":           setArgs,
	"set.symmetric_difference": setArgs,
	"dict":                     dictArgs,
	"list":                     perItem(slotBytes, "list"),
	"tuple":                    perItem(slotBytes, "tuple"),
	"sorted":                   perItem(slotBytes, "list"),
	"reversed":                 perItem(slotBytes, "list"),
	"set":                      perItem(setBytes, "set"),
	"enumerate":                perItem(slotBytes+2*slotBytes+24, "list"),
	"zip":                      estimateZip,
}

func constant(n int64, kind string) estimator {
	return func(starlark.Value, starlark.Tuple, []starlark.Tuple) (int64, string) { return n, kind }
}

func receiverItems(per int64, kind string) estimator {
	return func(recv starlark.Value, _ starlark.Tuple, _ []starlark.Tuple) (int64, string) {
		return mulSat(per, length(recv)), kind
	}
}

func sameString(recv starlark.Value, _ starlark.Tuple, _ []starlark.Tuple) (int64, string) {
	return sizeOf(recv), "string"
}

func dictArgs(_ starlark.Value, args starlark.Tuple, kw []starlark.Tuple) (int64, string) {
	n := int64(len(kw))
	for _, a := range args {
		n = addSat(n, length(a))
	}
	return mulSat(entryBytes, n), "dict"
}

func setArgs(recv starlark.Value, args starlark.Tuple, _ []starlark.Tuple) (int64, string) {
	n := length(recv)
	for _, a := range args {
		n = addSat(n, length(a))
	}
	return mulSat(setBytes, n), "set"
}

func estimateZip(_ starlark.Value, args starlark.Tuple, _ []starlark.Tuple) (int64, string) {
	if len(args) == 0 {
		return 0, "list"
	}
	n := int64(math.MaxInt64)
	for _, a := range args {
		n = min(n, length(a))
	}
	return mulSat(n, slotBytes+24+slotBytes*int64(len(args))), "list"
}

func stringArg(args starlark.Tuple, i int) (string, bool) {
	if i >= len(args) {
		return "", false
	}
	s, ok := args[i].(starlark.String)
	return string(s), ok
}

func intArg(args starlark.Tuple, i int) (int64, bool) {
	if i >= len(args) {
		return 0, false
	}
	n, ok := args[i].(starlark.Int)
	if !ok {
		return 0, false
	}
	return n.Int64()
}

// estimateReplace is s.replace(old, new[, count]): each replaced occurrence
// adds len(new)-len(old) bytes.
func estimateReplace(recv starlark.Value, args starlark.Tuple, kw []starlark.Tuple) (int64, string) {
	s, _ := recv.(starlark.String)
	old, ok1 := stringArg(args, 0)
	repl, ok2 := stringArg(args, 1)
	if !ok1 || !ok2 || len(repl) <= len(old) {
		return int64(len(s)), "string"
	}
	n := int64(strings.Count(string(s), old)) // "" matches at every rune boundary, as in Python
	if c, ok := intArg(args, 2); ok && c >= 0 && c < n {
		n = c
	}
	return addSat(int64(len(s)), mulSat(n, int64(len(repl)-len(old)))), "string"
}

// estimateJoin is sep.join(iterable): the elements' lengths plus a separator
// between each two.
func estimateJoin(recv starlark.Value, args starlark.Tuple, _ []starlark.Tuple) (int64, string) {
	sep, _ := recv.(starlark.String)
	if len(args) != 1 {
		return 0, "string"
	}
	it := starlark.Iterate(args[0])
	if it == nil {
		return 0, "string"
	}
	defer it.Done()
	var total, n int64
	var e starlark.Value
	for it.Next(&e) {
		if s, ok := e.(starlark.String); ok {
			total = addSat(total, int64(len(s)))
		}
		n++
	}
	if n > 1 {
		total = addSat(total, mulSat(n-1, int64(len(sep))))
	}
	return total, "string"
}

// estimateSplit counts the pieces s.split(sep[, maxsplit]) returns.
func estimateSplit(recv starlark.Value, args starlark.Tuple, kw []starlark.Tuple) (int64, string) {
	s, _ := recv.(starlark.String)
	var pieces int64
	if sep, ok := stringArg(args, 0); ok && sep != "" {
		pieces = int64(strings.Count(string(s), sep)) + 1
	} else {
		pieces = int64(countFields(string(s)))
	}
	if m, ok := intArg(args, 1); ok && m >= 0 && m+1 < pieces {
		pieces = m + 1
	}
	return mulSat(pieces, pieceBytes), "list"
}

func countFields(s string) int {
	n, in := 0, false
	for _, r := range s {
		space := unicode.IsSpace(r)
		if !space && !in {
			n++
		}
		in = !space
	}
	return n
}

func estimateSplitlines(recv starlark.Value, _ starlark.Tuple, _ []starlark.Tuple) (int64, string) {
	s, _ := recv.(starlark.String)
	return mulSat(int64(strings.Count(string(s), "\n")+strings.Count(string(s), "\r")+1), pieceBytes), "list"
}

// charsSize is what the list of a string's characters costs.
func charsSize(s string) int64 {
	return mulSat(int64(utf8.RuneCountInString(s)), pieceBytes)
}
