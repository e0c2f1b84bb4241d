package storetest

import (
	"testing"

	"github.com/astra-app/astra/internal/responder"
)

func testEventByDedupeKey(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	u, row := userID(), responder.NewID()
	key := "outbox:" + row + ":assistant"
	if _, err := s.EventByDedupeKey(ctx, key); !responder.IsNotFound(err) {
		t.Fatalf("EventByDedupeKey before append: %v, want ENOTFOUND", err)
	}
	e := &responder.Event{UserID: u, OutboxID: row, Role: responder.RoleAssistant, Content: "the answer",
		Metadata: map[string]any{"audioUrl": "/a"}, DedupeKey: key}
	if _, err := s.AppendEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	appendEvent(t, s, &responder.Event{UserID: u, OutboxID: row, Role: responder.RoleSystem, Content: "other",
		DedupeKey: "outbox:" + row + ":still-working"})
	got, err := s.EventByDedupeKey(ctx, key)
	if err != nil {
		t.Fatalf("EventByDedupeKey: %v", err)
	}
	sameEvent(t, got, e)
	for _, k := range []string{"", "outbox:" + row, "OUTBOX:" + row + ":ASSISTANT", "'; DROP TABLE events; --"} {
		if _, err := s.EventByDedupeKey(ctx, k); !responder.IsNotFound(err) {
			t.Errorf("EventByDedupeKey(%q) = %v, want ENOTFOUND", k, err)
		}
	}
}
