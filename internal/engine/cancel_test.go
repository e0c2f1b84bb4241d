package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/llm"
)

// stuckModel holds every call until its context ends, and reports both.
type stuckModel struct {
	started chan struct{}
	ended   chan struct{}
	once    sync.Once
}

func newStuckModel() *stuckModel {
	return &stuckModel{started: make(chan struct{}), ended: make(chan struct{})}
}

func (m *stuckModel) Chat(ctx context.Context, _ llm.Request, _ func(string)) (*llm.Response, error) {
	m.once.Do(func() { close(m.started) })
	<-ctx.Done()
	close(m.ended)
	return nil, ctx.Err()
}

// A cancel ends the run's work (its model call's context), whichever
// engine it goes through. The lease is long, so its heartbeat cannot be
// what notices the cancel.
func TestCancelStopsTheRun(t *testing.T) {
	t.Parallel()
	for _, across := range []bool{false, true} {
		name := map[bool]string{false: "same engine", true: "another engine"}[across]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newStuckModel()
			stores := sharedFile(t, 2)
			opts := []envOption{withModel(m), withLease(10 * time.Minute), withSweep(100 * time.Millisecond)}
			a := startEnv(t, stores[0], opts...)
			via := a
			if across {
				via = startEnv(t, stores[1], opts...)
			}
			taskID := a.task(a.agent(nil), map[string]any{"name": "ask", "main": []any{
				map[string]any{"prompt": "$ 'hello'", "unwrap": true}}})
			id := a.start(taskID, map[string]any{})
			select {
			case <-m.started:
			case <-time.After(30 * time.Second):
				t.Fatal("the model was never called")
			}
			if x, _ := a.state.GetExecution(t.Context(), id); x.LeaseOwner == "" {
				t.Fatal("the execution is not held by engine a")
			}
			if err := via.client.CancelExecution(t.Context(), id, "stop"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-m.ended:
			case <-time.After(30 * time.Second):
				t.Fatal("the run went on after the cancel")
			}
			time.Sleep(200 * time.Millisecond) // room for a stray write
			x := waitState(t, a.state, id)
			if x.Status != engine.StatusCancelled {
				t.Fatalf("status %s", x.Status)
			}
			if got := types(a.transitions(id)); got != "init,cancelled" {
				t.Fatalf("transitions %s, want init,cancelled", got)
			}
		})
	}
}
