package engine_test

import (
	"testing"
)

// Expressions see earlier steps' values as shared frozen values; one that
// changes a value in place must still work (on its own copy, as in Julep)
// and must not change what later steps see.
func TestExpressionsMayChangeTheirOwnCopies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(e.agent(nil), map[string]any{"name": "copies", "main": []any{
		map[string]any{"label": "items", "evaluate": map[string]any{"xs": "$ [3, 1, 2]", "d": "$ {'k': 1}"}},
		map[string]any{"evaluate": map[string]any{
			"sorted":  "$ [x for x in [_.xs] if x.sort() == None][0]",
			"updated": "$ [d for d in [steps[0].output.d] if d.update({'k': 2}) == None][0]",
			"input":   "$ [i for i in [steps[1].input['xs']] if i.append(4) == None][0]",
		}},
		map[string]any{"return": map[string]any{
			"sorted": "$ _.sorted", "updated": "$ _.updated", "input": "$ _.input",
			"original": "$ steps['items'].output", "inputs": "$ inputs[1]['xs']",
		}},
	}})
	out := succeeded(t, e.run(task, map[string]any{}))
	want := `{"input":[3,1,2,4],"inputs":[3,1,2],"original":{"d":{"k":1},"xs":[3,1,2]},"sorted":[1,2,3],"updated":{"k":2}}`
	if got := jsonString(out); got != want {
		t.Fatalf("output\n got %s\nwant %s", got, want)
	}
}
