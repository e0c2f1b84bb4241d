package storetest

import (
	"testing"

	"github.com/astra-app/astra/internal/responder"
)

// testEventTraceParent: an event's trace context is stored with it and
// comes back from every read a feed or a socket makes; an event without
// one reads as "".
func testEventTraceParent(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	u := userID()
	plain := appendEvent(t, s, &responder.Event{UserID: u, Role: responder.RoleUser, Content: "a", DedupeKey: responder.NewID()})
	traced := appendEvent(t, s, &responder.Event{UserID: u, Role: responder.RoleAssistant, Content: "b",
		DedupeKey: responder.NewID(), TraceParent: tp})
	evs, err := s.UserEventsAfter(ctx, u, plain.ID, 10)
	if err != nil || len(evs) != 1 || evs[0].ID != traced.ID || evs[0].TraceParent != tp {
		t.Errorf("UserEventsAfter = %+v, %v; want the traced event with TraceParent %q", evs, err, tp)
	}
	all, err := s.EventsAfter(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		switch e.ID {
		case plain.ID:
			if e.TraceParent != "" {
				t.Errorf("event appended without a trace reads TraceParent %q", e.TraceParent)
			}
		case traced.ID:
			if e.TraceParent != tp {
				t.Errorf("EventsAfter: TraceParent %q, want %q", e.TraceParent, tp)
			}
		}
	}
	got, err := s.EventByDedupeKey(ctx, traced.DedupeKey)
	if err != nil || got.TraceParent != tp {
		t.Errorf("EventByDedupeKey = %+v, %v; want TraceParent %q", got, err, tp)
	}
}
