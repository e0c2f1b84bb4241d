package storetest

import (
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// testTraceParent: the trace context a row is enqueued with comes back on
// every read of it, the claim above all (the dispatcher continues the
// trace from there); a row stored without one reads as "".
func testTraceParent(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	u := userID()
	plain := enqueue(t, s, u, "no trace")
	m := &responder.Message{UserID: u, Content: "traced", TraceParent: tp}
	if err := s.Enqueue(ctx, m); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if got := mustMessage(t, s, m.ID).TraceParent; got != tp {
		t.Errorf("Message(%s).TraceParent = %q, want %q", m.ID, got, tp)
	}
	if got := mustMessage(t, s, plain.ID).TraceParent; got != "" {
		t.Errorf("row enqueued without a trace has TraceParent %q, want empty", got)
	}
	first := mustClaim(t, s, "w1", time.Minute)
	second := mustClaim(t, s, "w1", time.Minute)
	if first.ID != plain.ID || first.TraceParent != "" {
		t.Errorf("first claim = %s with TraceParent %q, want %s with none", first.ID, first.TraceParent, plain.ID)
	}
	if second.ID != m.ID || second.TraceParent != tp {
		t.Errorf("second claim = %s with TraceParent %q, want %s with %q", second.ID, second.TraceParent, m.ID, tp)
	}
}
