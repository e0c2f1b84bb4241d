package engine

import (
	"fmt"
	"testing"
)

// A finished execution stays readable from memory after its run untracks
// it (followers woken by the terminal status race the untrack), but only
// the last keepEnded of them, and only terminal ones.
func TestHubKeepsRecentlyEndedExecutions(t *testing.T) {
	t.Parallel()
	h := newHub()
	h.track(Execution{ID: "paused", Status: StatusRunning})
	h.publish(Execution{ID: "paused", Status: StatusAwaitingInput})
	h.untrack("paused")
	if _, ok := h.snapshot("paused"); ok {
		t.Fatal("an execution that can still change is kept after untrack")
	}
	for i := range keepEnded + 1 {
		id := fmt.Sprint("x", i)
		h.track(Execution{ID: id, Status: StatusRunning})
		h.publish(Execution{ID: id, Status: StatusSucceeded, Output: i})
		h.untrack(id)
	}
	if _, ok := h.snapshot("x0"); ok {
		t.Fatalf("more than %d ended executions kept", keepEnded)
	}
	x, ok := h.snapshot(fmt.Sprint("x", keepEnded))
	if !ok || x.Status != StatusSucceeded || x.Output != keepEnded {
		t.Fatalf("latest ended execution: %+v, %v", x, ok)
	}
	if len(h.ended) != keepEnded || len(h.endedFIFO) != keepEnded {
		t.Fatalf("%d ended, %d in order", len(h.ended), len(h.endedFIFO))
	}
}
