package engine_test

import (
	"strings"
	"sync"
	"testing"
)

// Creates with one Idempotency-Key make one execution, also when they race
// (a dispatcher whose lease lapsed mid-create and the one that took its row
// over); another key, or none, makes another.
func TestCreateWithIdempotencyKeyRunsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(e.agent(nil), map[string]any{"name": "once", "main": []any{map[string]any{"evaluate": map[string]any{"x": "$ 1"}}}})
	const racers = 8
	ids := make([]string, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			x, err := e.client.CreateExecutionOnce(t.Context(), task, "outbox:row-1", map[string]any{}, map[string]any{"n": i})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = string(x.Id)
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("one key made executions %v", ids)
		}
	}
	other, err := e.client.CreateExecutionOnce(t.Context(), task, "outbox:row-2", map[string]any{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain := e.start(task, map[string]any{})
	if string(other.Id) == ids[0] || plain == ids[0] || plain == string(other.Id) {
		t.Fatalf("distinct creates share an id: %s %s %s", ids[0], other.Id, plain)
	}
	xs, err := e.client.ListExecutions(t.Context(), task, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) != 3 {
		t.Fatalf("%d executions stored, want 3", len(xs))
	}
	e.wait(ids[0])
	if s, v := e.do("POST", "/tasks/"+task+"/executions", map[string]any{"input": map[string]any{}}, "Idempotency-Key", strings.Repeat("k", 256)); s != 400 {
		t.Fatalf("a 256-byte key: %d %v", s, v)
	}
}
