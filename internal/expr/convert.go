package expr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"time"

	"go.starlark.net/starlark"
)

// maxExactFloat is 2^53: every integer of at most this magnitude is exactly
// representable as a float64.
const maxExactFloat = 1 << 53

// toStarlark converts a JSON-like Go value to a Starlark value.
//
// Number rule: JSON decoding in Go yields float64 for every number, so a
// float64 with an integral value of magnitude <= 2^53 becomes a Starlark int
// (3.0 -> 3). That makes `range(_.n)`, indexing and `%d` work as they would in
// Julep, where the same number arrives as a Python int. The cost is that a
// genuine 3.0 prints as "3"; use float(x) where that matters.
func toStarlark(v any, depth int) (starlark.Value, error) {
	if depth > 100 {
		return nil, fmt.Errorf("value nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		return starlark.None, nil
	case starlark.Value:
		return x, nil
	case bool:
		return starlark.Bool(x), nil
	case string:
		return starlark.String(x), nil
	case int:
		return starlark.MakeInt(x), nil
	case int64:
		return starlark.MakeInt64(x), nil
	case int32:
		return starlark.MakeInt64(int64(x)), nil
	case uint64:
		return starlark.MakeUint64(x), nil
	case float32:
		return floatToStarlark(float64(x)), nil
	case float64:
		return floatToStarlark(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return starlark.MakeInt64(i), nil
		}
		if b, ok := new(big.Int).SetString(string(x), 10); ok {
			return starlark.MakeBigInt(b), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("invalid number %q", string(x))
		}
		return starlark.Float(f), nil
	case []any:
		elems := make([]starlark.Value, len(x))
		for i, e := range x {
			sv, err := toStarlark(e, depth+1)
			if err != nil {
				return nil, err
			}
			elems[i] = sv
		}
		return starlark.NewList(elems), nil
	case []string:
		elems := make([]starlark.Value, len(x))
		for i, e := range x {
			elems[i] = starlark.String(e)
		}
		return starlark.NewList(elems), nil
	case map[string]any:
		d := starlark.NewDict(len(x))
		for _, k := range sortedKeys(x) {
			sv, err := toStarlark(x[k], depth+1)
			if err != nil {
				return nil, err
			}
			_ = d.SetKey(starlark.String(k), sv)
		}
		return d, nil
	case map[string]string:
		d := starlark.NewDict(len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			_ = d.SetKey(starlark.String(k), starlark.String(x[k]))
		}
		return d, nil
	case time.Time:
		return newDatetime(x, true), nil
	case json.RawMessage:
		var decoded any
		if err := decodeJSON([]byte(x), &decoded); err != nil {
			return nil, err
		}
		return toStarlark(decoded, depth+1)
	}
	// Anything else (structs, typed slices and maps): go through JSON, which is
	// what the value would look like to a task anyway.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return starlark.MakeInt64(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return starlark.MakeUint64(rv.Uint()), nil
	case reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return nil, fmt.Errorf("cannot use a Go %T in an expression", v)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("convert %T: %w", v, err)
	}
	var decoded any
	if err := decodeJSON(raw, &decoded); err != nil {
		return nil, err
	}
	return toStarlark(decoded, depth+1)
}

func decodeJSON(raw []byte, out *any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("extra data after JSON value")
	}
	return nil
}

func floatToStarlark(f float64) starlark.Value {
	if f == math.Trunc(f) && math.Abs(f) <= maxExactFloat {
		return starlark.MakeInt64(int64(f))
	}
	return starlark.Float(f)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fromStarlark converts a Starlark result to a JSON-like Go value: nil, bool,
// int64, float64, string, []any, map[string]any. Tuples and sets become lists;
// dict keys become strings as Python's json.dumps would write them.
//
// The conversion expands shared references: [[0]*3000]*3000 holds one inner
// list in Starlark but 9 million numbers once converted. Every slot is
// reserved before it is allocated, against at most maxValueBytes and what is
// left of the evaluation's budget (b may be nil).
func fromStarlark(v starlark.Value, b *budget) (any, error) {
	limit := int64(maxValueBytes)
	if b != nil {
		limit = min(limit, b.limit-b.used)
	}
	c := &toGo{limit: limit, b: b}
	out, err := c.value(v, 0)
	if err == errResultTooLarge {
		n := max(expandedSize(v, map[any]int64{}, 0), c.used)
		if n <= maxValueBytes && b != nil {
			return nil, fmt.Errorf("expression exceeded its memory budget of %s with its %s result", humanBytes(b.limit), humanBytes(n))
		}
		return nil, tooLarge(n, "result")
	}
	if err != nil {
		return nil, err
	}
	if b != nil {
		if err := b.reserve(c.used, "result"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var errResultTooLarge = errors.New("result too large")

type toGo struct {
	used, limit int64
	steps       int
	b           *budget
}

func (c *toGo) take(n int64) error {
	c.used += n
	if c.used > c.limit {
		return errResultTooLarge
	}
	c.steps++
	if c.steps&4095 == 0 {
		return c.b.alive()
	}
	return nil
}

func (c *toGo) value(v starlark.Value, depth int) (any, error) {
	if depth > 100 {
		return nil, fmt.Errorf("result nested too deeply (or cyclic)")
	}
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		if err := c.take(8); err != nil {
			return nil, err
		}
		if i, ok := x.Int64(); ok {
			return i, nil
		}
		// Python ints are exact at any size (2 ** 64); json.Number keeps the
		// digits through JSON.
		return json.Number(x.String()), nil
	case starlark.Float:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("result contains %s, which JSON cannot represent", pyFloatRepr(f))
		}
		if err := c.take(8); err != nil {
			return nil, err
		}
		if f == math.Trunc(f) {
			// A whole float stays a float through JSON, as Julep's 2.0 does
			// (Go would write a float64 2 as "2", which reads back as an int).
			return json.Number(pyFloatRepr(f)), nil
		}
		return f, nil
	case starlark.String:
		// Not copied here, but written out in full wherever the result goes.
		if err := c.take(int64(len(x))); err != nil {
			return nil, err
		}
		return string(x), nil
	case starlark.Bytes:
		if err := c.take(int64(len(x))); err != nil {
			return nil, err
		}
		return string(x), nil
	case *starlark.List:
		return c.seq(x, x.Len(), depth)
	case starlark.Tuple:
		return c.seq(x, x.Len(), depth)
	case *starlark.Set:
		return c.seq(x, x.Len(), depth)
	case *stepList:
		return c.seq(x.list, x.list.Len(), depth)
	case *starlark.Dict:
		if err := c.take(mulSat(entryBytes, int64(x.Len()))); err != nil {
			return nil, err
		}
		out := make(map[string]any, x.Len())
		for _, item := range x.Items() {
			key, err := jsonKey(item[0])
			if err != nil {
				return nil, err
			}
			if err := c.take(int64(len(key))); err != nil {
				return nil, err
			}
			val, err := c.value(item[1], depth+1)
			if err != nil {
				return nil, err
			}
			out[key] = val
		}
		return out, nil
	case *datetimeValue:
		return x.isoformat(), nil
	case *timedeltaValue:
		return x.d.Seconds(), nil
	case *matchValue:
		return x.group0(), nil
	}
	if seq, ok := v.(starlark.Indexable); ok { // e.g. range
		if it, ok := v.(starlark.Iterable); ok {
			return c.seq(it, seq.Len(), depth)
		}
	}
	return nil, fmt.Errorf("cannot convert %s to a JSON value", v.Type())
}

func (c *toGo) seq(it starlark.Iterable, n int, depth int) (any, error) {
	if err := c.take(mulSat(slotBytes, int64(n))); err != nil {
		return nil, err
	}
	out := make([]any, 0, n)
	iter := it.Iterate()
	defer iter.Done()
	var e starlark.Value
	for iter.Next(&e) {
		g, err := c.value(e, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// expandedSize is what converting v would cost, computed once per shared
// container (memo), for the message of a refused result. It saturates.
func expandedSize(v starlark.Value, memo map[any]int64, depth int) int64 {
	if depth > 100 {
		return 0
	}
	key := shareKey(v)
	if key != nil {
		if n, ok := memo[key]; ok {
			return n
		}
		memo[key] = 0 // a cycle counts once
	}
	var n int64
	switch x := v.(type) {
	case starlark.Int, starlark.Float:
		n = 8
	case starlark.String:
		n = int64(len(x))
	case starlark.Bytes:
		n = int64(len(x))
	case *starlark.Dict:
		n = mulSat(entryBytes, int64(x.Len()))
		for _, item := range x.Items() {
			n = addSat(n, addSat(int64(len(pyStr(item[0]))), expandedSize(item[1], memo, depth+1)))
		}
	case starlark.Iterable:
		n = mulSat(slotBytes, length(v))
		it := x.Iterate()
		var e starlark.Value
		for it.Next(&e) {
			n = addSat(n, expandedSize(e, memo, depth+1))
		}
		it.Done()
	}
	if key != nil {
		memo[key] = n
	}
	return n
}

type tupleKey struct {
	first *starlark.Value
	n     int
}

func jsonKey(k starlark.Value) (string, error) {
	switch k := k.(type) {
	case starlark.String:
		return string(k), nil
	case starlark.Int, starlark.Float:
		return pyStr(k), nil
	case starlark.Bool:
		if k {
			return "true", nil
		}
		return "false", nil
	case starlark.NoneType:
		return "null", nil
	}
	return "", fmt.Errorf("dict key of type %s cannot be a JSON key", k.Type())
}

// stepList is the value of `steps`: a list that can also be indexed by a
// step's label (`steps['fetch']`), as in Julep.
type stepList struct {
	list *starlark.List
	// labels, for inputs and outputs, are the steps' labels by index (from
	// vars["steps"]): Julep keys inputs and outputs by label too.
	labels []string
	name   string
}

// stepLabels reads the labels of vars["steps"] entries by index.
func stepLabels(steps any) []string {
	list, ok := steps.([]any)
	if !ok {
		return nil
	}
	out := make([]string, len(list))
	for i, e := range list {
		if m, ok := e.(map[string]any); ok {
			out[i], _ = m["label"].(string)
		}
	}
	return out
}

var (
	_ starlark.Mapping   = (*stepList)(nil)
	_ starlark.Sequence  = (*stepList)(nil)
	_ starlark.Indexable = (*stepList)(nil)
)

func (s *stepList) String() string        { return s.list.String() }
func (s *stepList) Type() string          { return "list" }
func (s *stepList) Freeze()               { s.list.Freeze() }
func (s *stepList) Truth() starlark.Bool  { return s.list.Truth() }
func (s *stepList) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: list") }
func (s *stepList) Len() int              { return s.list.Len() }
func (s *stepList) Index(i int) starlark.Value {
	return s.list.Index(i)
}
func (s *stepList) Iterate() starlark.Iterator { return s.list.Iterate() }

func (s *stepList) Get(k starlark.Value) (starlark.Value, bool, error) {
	switch k := k.(type) {
	case starlark.Int:
		i, ok := k.Int64()
		n := int64(s.list.Len())
		if ok && i < 0 {
			i += n
		}
		if !ok || i < 0 || i >= n {
			return nil, false, fmt.Errorf("steps index %s out of range (%d steps so far)", k, n)
		}
		return s.list.Index(int(i)), true, nil
	case starlark.String:
		if s.name != "" {
			for i, l := range s.labels {
				if l == string(k) && l != "" && i < s.list.Len() {
					return s.list.Index(i), true, nil
				}
			}
			return nil, false, fmt.Errorf("%s has no step labelled %q", s.name, string(k))
		}
		for i := 0; i < s.list.Len(); i++ {
			if d, ok := s.list.Index(i).(*starlark.Dict); ok {
				if l, found, _ := d.Get(starlark.String("label")); found && l == k {
					return d, true, nil
				}
			}
		}
		return nil, false, fmt.Errorf("no step labelled %q", string(k))
	}
	return nil, false, fmt.Errorf("steps indices must be integers or labels, not %s", k.Type())
}

// shareKey identifies a value that may be shared by reference (a list,
// dict, set or non-empty tuple), so its size is counted once; nil for
// values that are not.
func shareKey(v starlark.Value) any {
	switch x := v.(type) {
	case *starlark.List, *starlark.Dict, *starlark.Set:
		return x
	case *stepList:
		return x.list
	case starlark.Tuple:
		if len(x) > 0 {
			return tupleKey{&x[0], len(x)}
		}
	}
	return nil
}
