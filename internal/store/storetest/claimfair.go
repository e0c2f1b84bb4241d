package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// testClaimPerUserCap: with a cap, one user's backlog does not take every
// claim; rows whose lease expired do not count against their user.
func testClaimPerUserCap(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	a, b := userID(), userID()
	var as []string
	for i := range 10 {
		as = append(as, enqueue(t, s, a, fmt.Sprint("a", i)).ID)
	}
	bRow := enqueue(t, s, b, "b0").ID
	claim := func(owner string, lease time.Duration) *responder.Message {
		t.Helper()
		m, err := s.Claim(ctx, owner, lease, 2)
		if err != nil {
			t.Fatalf("Claim(%s): %v", owner, err)
		}
		return m
	}

	first := claim("w1", time.Second) // expires later in the test
	second := claim("w1", time.Hour)
	if first == nil || second == nil || first.ID != as[0] || second.ID != as[1] {
		t.Fatalf("first claims %v %v, want a's oldest two %v", first, second, as[:2])
	}
	// a is at its cap of 2: b's row, newer than all of a's, is next.
	if m := claim("w1", time.Hour); m == nil || m.ID != bRow {
		t.Fatalf("claim with a at its cap = %+v, want b's row %s", m, bRow)
	}
	if m := claim("w1", time.Hour); m != nil {
		t.Fatalf("a third row of a while 2 are processing: %s", m.ID)
	}
	// One of a's rows finishes: the next of a's is claimable.
	if err := s.Deliver(ctx, second.ID, "w1"); err != nil {
		t.Fatal(err)
	}
	if m := claim("w1", time.Hour); m == nil || m.ID != as[2] {
		t.Fatalf("claim after a delivered one = %+v, want %s", m, as[2])
	}
	if m := claim("w1", time.Hour); m != nil {
		t.Fatalf("a third row of a while 2 are processing: %s", m.ID)
	}
	// An expired lease does not count: a has one live row, and its expired
	// row is claimable again.
	// Stores keep milliseconds, and a lease ending at the claim's own
	// millisecond has not lapsed yet: wait a little past it.
	eventually(t, "the first lease to lapse", func() bool { return time.Now().After(first.LeaseUntil.Add(5 * time.Millisecond)) })
	if m := claim("w2", time.Hour); m == nil || m.ID != as[0] || m.Attempts != 2 {
		t.Fatalf("claim after expiry = %+v, want %s reclaimed", m, as[0])
	}
	if m := claim("w2", time.Hour); m != nil {
		t.Fatalf("a third row of a while 2 are processing: %s", m.ID)
	}
	// No cap: a's rows are claimable.
	if m, err := s.Claim(ctx, "w3", time.Hour, 0); err != nil || m == nil || m.ID != as[3] {
		t.Fatalf("Claim without a cap = %+v, %v; want %s", m, err, as[3])
	}
}
