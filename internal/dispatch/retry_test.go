package dispatch_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/responder"
)

// The model answering 500 once costs the person nothing: the engine retries
// the step and the reply is delivered from the one execution.
func TestModel500OnceStillDelivers(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	var replies atomic.Int32
	ms := newModelServer(t, func(string) string {
		if replies.Add(1) == 1 {
			return "!status 500 upstream hiccup"
		}
		return "Here for you."
	}, summarise)
	je := startEngine(t, ms.Model())
	u := newUser(t, st, "Ravi")
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID}))
	m := enqueue(t, st, u, "hello", nil)
	r.d.Wake()
	got := terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusDelivered || got.Attempts != 1 {
		t.Fatalf("status %s attempts %d (%s), want delivered after 1", got.Status, got.Attempts, got.LastError)
	}
	if e := onlyEvent(t, st, got, responder.RoleAssistant); e.Content != "Here for you." {
		t.Fatalf("reply %q", e.Content)
	}
	if n := replies.Load(); n != 2 {
		t.Fatalf("the reply was asked %d times, want 2", n)
	}
	if n := len(executionsOf(t, je.Client, je.TaskID)[m.ID]); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
}
