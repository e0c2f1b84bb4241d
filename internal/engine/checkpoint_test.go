package engine

import (
	"encoding/json"
	"reflect"
	"strings"
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

// References to the execution's input and to transitions are written
// instead of the values, and resolve restores them.
func TestCheckpointReferences(t *testing.T) {
	t.Parallel()
	in := map[string]any{"who": "ada"}
	docs := []any{map[string]any{"title": "a", "content": "long text"}}
	x := &executor{ex: &Execution{Input: in}, ck: checkpoint{Last: in}}
	empty, err := x.encodeCheckpoint()
	if err != nil || !strings.Contains(string(empty), `"last_input":true`) || strings.Contains(string(empty), "ada") {
		t.Fatalf("before any step: %s (%v)", empty, err)
	}
	x.ck = checkpoint{Step: 2, Steps: []stepRecord{{Input: in, Output: docs, Ref: 3}, {Input: docs, Output: "hi"}}, Last: "hi"}
	compact, err := x.encodeCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"from_input":true`, `"output_ref":3`, `"chained":true`, `"last_chained":true`} {
		if !strings.Contains(string(compact), want) {
			t.Errorf("%s missing from %s", want, compact)
		}
	}
	if strings.Contains(string(compact), "long text") || strings.Contains(string(compact), "ada") {
		t.Errorf("a referenced value was written again: %s", compact)
	}
	var got checkpoint
	if err := json.Unmarshal(compact, &got); err != nil {
		t.Fatal(err)
	}
	if err := got.resolveWith(in, map[int]any{3: docs}); err != nil {
		t.Fatal(err)
	}
	got.Steps[0].Ref = 0 // the only field that is not a value
	want := checkpoint{Step: 2, Steps: []stepRecord{{Input: in, Output: docs}, {Input: docs, Output: "hi"}}, Last: "hi"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resolved to\n%#v\nwant\n%#v", got, want)
	}

	var missing checkpoint
	if err := json.Unmarshal(compact, &missing); err != nil {
		t.Fatal(err)
	}
	if err := missing.resolveWith(in, map[int]any{}); err == nil || !strings.Contains(err.Error(), "transition 3") {
		t.Fatalf("a missing transition: %v", err)
	}
	for _, bad := range []string{
		`{"step":1,"steps":[{"input":1,"output":1},{"from_input":true,"output":2}]}`,
		`{"step":1,"steps":[{"input":1,"output_ref":-1}]}`,
		`{"step":1,"steps":[{"input":1,"output":1}],"last_input":true}`,
	} {
		var ck checkpoint
		if err := json.Unmarshal([]byte(bad), &ck); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// Resuming a paused execution changes only the pause fields and keeps the
// rest of the checkpoint, references included, as written.
func TestResumeCheckpointKeepsTheRest(t *testing.T) {
	t.Parallel()
	ck := `{"step":1,"steps":[{"from_input":true,"output_ref":2}],"last_chained":true,"state":{},"waiting":"main.1","resumes":null}`
	raw, err := resumeCheckpoint(json.RawMessage(ck), map[string]any{"name": "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	_ = json.Unmarshal(raw, &got)
	_ = json.Unmarshal([]byte(`{"step":1,"steps":[{"from_input":true,"output_ref":2}],"last_chained":true,"state":{},"waiting":"","resumes":{"main.1":{"name":"Ada"}}}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %s", raw)
	}
	if _, err := resumeCheckpoint(json.RawMessage(`[1]`), nil); err == nil {
		t.Fatal("a checkpoint that is not an object was accepted")
	}
}
