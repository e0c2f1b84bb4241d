package dispatch_test

import (
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/responder"
)

// Once the answer event is stored, the row ends delivered, whatever fails
// after it: the person must never get the answer and then "kept failing".
func TestAnswerThenStoreErrorDelivers(t *testing.T) {
	t.Parallel()
	backends := []struct {
		name string
		open func(t *testing.T) responder.Store
	}{
		{"sqlite", func(t *testing.T) responder.Store { return openStore(t) }},
		{"mongo", openMongo},
	}
	cases := []struct {
		name             string
		deliver, summary int32 // failures injected
	}{
		{"deliver fails once", 1, 0},
		{"summary fails once", 0, 1},
		// The retry in fail fails too: the row stays leased, and the next
		// claim delivers it without working it again.
		{"deliver fails twice", 2, 0},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			je := startEngine(t, newModelServer(t, replyTo, summarise).Model())
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					st := &faultStore{Store: b.open(t)}
					st.failDeliver.Store(c.deliver)
					st.failSummary.Store(c.summary)
					u := newUser(t, st, "Asha")
					// One attempt only: today's final attempt.
					r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID,
						MaxAttempts: 1, Lease: 500 * time.Millisecond}))
					m := enqueue(t, st, u, "will it rain?", nil)
					r.d.Wake()
					got := terminal(t, st, m.ID, 20*time.Second)
					if got.Status != responder.StatusDelivered {
						t.Fatalf("status %s (%s), want delivered: the answer was stored", got.Status, got.LastError)
					}
					onlyEvent(t, st, got, responder.RoleAssistant)
					if n := len(executionsOf(t, je.Client, je.TaskID)[m.ID]); n != 1 {
						t.Fatalf("%d executions, want 1", n)
					}
				})
			}
		})
	}
}
