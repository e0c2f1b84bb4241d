package mongostate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/mongostate"
	"github.com/astra-app/astra/internal/store/ferrettest"
)

// Each claim that takes over a lapsed lease of a running execution counts
// a crash, and the claimant can then fail the execution under its lease.
func TestCrashCountThenFail(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	client := connect(t, ferrettest.Start(t))
	st, err := mongostate.New(ctx, client.Database("poison"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	x := engine.Execution{ID: "x1", TaskID: "t", TaskVersion: 1, Status: engine.StatusStarting, Input: map[string]any{},
		CreatedAt: now, UpdatedAt: now, LeaseOwner: "dead", LeaseToken: "tok0", LeaseUntil: now.Add(-time.Second)}
	if err := st.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		got, err := st.ClaimExecution(ctx, "x1", "o", fmt.Sprint("tok", i), time.Now().Add(-time.Millisecond), time.Now())
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		if got.Crashes != i {
			t.Fatalf("claim %d: crashes %d", i, got.Crashes)
		}
		x = got
	}
	next := x
	next.Status, next.Error = engine.StatusFailed, "poison"
	next.TransitionCount++
	tr := engine.Transition{ID: "tr1", ExecutionID: "x1", Seq: next.TransitionCount, Type: "error", CreatedAt: time.Now()}
	if err := st.Advance(context.WithoutCancel(ctx), next, []string{engine.StatusQueued, engine.StatusStarting, engine.StatusRunning}, []engine.Transition{tr}); err != nil {
		t.Fatalf("fail the execution: %v", err)
	}
	if got, _ := st.GetExecution(ctx, "x1"); got.Status != engine.StatusFailed {
		t.Fatalf("status %s", got.Status)
	}
}
