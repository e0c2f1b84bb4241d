package engine

import (
	"encoding/json"
	"strings"
	"testing"
)

// redactValue hides secrets in values and keys at any depth, leaves its
// input untouched, and returns a value that holds no secret as the very same
// value (which is how the executor knows a transition's copy is complete).
func TestRedactValue(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{"K": "sk-123"}
	clean := map[string]any{"a": []any{"x", map[string]any{"b": 1.0}}, "c": "y"}
	if got := redactValue(clean, secrets); !sameValue(got, clean) {
		t.Fatalf("a value without secrets was copied")
	}

	// 200 levels deep, the secret at the bottom and in a key on the way:
	// each level is visited once (a rescan per level would never finish).
	var deep any = "token sk-123 here"
	for i := range 200 {
		if i == 100 {
			deep = map[string]any{"key-sk-123": deep, "other": "ok"}
			continue
		}
		deep = map[string]any{"v": []any{deep, "plain"}}
	}
	before, _ := json.Marshal(deep)
	got, _ := json.Marshal(redactValue(deep, secrets))
	if strings.Contains(string(got), "sk-123") || strings.Count(string(got), "[redacted]") != 2 {
		t.Fatalf("redacted: %.200s", got)
	}
	if after, _ := json.Marshal(deep); string(after) != string(before) {
		t.Fatal("the input was changed")
	}
	if len(got) == 0 || !strings.Contains(string(got), `"other":"ok"`) || !strings.Contains(string(got), `"plain"`) {
		t.Fatalf("unredacted parts lost: %.200s", got)
	}
}
