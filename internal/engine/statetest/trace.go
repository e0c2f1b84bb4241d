package statetest

import (
	"testing"

	"github.com/astra-app/astra/internal/engine"
)

// testExecutionTraceParent: the trace context an execution is created with
// comes back from every read, a claim by another engine above all (it
// continues the trace), and survives advances; one created without it
// reads as "".
func testExecutionTraceParent(t *testing.T, s engine.State) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	e := newExecution("traced", "t1", 1, "queued")
	e.TraceParent = tp
	createExecution(t, s, e)
	createExecution(t, s, newExecution("plain", "t1", 1, "queued"))
	if got := getExecution(t, s, "traced").TraceParent; got != tp {
		t.Errorf("GetExecution: TraceParent %q, want %q", got, tp)
	}
	if got := getExecution(t, s, "plain").TraceParent; got != "" {
		t.Errorf("an execution created without a trace reads TraceParent %q", got)
	}
	xs, err := s.ClaimExecutions(t.Context(), "engine-b", at(10), at(20), 10)
	if err != nil {
		t.Fatal(err)
	}
	var claimed engine.Execution
	for _, x := range xs {
		if x.ID == "traced" {
			claimed = x
		}
	}
	if claimed.TraceParent != tp {
		t.Fatalf("ClaimExecutions returned %+v, want traced with TraceParent %q", xs, tp)
	}
	next := claimed
	next.Status, next.UpdatedAt = "running", at(11)
	if err := s.Advance(t.Context(), next, []string{"queued"}, nil); err != nil {
		t.Fatalf("Advance: %v", err)
	}
	if got := getExecution(t, s, "traced").TraceParent; got != tp {
		t.Errorf("after Advance: TraceParent %q, want %q", got, tp)
	}
}
