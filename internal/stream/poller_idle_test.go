package stream

import (
	"context"
	"testing"
)

// TestPollerIdleCountsNothing: an idle feed re-reads its window (that is
// how it finds late commits) but publishes nothing again, so the hub's
// published and duplicate counters stay where they are however many polls
// pass, with a subscriber listening or not. Before the fix every poll
// re-published the newest events, counting about 4 duplicates a second.
func TestPollerIdleCountsNothing(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	hub := NewHub(Options{})
	sub := hub.Subscribe("ada")
	defer sub.Close()
	p := &Poller{Store: st, Hub: hub}
	ctx := context.Background()
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	appendEvent(t, st, "ada", "one")
	appendEvent(t, st, "bob", "two")
	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	receive(t, sub, 1)
	after := hub.Stats()
	if after.Published != 2 || after.Duplicates != 0 {
		t.Fatalf("after the first poll: published %d, duplicates %d; want 2, 0", after.Published, after.Duplicates)
	}
	for range 20 { // five seconds of an idle server at the default interval
		if err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := hub.Stats(); got.Published != after.Published || got.Duplicates != 0 {
		t.Errorf("20 idle polls: published %d (was %d), duplicates %d; want no change, 0", got.Published, after.Published, got.Duplicates)
	}
	if sub.Pending() {
		t.Errorf("idle polls queued frames: %+v", sub)
	}
	// A new event after the idle stretch is published once.
	appendEvent(t, st, "ada", "three")
	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	receive(t, sub, 1)
	if got := hub.Stats(); got.Published != after.Published+1 || got.Duplicates != 0 {
		t.Errorf("a new event: published %d, duplicates %d; want %d, 0", got.Published, got.Duplicates, after.Published+1)
	}
}
