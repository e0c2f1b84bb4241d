package engine_test

import (
	"strings"
	"testing"
)

// A panic in a step fails its execution with the panic's message; the
// process and its other executions carry on.
func TestPanicInAStepFailsOnlyItsExecution(t *testing.T) {
	e := newEnv(t)
	e.eng.SetStepHook(func(step map[string]any) {
		if step["label"] == "boom" {
			panic("kaboom")
		}
	})
	a := e.agent(nil)
	boom := map[string]any{"label": "boom", "evaluate": map[string]any{"x": "1"}}
	for name, main := range map[string][]any{
		"top":      {boom},
		"parallel": {map[string]any{"parallel": []any{map[string]any{"evaluate": map[string]any{"x": "1"}}, boom}}},
		"map":      {map[string]any{"over": "$ [1, 2, 3]", "map": boom, "parallelism": 3}},
		"workflow": {map[string]any{"workflow": "w"}, map[string]any{"evaluate": map[string]any{"x": "2"}}},
	} {
		def := map[string]any{"name": name, "main": main}
		if name == "workflow" {
			def["w"] = []any{boom}
		}
		x := e.run(e.task(a, def), map[string]any{})
		if x["status"] != "failed" || !strings.Contains(x["error"].(string), "panic: kaboom") {
			t.Errorf("%s: %v: %v", name, x["status"], x["error"])
		}
	}
	ok := e.task(a, map[string]any{"name": "ok", "main": []any{map[string]any{"evaluate": map[string]any{"x": "1"}}}})
	succeeded(t, e.run(ok, map[string]any{}))
}
