package mongostate_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/enginetest"
	"github.com/astra-app/astra/internal/engine/mongostate"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
)

// An execution paused on MongoDB state resumes in another engine process:
// its checkpoint refers to step 0's output by transition, which the new
// engine reads back from the state.
func TestPausedExecutionResumesInAnotherEngine(t *testing.T) {
	t.Parallel()
	client := connect(t, ferrettest.Start(t))
	ts := newStateOn(t, client, "t"+responder.NewID())
	ctx := t.Context()

	e1 := enginetest.Start(t, engine.Options{State: ts.state})
	c1 := newJulep(t, e1)
	agent, err := c1.CreateAgent(ctx, julep.AgentInput{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := c1.CreateTask(ctx, agent.Id, map[string]any{"name": "ask", "main": []any{
		map[string]any{"evaluate": map[string]any{"docs": "$ [{'title': t} for t in _.titles]"}},
		map[string]any{"wait_for_input": map[string]any{"info": map[string]any{"q": "$ 'name?'"}}},
		map[string]any{"return": map[string]any{"name": "$ _.name", "first": "$ steps[0].output.docs[0].title",
			"input": "$ steps[0].input.titles[1]"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	x, err := c1.CreateExecution(ctx, task.Id, map[string]any{"titles": []any{"a", "b"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c1, x.Id, julep.StatusAwaitingInput)
	e1.Close()
	e1.Engine.Close()

	// A second process: its own state value on the same database.
	st2, err := mongostate.New(ctx, ts.db)
	if err != nil {
		t.Fatal(err)
	}
	if paused, err := st2.GetExecution(ctx, x.Id); err != nil || !strings.Contains(string(paused.Checkpoint), `"output_ref"`) {
		t.Fatalf("the paused checkpoint does not refer to a transition: %s (%v)", paused.Checkpoint, err)
	}
	c2 := newJulep(t, enginetest.Start(t, engine.Options{State: st2}))
	if err := c2.ResumeExecution(ctx, x.Id, map[string]any{"name": "Ada"}); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, c2, x.Id, julep.StatusSucceeded)
	out, _ := done.Output.(map[string]any)
	if out["name"] != "Ada" || out["first"] != "a" || out["input"] != "b" {
		t.Fatalf("output %v (error %v)", done.Output, done.Error)
	}
}

func newJulep(t *testing.T, s *enginetest.Server) *julep.Client {
	t.Helper()
	c, err := julep.New(s.URL, s.Key, julep.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitStatus polls until the execution has status want (or fails the test
// after 30 s, or when it ends otherwise).
func waitStatus(t *testing.T, c *julep.Client, id string, want julep.ExecutionStatus) *julep.Execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		x, err := c.GetExecution(ctx, id)
		if err != nil {
			t.Fatalf("execution %s: %v", id, err)
		}
		switch {
		case x.Status == want:
			return x
		case julep.IsTerminal(x.Status):
			t.Fatalf("execution %s ended %s (%v), want %s", id, x.Status, x.Error, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
