package dispatch_test

import (
	"slices"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/stream"
)

// TestDispatcherPublishesRowStates: a dispatcher with a hub tells the
// person's sockets each state of their message as it changes: processing
// at the claim, then delivered after the answer; or error with the reason.
func TestDispatcherPublishesRowStates(t *testing.T) {
	t.Parallel()
	model := newModelServer(t,
		func(user string) string {
			if user == "fail please" {
				return "!status 400 the model refused"
			}
			return "An answer."
		},
		func(string) string { return "A summary." })
	st := openStore(t)
	je := startEngine(t, model.Model())
	hub := stream.NewHub(stream.Options{})
	u := newUser(t, st, "Row States")
	sub := hub.Subscribe(u.ID)
	defer sub.Close()
	r := runDispatcher(t, dispatch.Options{Store: st, Julep: je.Client, Hub: hub, TaskID: je.TaskID})

	for _, tc := range []struct {
		content string
		want    []responder.Status
	}{
		{"hello", []responder.Status{responder.StatusProcessing, responder.StatusDelivered}},
		{"fail please", []responder.Status{responder.StatusProcessing, responder.StatusError}},
	} {
		m := enqueue(t, st, u, tc.content, nil)
		r.d.Wake()
		row := terminal(t, st, m.ID, 30*time.Second)
		var states []responder.Status
		var last *responder.Message
		waitFor(t, 5*time.Second, "the row's last state on the hub", func() bool {
			frames, _ := sub.Drain()
			for _, f := range frames {
				if f.Outbox != nil && f.Outbox.ID == m.ID {
					states = append(states, f.Outbox.Status)
					last = f.Outbox
				}
			}
			return last != nil && last.Status.Terminal()
		})
		if !slices.Equal(states, tc.want) {
			t.Errorf("%q: states %v, want %v", tc.content, states, tc.want)
		}
		if last.Status != row.Status || last.LastError != row.LastError || last.Content != tc.content {
			t.Errorf("%q: last published %s %q, stored %s %q", tc.content, last.Status, last.LastError, row.Status, row.LastError)
		}
		if row.Status == responder.StatusError && last.LastError == "" {
			t.Errorf("%q: an error without its reason", tc.content)
		}
	}
}
