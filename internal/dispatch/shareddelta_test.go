package dispatch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/responder"
)

// TestDispatchOnlySharesDeltas: a dispatcher with no hub (a dispatch-only
// instance) shares each reply's deltas through the store, for the API
// instances' feeds: they add up to the answer, and every one of them is
// committed before the answer event (what lets a feed send them first).
func TestDispatchOnlySharesDeltas(t *testing.T) {
	t.Parallel()
	model := newModelServer(t,
		func(user string) string { return "A streamed answer for " + user + ", word by word." },
		func(string) string { return "Streamed." })
	je := startEngine(t, model.Model())
	st := openStore(t)
	runDispatcher(t, dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID, ShareDeltas: true})

	u := newUser(t, st, "Delta Reader")
	var ms []*responder.Message
	for i := range 3 {
		ms = append(ms, enqueue(t, st, u, fmt.Sprintf("question %d", i), nil))
	}
	ctx := context.Background()
	for _, m := range ms {
		if got := terminal(t, st, m.ID, time.Minute); got.Status != responder.StatusDelivered {
			t.Fatalf("row %s: %s (%s)", m.ID, got.Status, got.LastError)
		}
	}
	all, err := st.DeltasAfter(ctx, time.Time{}, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		var answer *responder.Event
		for _, e := range eventsOf(t, st, u.ID, m.ID) {
			if e.Role == responder.RoleAssistant {
				answer = &e
			}
		}
		if answer == nil {
			t.Fatalf("row %s: no answer event", m.ID)
		}
		var b strings.Builder
		next := 0
		for _, d := range all {
			if d.OutboxID != m.ID {
				continue
			}
			if d.Index != next || d.UserID != u.ID || d.ExecutionID != answer.ExecutionID {
				t.Errorf("row %s: delta %+v, want index %d of execution %s", m.ID, d, next, answer.ExecutionID)
			}
			if d.CreatedAt.After(answer.CreatedAt) {
				t.Errorf("row %s: delta %d stored at %v, after the answer (%v)", m.ID, d.Index, d.CreatedAt, answer.CreatedAt)
			}
			next++
			b.WriteString(d.Text)
		}
		if next == 0 || strings.TrimSpace(b.String()) != answer.Content {
			t.Errorf("row %s: %d shared deltas say %q, the answer %q", m.ID, next, b.String(), answer.Content)
		}
	}
}
