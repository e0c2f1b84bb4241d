package expr

import (
	"bytes"
	"encoding/json"
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
func fromStarlark(v starlark.Value, depth int) (any, error) {
	if depth > 100 {
		return nil, fmt.Errorf("result nested too deeply (or cyclic)")
	}
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		if i, ok := x.Int64(); ok {
			return i, nil
		}
		f, _ := new(big.Float).SetInt(x.BigInt()).Float64()
		return f, nil
	case starlark.Float:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("result contains %s, which JSON cannot represent", pyFloatRepr(f))
		}
		return f, nil
	case starlark.String:
		return string(x), nil
	case starlark.Bytes:
		return string(x), nil
	case *starlark.List:
		return seqToGo(x, x.Len(), depth)
	case starlark.Tuple:
		return seqToGo(x, x.Len(), depth)
	case *starlark.Set:
		return seqToGo(x, x.Len(), depth)
	case *stepList:
		return seqToGo(x.list, x.list.Len(), depth)
	case *starlark.Dict:
		out := make(map[string]any, x.Len())
		for _, item := range x.Items() {
			key, err := jsonKey(item[0])
			if err != nil {
				return nil, err
			}
			val, err := fromStarlark(item[1], depth+1)
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
			return seqToGo(it, seq.Len(), depth)
		}
	}
	return nil, fmt.Errorf("cannot convert %s to a JSON value", v.Type())
}

func seqToGo(it starlark.Iterable, n int, depth int) (any, error) {
	out := make([]any, 0, n)
	iter := it.Iterate()
	defer iter.Done()
	var e starlark.Value
	for iter.Next(&e) {
		g, err := fromStarlark(e, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
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
