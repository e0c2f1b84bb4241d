package stream_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/stream"
)

// TestHubReadsTheRowOfAnEventFromElsewhere: with Options.Rows, an outbox
// row's event that a subscription takes brings the row's state, read from
// the store; an answer whose row is not marked yet (a dispatcher appends
// before it delivers) is read again until it is.
func TestHubReadsTheRowOfAnEventFromElsewhere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := &responder.User{Name: "Rows", Email: "rows@example.com"}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	m := &responder.Message{UserID: u.ID, JulepUserID: responder.JulepUserID(u.ID), Content: "hi"}
	if err := st.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	if c, err := st.Claim(ctx, "w1", time.Minute, 0); err != nil || c == nil {
		t.Fatalf("claim: %v %v", c, err)
	}
	h := stream.NewHub(stream.Options{Rows: st})
	sub := h.Subscribe(u.ID)
	defer sub.Close()

	answer := &responder.Event{UserID: u.ID, OutboxID: m.ID, Role: responder.RoleAssistant, Content: "hello",
		DedupeKey: "outbox:" + m.ID + ":assistant", Metadata: map[string]any{"outboxId": m.ID}}
	if _, err := st.AppendEvent(ctx, answer); err != nil {
		t.Fatal(err)
	}
	h.PublishEvent(*answer) // the row is still processing
	time.Sleep(20 * time.Millisecond)
	if err := st.Deliver(ctx, m.ID, "w1"); err != nil {
		t.Fatal(err)
	}
	var got *responder.Message
	timeout := time.After(10 * time.Second)
	for got == nil {
		select {
		case <-sub.Ready():
		case <-timeout:
			t.Fatal("no row state within 10s")
		}
		frames, _ := sub.Drain()
		for _, f := range frames {
			if f.Outbox != nil {
				got = f.Outbox
			}
		}
	}
	if got == nil || got.ID != m.ID || got.Status != responder.StatusDelivered {
		t.Fatalf("published row %+v, want %s delivered", got, m.ID)
	}
	// A repeat of the event (a feed re-reading) is dropped, and reads nothing.
	h.PublishEvent(*answer)
	if sub.Pending() {
		t.Fatal("a repeated event was queued")
	}
}
