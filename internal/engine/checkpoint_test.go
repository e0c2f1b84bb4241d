package engine

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The compact checkpoint decodes to the same checkpoint as the plain
// encoding, and both forms are read.
func TestCheckpointRoundTrip(t *testing.T) {
	t.Parallel()
	in := map[string]any{"who": "ada", "n": 2.0}
	out0 := map[string]any{"docs": []any{map[string]any{"title": "a"}, "b"}}
	out1 := "hello"
	x := &executor{ck: checkpoint{
		Step:  3,
		Steps: []stepRecord{{Input: in, Output: out0, Label: "docs"}, {Input: out0, Output: out1}, {Input: out1, Output: []any{1.0, true, nil}, Label: "l\"x"}},
		State: map[string]any{"k": "v"}, Waiting: "main.3", Resumes: map[string]any{"main.3": map[string]any{"a": 1.0}},
	}}
	x.ck.Last = x.ck.Steps[2].Output
	compact, err := x.encodeCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	plain, err := json.Marshal(x.ck)
	if err != nil {
		t.Fatal(err)
	}
	if len(compact) >= len(plain) {
		t.Errorf("compact form (%d bytes) is not smaller than plain (%d): %s", len(compact), len(plain), compact)
	}
	var want checkpoint
	if err := json.Unmarshal(plain, &want); err != nil {
		t.Fatal(err)
	}
	var got checkpoint
	if err := json.Unmarshal(compact, &got); err != nil {
		t.Fatalf("decode %s: %v", compact, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("compact decodes to\n%#v\nplain to\n%#v", got, want)
	}
	if got.Steps[1].Input.(map[string]any)["docs"] == nil || got.Last.([]any)[1] != true {
		t.Fatalf("chained values not restored: %#v", got)
	}
	// Encoding again (from the memo) gives the same bytes.
	again, err := x.encodeCheckpoint()
	if err != nil || string(again) != string(compact) {
		t.Fatalf("second encoding differs: %s vs %s (%v)", again, compact, err)
	}
	var bad checkpoint
	if err := json.Unmarshal([]byte(`{"step":1,"steps":[{"chained":true,"output":1}]}`), &bad); err == nil {
		t.Fatal("a chained first step was accepted")
	}
}
