package engine

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"go.starlark.net/starlark"
)

// memo keeps, for one execution run, the work done on values that never
// change once made: step inputs and outputs, the execution input, the agent
// and the task. Each is converted to Starlark once (frozen, so expressions
// can share it) and encoded to JSON once, instead of once per expression and
// once per checkpoint. Without it every expression that names `steps` would
// convert every earlier step's output again (a list of 100 memory docs, a
// dozen times per execution), and every checkpoint would re-encode them.
//
// Values are found by identity (the map's or slice's address), and the memo
// holds each value it has seen, so an address cannot be reused for another
// value while the entry lives. Only maps and slices are kept: scalars are
// cheap to convert, and empty ones may share an address.
type memo struct {
	mu sync.Mutex
	m  map[identity]*memoEntry
}

type identity struct {
	p unsafe.Pointer
	n int // a slice's length; -1 for a map
}

type memoEntry struct {
	v      any // keeps the value alive (and so its address unique)
	sv     starlark.Value
	svDone bool
	raw    json.RawMessage
}

// maxMemo bounds the entries of one run (a long foreach could otherwise
// pin every item); past it, values are converted as before.
const maxMemo = 4096

func identityOf(v any) (identity, bool) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return identity{}, false
		}
		return identity{reflect.ValueOf(x).UnsafePointer(), -1}, true
	case []any:
		if len(x) == 0 {
			return identity{}, false
		}
		return identity{unsafe.Pointer(unsafe.SliceData(x)), len(x)}, true
	}
	return identity{}, false
}

func (m *memo) entry(v any) *memoEntry {
	id, ok := identityOf(v)
	if !ok {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[id]; ok {
		return e
	}
	if m.m == nil {
		m.m = map[identity]*memoEntry{}
	}
	if len(m.m) >= maxMemo {
		return nil
	}
	e := &memoEntry{v: v}
	m.m[id] = e
	return e
}

// starlark returns v as a frozen Starlark value when v is a map or slice of
// plain JSON values, else v itself (internal/expr converts it per use).
// Conversion follows internal/expr's rules exactly.
func (m *memo) starlark(v any) any {
	e := m.entry(v)
	if e == nil {
		return v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !e.svDone {
		e.svDone = true
		if sv, ok := freeze(v, 0); ok {
			sv.Freeze()
			e.sv = sv
		}
	}
	if e.sv == nil {
		return v
	}
	return e.sv
}

// json returns v encoded as encoding/json would, once per value.
func (m *memo) json(v any) (json.RawMessage, error) {
	e := m.entry(v)
	if e == nil {
		return json.Marshal(v)
	}
	m.mu.Lock()
	raw := e.raw
	m.mu.Unlock()
	if raw != nil {
		return raw, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	e.raw = raw
	m.mu.Unlock()
	return raw, nil
}

// freeze converts the JSON-like values the engine makes (decoded JSON and
// expression results) the way internal/expr's toStarlark does: an integral
// float of magnitude <= 2^53 is an int, dict keys are inserted sorted. Any
// other Go type reports false, and the value is left to internal/expr.
func freeze(v any, depth int) (starlark.Value, bool) {
	if depth > 100 {
		return nil, false
	}
	switch x := v.(type) {
	case nil:
		return starlark.None, true
	case bool:
		return starlark.Bool(x), true
	case string:
		return starlark.String(x), true
	case int:
		return starlark.MakeInt(x), true
	case int64:
		return starlark.MakeInt64(x), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) <= 1<<53 {
			return starlark.MakeInt64(int64(x)), true
		}
		return starlark.Float(x), true
	case []any:
		elems := make([]starlark.Value, len(x))
		for i, e := range x {
			sv, ok := freeze(e, depth+1)
			if !ok {
				return nil, false
			}
			elems[i] = sv
		}
		return starlark.NewList(elems), true
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		d := starlark.NewDict(len(x))
		for _, k := range keys {
			sv, ok := freeze(x[k], depth+1)
			if !ok {
				return nil, false
			}
			_ = d.SetKey(starlark.String(k), sv)
		}
		return d, true
	}
	return nil, false
}

// frozenError reports whether an evaluation failed because it tried to
// change a shared (frozen) value, e.g. `_.items.sort()`. Such an expression
// is evaluated again on fresh copies, so tasks see Julep's semantics.
func frozenError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "frozen")
}
