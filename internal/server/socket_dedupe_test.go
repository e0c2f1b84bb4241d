package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// TestSocketDropsAFeedsLateRepeat: a feed (a change stream resuming after
// an outage, a poller that backed off) delivers events a socket has sent
// already, long after and many events after; the socket sends each once.
func TestSocketDropsAFeedsLateRepeat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.hub.Buffer = 1 << 15 })
	ctx := testCtx(t)
	u, other := e.newUser("Ada"), e.newUser("Grace")
	// Another instance whose clock says these were written minutes ago:
	// older than any time window a repeat could be remembered for.
	past, err := sqlite.OpenWith(ctx, e.store.Path(), sqlite.Options{Now: func() time.Time { return time.Now().Add(-2 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { past.Close() })
	old := &responder.Event{UserID: u.ID, Role: responder.RoleAssistant, Content: "from history", DedupeKey: "k-old"}
	if _, err := past.AppendEvent(ctx, old); err != nil {
		t.Fatal(err)
	}

	c := e.mustDial(ctx, u.withCookie(), "")
	if f := readFrame(ctx, t, c); len(f.events(t)) != 1 {
		t.Fatalf("init %s, want the old event", f.raw)
	}
	live := e.event(u.ID, "live")
	if f := readFrame(ctx, t, c); f.event(t).ID != live.ID {
		t.Fatalf("got %s, want the live event", f.raw)
	}
	// The feed catches up: more events than any bounded id set holds,
	// then the two this socket has sent.
	for i := range 9000 {
		e.hub.PublishEvent(responder.Event{ID: responder.NewID(), UserID: other.ID, Role: responder.RoleAssistant,
			Content: fmt.Sprint(i), Seq: int64(i + 1)})
	}
	e.hub.PublishEvent(*old)
	e.hub.PublishEvent(live)
	next := e.event(u.ID, "next")
	if f := readFrame(ctx, t, c); f.Type != "messages:append" || f.event(t).ID != next.ID {
		t.Errorf("got %s, want the next event: a repeat came through", f.raw)
	}
}

// TestSocketFillsAHoleFromTheStore: a feed delivers a user's event n+1
// before event n (or never delivers n); the socket sends n, read from the
// store, then n+1, and drops n when it comes later.
func TestSocketFillsAHoleFromTheStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	u := e.newUser("Ada")
	c := e.mustDial(ctx, u.withCookie(), "")
	readFrame(ctx, t, c)
	var evs []responder.Event
	for i := range 3 {
		ev := &responder.Event{UserID: u.ID, Role: responder.RoleAssistant, Content: fmt.Sprint(i), DedupeKey: responder.NewID()}
		if _, err := e.store.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, *ev)
	}
	e.hub.PublishEvent(evs[2])
	for _, want := range evs {
		if f := readFrame(ctx, t, c); f.Type != "messages:append" || f.event(t).ID != want.ID {
			t.Fatalf("got %s, want event %s", f.raw, want.Content)
		}
	}
	e.hub.PublishEvent(evs[0])
	e.hub.PublishEvent(evs[1])
	writeJSON(ctx, t, c, map[string]string{"type": "heartbeat"})
	if f := readFrame(ctx, t, c); f.Type != "heartbeat" {
		t.Errorf("got %s after the late events, want the heartbeat", f.raw)
	}
}

// TestSocketResumedAtTheNewestLearnsItsPlace: a client resuming with
// nothing missed gets the next live event, and no repeat of the one it
// resumed after.
func TestSocketResumedAtTheNewestLearnsItsPlace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	u := e.newUser("Ada")
	seen := e.event(u.ID, "seen")
	c := e.mustDial(ctx, u.withCookie(), "?after="+seen.ID)
	e.hub.PublishEvent(seen) // a feed's repeat
	next := e.event(u.ID, "next")
	if f := readFrame(ctx, t, c); f.Type != "messages:append" || f.event(t).ID != next.ID {
		t.Errorf("got %s, want the next event", f.raw)
	}
}
