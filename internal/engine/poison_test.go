package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
)

// waitFor polls the state until cond holds for the execution.
func waitFor(t *testing.T, s engine.State, id, what string, cond func(engine.Execution) bool) engine.Execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for {
		x, err := s.GetExecution(ctx, id)
		if err != nil {
			t.Fatalf("waiting until %s: %v", what, err)
		}
		if cond(x) {
			return x
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An execution whose owner stops while running it three times in a row (as
// an out-of-memory kill would, every time) is failed, not resumed again.
func TestPoisonPillFailedAfterThreeCrashes(t *testing.T) {
	t.Parallel()
	stores := sharedFile(t, 4)
	lease := withLease(300 * time.Millisecond)
	a := startEnv(t, stores[0], lease)
	taskID := a.task(a.agent(nil), map[string]any{"name": "kills its owner", "main": []any{
		map[string]any{"sleep": map[string]any{"seconds": 60}}}})
	id := a.start(taskID, map[string]any{})
	cur := a
	for i := 1; i <= 3; i++ {
		waitFor(t, cur.state, id, "running under this engine", func(x engine.Execution) bool {
			return x.Status == engine.StatusStarting && x.LeaseOwner != "" && x.Crashes == i-1
		})
		cur.eng.Crash()
		cur = startEnv(t, stores[i], lease)
	}
	x := waitState(t, cur.state, id)
	want := "execution failed: it was running when its owner stopped 3 times in a row"
	if x.Status != engine.StatusFailed || x.Error != want {
		t.Fatalf("%s (%s), want failed: %s", x.Status, x.Error, want)
	}
}
