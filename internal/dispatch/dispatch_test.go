package dispatch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/stream"
)

func replyTo(user string) string   { return "Arre, suno: " + user }
func summarise(user string) string { return "Person asked: " + strings.SplitN(user, "\n", 2)[0] }

// happyPath runs one message through a real engine and a real model server
// and checks everything the brief promises for a delivered row.
func happyPath(t *testing.T, st responder.Store) {
	ms := newModelServer(t, replyTo, summarise)
	// Deltas are relayed live, not replayed after the end: give the
	// dispatcher time to join the stream before the model speaks.
	ms.delay = 200 * time.Millisecond
	je := startEngine(t, ms.Model())
	hub := stream.NewHub(stream.Options{})
	u := newUser(t, st, "Priya Sharma")
	sub := hub.Subscribe(u.ID)
	defer sub.Close()
	reg := prometheus.NewRegistry()
	r := runDispatcher(t, dispatch.Options{Store: st, Julep: je.Client, Hub: hub, TaskID: je.TaskID, Metrics: reg})

	m := enqueue(t, st, u, "Will Mercury retrograde affect my exams?", map[string]any{"voice": true})
	r.d.Wake()
	got := terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusDelivered {
		t.Fatalf("status %s (%s), want delivered", got.Status, got.LastError)
	}
	if got.ExecutionID == "" || got.JulepUserID != responder.JulepUserID(u.ID) {
		t.Fatalf("row execution %q julep user %q", got.ExecutionID, got.JulepUserID)
	}

	evs := eventsOf(t, st, u.ID, m.ID)
	if len(evs) != 1 || evs[0].Role != responder.RoleAssistant {
		t.Fatalf("events %+v, want one assistant event", evs)
	}
	e := evs[0]
	if want := replyTo("Will Mercury retrograde affect my exams?"); e.Content != want {
		t.Fatalf("content %q, want %q", e.Content, want)
	}
	if e.Metadata["executionId"] != got.ExecutionID || e.Metadata["outboxId"] != m.ID || e.Metadata["taskId"] != je.TaskID {
		t.Fatalf("metadata %v", e.Metadata)
	}
	wantSummary := summarise("Person said: Will Mercury retrograde affect my exams?")
	if e.Metadata["summary"] != wantSummary {
		t.Fatalf("summary %q, want %q", e.Metadata["summary"], wantSummary)
	}

	// The execution got the input and metadata the dispatcher promises.
	x, err := je.Client.GetExecution(context.Background(), got.ExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	if x.Input["user_id"] != got.JulepUserID || x.Input["outbox_id"] != m.ID || x.Input["voice"] != true {
		t.Fatalf("input %v", x.Input)
	}
	if x.Metadata["outbox_id"] != m.ID || x.Metadata["user_id"] != u.ID || x.Metadata["source"] != "astra" {
		t.Fatalf("execution metadata %v", x.Metadata)
	}

	// The summary is a notes doc in Julep and on the user record.
	docs, err := je.Client.ListUserDocs(context.Background(), got.JulepUserID, map[string]string{"type": "notes"})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || julep.ContentText(docs[0].Content) != wantSummary || docs[0].Metadata["scope"] != "frontline" {
		t.Fatalf("notes docs %+v", docs)
	}
	user, err := st.UserByID(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if user.ResponderSummary != wantSummary || user.JulepUserID != got.JulepUserID {
		t.Fatalf("user summary %q julep id %q", user.ResponderSummary, user.JulepUserID)
	}
	ju, err := je.Client.GetUser(context.Background(), got.JulepUserID)
	if err != nil || ju.Name != "Priya Sharma" {
		t.Fatalf("julep user %+v, %v", ju, err)
	}

	// The socket saw the reply's deltas, then the event.
	var deltas strings.Builder
	var published *responder.Event
	waitFor(t, 5*time.Second, "event on the hub", func() bool {
		frames, _ := sub.Drain()
		for _, f := range frames {
			if f.Event != nil {
				published = f.Event
				continue
			}
			if f.Outbox != nil {
				continue // the row's states (TestDispatcherPublishesRowStates)
			}
			if f.Delta == nil || f.Delta.OutboxID != m.ID {
				t.Fatalf("frame %+v", f)
			}
			deltas.WriteString(f.Delta.Text)
		}
		return published != nil
	})
	if published.ID != e.ID {
		t.Fatalf("published %s, stored %s", published.ID, e.ID)
	}
	if deltas.String() != e.Content {
		t.Fatalf("deltas %q, want the reply %q", deltas.String(), e.Content)
	}

	// A second message carries the first turn as history.
	m2 := enqueue(t, st, u, "And my job interview?", nil)
	r.d.Wake()
	got2 := terminal(t, st, m2.ID, 20*time.Second)
	x2, err := je.Client.GetExecution(context.Background(), got2.ExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := x2.Input["history"].([]any)
	if len(h) != 2 || h[0].(map[string]any)["content"] != m.Content || h[1].(map[string]any)["content"] != e.Content {
		t.Fatalf("history %v", h)
	}
	if _, ok := x2.Input["voice"]; ok {
		t.Fatalf("voice sent without voice metadata: %v", x2.Input)
	}

	if n := testutil.CollectAndCount(reg, "astra_dispatch_claim_to_execution_seconds"); n != 1 {
		t.Fatalf("claim histogram series %d", n)
	}
	if v := testutil.ToFloat64(gaugeOf(t, reg, "astra_outbox_rows", "delivered")); v != 2 {
		t.Fatalf("delivered depth %v, want 2", v)
	}
}

func TestHappyPathSQLite(t *testing.T) {
	t.Parallel()
	happyPath(t, openStore(t))
}

// A row whose user has many newer rows waiting still gets its earlier turns
// as history: the backlog does not hide them.
func TestHistoryBehindABacklog(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	je := startEngine(t, newModelServer(t, replyTo, summarise).Model())
	u := newUser(t, st, "Backlogged")
	r := runDispatcher(t, dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID})
	first := enqueue(t, st, u, "first turn", nil)
	r.d.Wake()
	if got := terminal(t, st, first.ID, 20*time.Second); got.Status != responder.StatusDelivered {
		t.Fatalf("first: %s (%s)", got.Status, got.LastError)
	}
	r.Stop(t)

	target := enqueue(t, st, u, "second turn", nil)
	var backlog []*responder.Message
	for i := range 40 {
		backlog = append(backlog, enqueue(t, st, u, fmt.Sprintf("later %d", i), nil))
	}
	r = runDispatcher(t, dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID, MaxInFlight: 1})
	r.d.Wake()
	got := terminal(t, st, target.ID, 20*time.Second)
	if got.Status != responder.StatusDelivered {
		t.Fatalf("target: %s (%s)", got.Status, got.LastError)
	}
	x, err := je.Client.GetExecution(context.Background(), got.ExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := x.Input["history"].([]any)
	if len(h) != 2 || h[0].(map[string]any)["content"] != "first turn" || h[1].(map[string]any)["content"] != replyTo("first turn") {
		t.Fatalf("history behind a backlog of %d rows: %v", len(backlog), h)
	}
	for _, m := range backlog {
		terminal(t, st, m.ID, 30*time.Second)
	}
}
