package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
)

func withLimits(f func(*engine.Options)) envOption { return f }

func TestRecursiveWorkflowsRefusedAtCreate(t *testing.T) {
	e := newEnv(t)
	a := e.agent(nil)
	for _, c := range []struct {
		def  map[string]any
		want string
	}{
		{map[string]any{"name": "t", "main": []any{map[string]any{"workflow": "loop"}},
			"loop": []any{map[string]any{"workflow": "loop"}}}, "workflow recursion: loop -> loop"},
		{map[string]any{"name": "t", "main": []any{map[string]any{"workflow": "a"}},
			"a": []any{map[string]any{"if": "True", "then": map[string]any{"workflow": "b"}}},
			"b": []any{map[string]any{"foreach": map[string]any{"in": "[1]", "do": map[string]any{"workflow": "a"}}}}},
			"workflow recursion: a -> b -> a"},
		{map[string]any{"name": "t", "main": []any{map[string]any{"workflow": "main"}}}, "workflow recursion: main -> main"},
	} {
		status, body := e.do("POST", "/agents/"+a+"/tasks", c.def)
		if status != 400 || !strings.Contains(fmt.Sprint(body), c.want) {
			t.Errorf("create: %d %v, want 400 naming %q", status, body, c.want)
		}
	}
	// A workflow called twice without a cycle is fine.
	e.task(a, map[string]any{"name": "t", "main": []any{map[string]any{"workflow": "w"}, map[string]any{"workflow": "w"}},
		"w": []any{map[string]any{"evaluate": map[string]any{"x": "1"}}}})
}

func TestWorkflowDepthLimit(t *testing.T) {
	e := newEnv(t, withLimits(func(o *engine.Options) { o.MaxWorkflowDepth = 3 }))
	def := map[string]any{"name": "deep", "main": []any{map[string]any{"workflow": "w1"}}}
	for i := 1; i <= 5; i++ {
		def["w"+string(rune('0'+i))] = []any{map[string]any{"workflow": "w" + string(rune('1'+i))}}
	}
	def["w6"] = []any{map[string]any{"evaluate": map[string]any{"x": "1"}}}
	x := e.run(e.task(e.agent(nil), def), map[string]any{})
	if x["status"] != "failed" || !strings.Contains(x["error"].(string), "nest deeper than the limit of 3: main -> w1 -> w2 -> w3 -> w4") {
		t.Fatalf("got %v: %v", x["status"], x["error"])
	}
}

func TestStepBudget(t *testing.T) {
	e := newEnv(t, withLimits(func(o *engine.Options) { o.MaxSteps = 20 }))
	a := e.agent(nil)
	// A foreach too big for the budget is refused before its first item.
	big := e.task(a, map[string]any{"name": "big", "main": []any{
		map[string]any{"foreach": map[string]any{"in": "$ list(range(50000))", "do": map[string]any{"log": "_"}}}}})
	x := e.run(big, map[string]any{})
	if x["status"] != "failed" || !strings.Contains(x["error"].(string), "foreach over 50000 items would pass the limit of 20 steps") {
		t.Fatalf("foreach: %v: %v", x["status"], x["error"])
	}
	bigMap := e.task(a, map[string]any{"name": "bigmap", "main": []any{
		map[string]any{"over": "$ list(range(30))", "map": map[string]any{"evaluate": map[string]any{"x": "_"}}, "parallelism": 4}}})
	if x := e.run(bigMap, map[string]any{}); x["status"] != "failed" || !strings.Contains(x["error"].(string), "map over 30 items") {
		t.Fatalf("map: %v: %v", x["status"], x["error"])
	}
	// Nested steps count: 3 main steps of 8 iterations each fit one by one,
	// not all together.
	var main []any
	for range 3 {
		main = append(main, map[string]any{"foreach": map[string]any{"in": "$ list(range(8))", "do": map[string]any{"evaluate": map[string]any{"x": "_"}}}})
	}
	x = e.run(e.task(a, map[string]any{"name": "nested", "main": main}), map[string]any{})
	if x["status"] != "failed" || !strings.Contains(x["error"].(string), "step 2") || !strings.Contains(x["error"].(string), "limit of 20 steps") {
		t.Fatalf("nested: %v: %v", x["status"], x["error"])
	}
	small := e.task(a, map[string]any{"name": "small", "main": main[:2]})
	succeeded(t, e.run(small, map[string]any{}))
}

func TestStepOutputLimit(t *testing.T) {
	e := newEnv(t)
	a := e.agent(nil)
	tk := e.task(a, map[string]any{"name": "huge", "main": []any{
		map[string]any{"evaluate": map[string]any{"x": "$ 'x' * (3 * 1024 * 1024 + 110000)"}}}})
	x := e.run(tk, map[string]any{})
	if x["status"] != "failed" || !strings.Contains(x["error"].(string), "step output is 3.1 MB; the limit is 2 MB") {
		t.Fatalf("got %v: %v", x["status"], x["error"])
	}
	if got := types(e.transitions(x["id"].(string))); got != "init,error" {
		t.Fatalf("transitions %s: the output must not be committed", got)
	}
}

func TestDurationLimit(t *testing.T) {
	e := newEnv(t, withLimits(func(o *engine.Options) { o.MaxDuration = 300 * time.Millisecond }))
	tk := e.task(e.agent(nil), map[string]any{"name": "slow", "main": []any{
		map[string]any{"evaluate": map[string]any{"x": "1"}}, map[string]any{"sleep": map[string]any{"seconds": 60}}}})
	x := e.run(tk, map[string]any{})
	if x["status"] != "failed" || !strings.Contains(x["error"].(string), "ran longer than its limit of 300ms") {
		t.Fatalf("got %v: %v", x["status"], x["error"])
	}
}
