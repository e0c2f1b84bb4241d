package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/astra-app/astra/internal/responder"
)

// testUserMessagesBefore: a row's earlier messages are found however many
// newer ones wait behind it, newest first, the row itself and other users'
// rows never included.
func testUserMessagesBefore(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	a, b := userID(), userID()
	var as []*responder.Message
	for i := range 30 {
		as = append(as, enqueue(t, s, a, fmt.Sprint("a", i)))
		enqueue(t, s, b, fmt.Sprint("b", i))
	}
	got, err := s.UserMessagesBefore(ctx, a, as[5], 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{as[4].ID, as[3].ID, as[2].ID}
	if !slices.Equal(messageIDs(got), want) {
		t.Errorf("UserMessagesBefore(a[5], 3) = %v, want %v", messageIDs(got), want)
	}
	if got, err := s.UserMessagesBefore(ctx, a, as[0], 3); err != nil || len(got) != 0 {
		t.Errorf("before the first row: %v, %v; want none", messageIDs(got), err)
	}
	// Every earlier row when the limit allows (enqueues within one
	// millisecond are ordered by id, as the outbox orders them).
	same := as[10]
	got, err = s.UserMessagesBefore(ctx, a, same, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || got[0].ID != as[9].ID {
		t.Errorf("before a[10]: %d rows starting %v, want 10 starting %s", len(got), messageIDs(got[:min(1, len(got))]), as[9].ID)
	}
	for _, m := range got {
		if m.UserID != a || m.ID == same.ID {
			t.Errorf("returned %s of user %s", m.ID, m.UserID)
		}
	}
}
