package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// skewedWriters opens two stores on one database whose clocks disagree by
// seconds, either way round: the second runs behind the first.
func skewedWriters(t *testing.T, opts Options) (ahead, behind responder.Store) {
	t.Helper()
	if opts.OpenWriters == nil {
		t.Skip("the backend opens no second store on one database")
	}
	ws := opts.OpenWriters(t,
		func() time.Time { return time.Now().Add(5 * time.Second) },
		func() time.Time { return time.Now().Add(-5 * time.Second) })
	return ws[0], ws[1]
}

// reader follows one user's events as a resuming client does: each read
// starts after the last event it has.
type reader struct {
	s      responder.Store
	user   string
	got    []responder.Event
	cursor string
}

func (r *reader) catchUp(t *testing.T) {
	t.Helper()
	for {
		page, err := r.s.UserEventsAfter(t.Context(), r.user, r.cursor, 7)
		if err != nil {
			t.Fatalf("UserEventsAfter(%q): %v", r.cursor, err)
		}
		if len(page) == 0 {
			return
		}
		r.got = append(r.got, page...)
		r.cursor = page[len(page)-1].ID
	}
}

// testResumeAcrossSkewedClocks: two instances whose clocks disagree append
// one user's events in turn; a client resuming after each commit, from
// either instance, gets every event once, in commit order. Ordering a
// user's events by their stamped time would put the late writer's events
// before ones the client has already seen, and a resume would skip them.
func testResumeAcrossSkewedClocks(t *testing.T, _ responder.Store, opts Options) {
	ahead, behind := skewedWriters(t, opts)
	u := userID()
	readers := []*reader{{s: ahead, user: u}, {s: behind, user: u}}
	var want []string
	for i := range 12 {
		w := ahead
		if i%3 != 0 { // not strictly alternating: runs on one writer too
			w = behind
		}
		e := appendEvent(t, w, &responder.Event{UserID: u, Content: fmt.Sprint("e", i)})
		if e.Seq != int64(i+1) {
			t.Errorf("event %d has Seq %d, want %d", i, e.Seq, i+1)
		}
		want = append(want, e.ID)
		for _, r := range readers {
			r.catchUp(t)
		}
	}
	for i, r := range readers {
		if got := eventIDs(r.got); !slices.Equal(got, want) {
			t.Errorf("reader %d resumed through %v\nwant %v", i, got, want)
		}
	}
	latest, err := behind.LatestEvents(t.Context(), u, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(latest); !slices.Equal(got, want[len(want)-5:]) {
		t.Errorf("LatestEvents = %v, want the last five appended, in order: %v", got, want[len(want)-5:])
	}
}

// testResumeDuringConcurrentAppends: writers on two skewed instances
// append one user's events at once while a client keeps resuming; it
// ends with every event exactly once, in Seq order 1..n.
func testResumeDuringConcurrentAppends(t *testing.T, _ responder.Store, opts Options) {
	if !opts.Concurrent {
		t.Skip("the backend serialises writes; the serial case covers it")
	}
	ahead, behind := skewedWriters(t, opts)
	u := userID()
	const writers, each = 6, 15
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		s := ahead
		if w%2 == 1 {
			s = behind
		}
		wg.Go(func() {
			for i := range each {
				e := &responder.Event{UserID: u, Role: responder.RoleAssistant, Content: "c", DedupeKey: fmt.Sprint("w", w, "-", i, "-", u)}
				if _, err := s.AppendEvent(t.Context(), e); err != nil {
					t.Errorf("AppendEvent: %v", err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	r := &reader{s: behind, user: u}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		r.catchUp(t)
	}
	r.catchUp(t)
	if len(r.got) != writers*each {
		t.Errorf("the resuming client got %d events, %d were appended", len(r.got), writers*each)
	}
	for i, e := range r.got {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d of the client's list has Seq %d, want %d (a gap or a repeat)", i, e.Seq, i+1)
		}
	}
}

// testImportsComeFirst: events stored with a caller-chosen time (imports,
// and the original app's events, which have no Seq) come before a user's
// numbered events, whatever their time, ordered by (CreatedAt, ID); a
// cursor on an import resumes through the remaining imports, then the
// numbered events.
func testImportsComeFirst(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	u := userID()
	first := appendEvent(t, s, &responder.Event{UserID: u, Content: "live 1"})
	future := appendEvent(t, s, &responder.Event{UserID: u, Content: "import, future", CreatedAt: time.Now().Add(time.Hour)})
	past := appendEvent(t, s, &responder.Event{UserID: u, Content: "import, past", CreatedAt: time.Now().Add(-time.Hour)})
	second := appendEvent(t, s, &responder.Event{UserID: u, Content: "live 2"})
	if first.Seq != 1 || second.Seq != 2 || future.Seq != 0 || past.Seq != 0 {
		t.Errorf("Seq = %d, %d, %d, %d; want 1, 0, 0, 2", first.Seq, future.Seq, past.Seq, second.Seq)
	}
	want := []string{past.ID, future.ID, first.ID, second.ID}
	got, err := s.LatestEvents(ctx, u, 10)
	if err != nil || !slices.Equal(eventIDs(got), want) {
		t.Errorf("LatestEvents = %v, %v; want %v", eventIDs(got), err, want)
	}
	for i, id := range want {
		rest, err := s.UserEventsAfter(ctx, u, id, 10)
		if err != nil || !slices.Equal(eventIDs(rest), want[i+1:]) {
			t.Errorf("UserEventsAfter(%d) = %v, %v; want %v", i, eventIDs(rest), err, want[i+1:])
		}
	}
	for i := range got {
		if got[i].Seq != []int64{0, 0, 1, 2}[i] {
			t.Errorf("read back Seq %d for %s", got[i].Seq, got[i].Content)
		}
	}
}
