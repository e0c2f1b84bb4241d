package stream

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
)

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func appendEvent(t *testing.T, st *sqlite.Store, user, content string) responder.Event {
	t.Helper()
	e := &responder.Event{UserID: user, Role: responder.RoleAssistant, Content: content, DedupeKey: responder.NewID()}
	if _, err := st.AppendEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return *e
}

// receive collects n frames from s, failing on a timeout.
func receive(t *testing.T, s *Subscription, n int) []Frame {
	t.Helper()
	var got []Frame
	deadline := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case <-s.Ready():
			frames, over := s.Drain()
			if over {
				t.Fatal("subscription overflowed")
			}
			got = append(got, frames...)
		case <-deadline:
			t.Fatalf("received %d frames, want %d", len(got), n)
		}
	}
	return got
}

// TestPollerPublishesStoredEventsOnce appends events straight to the store
// (as another instance would) and checks each reaches the subscriber once,
// also when the in-process publisher delivers some of them too.
func TestPollerPublishesStoredEventsOnce(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	before := appendEvent(t, st, "ada", "history, not the feed's business")

	h := NewHub(Options{})
	ada, grace := h.Subscribe("ada"), h.Subscribe("grace")
	defer ada.Close()
	defer grace.Close()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Poller{Store: st, Hub: h, Interval: 5 * time.Millisecond, Batch: 7, Overlap: 16, Window: time.Hour}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	}()

	// Wait for the poller to have started: it begins after the newest event
	// it finds, so markers appended before that are (rightly) not published.
	for started := false; !started; {
		appendEvent(t, st, "grace", "started?")
		select {
		case <-grace.Ready():
			started = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	grace.Drain()

	const n = 60
	var want []string
	var wg sync.WaitGroup
	for i := range n {
		e := appendEvent(t, st, "ada", fmt.Sprint(i))
		want = append(want, e.ID)
		if i%3 == 0 {
			wg.Go(func() { h.PublishEvent(e) }) // also published in process
		}
	}
	wg.Wait()
	// Each event at most once, in the user's order, up to the newest. An
	// event published in process ahead of the poller makes the
	// subscription drop the ones before it when the poller brings them:
	// the socket reads those from the store (TestSocketFillsAHoleFromTheStore).
	var got []Frame
	for len(got) == 0 || got[len(got)-1].Event.ID != want[n-1] {
		got = append(got, receive(t, ada, 1)...)
	}
	for i, f := range got {
		if f.Event.ID == before.ID {
			t.Fatal("the poller replayed history from before it started")
		}
		if i > 0 && f.Event.Seq <= got[i-1].Event.Seq {
			t.Fatalf("event %d after event %d: repeated or out of order", f.Event.Seq, got[i-1].Event.Seq)
		}
	}
	// Several more polls (each re-reading the whole window) add nothing.
	last := appendEvent(t, st, "grace", "fence")
	for fenced := false; !fenced; {
		for _, f := range receive(t, grace, 1) {
			fenced = fenced || f.Event.ID == last.ID
		}
	}
	if ada.Pending() {
		frames, _ := ada.Drain()
		t.Errorf("%d repeated frames after re-reads", len(frames))
	}
}

// TestPollerFindsALateCommitInsideItsWindow stores an event whose
// (CreatedAt, ID) sorts before events the poller already read, as a
// writer whose clock runs behind does, and checks it is still published.
func TestPollerFindsALateCommitInsideItsWindow(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	behind, err := sqlite.OpenWith(context.Background(), st.Path(), sqlite.Options{
		Now: func() time.Time { return time.Now().Add(-time.Second) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { behind.Close() })
	h := NewHub(Options{})
	s := h.Subscribe("ada")
	defer s.Close()
	p := &Poller{Store: st, Hub: h, Window: time.Minute}
	ctx := context.Background()
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	early := responder.Event{UserID: "ada", Role: responder.RoleAssistant, Content: "late commit", DedupeKey: "late"}
	later := responder.Event{UserID: "ada", Role: responder.RoleAssistant, Content: "on time", DedupeKey: "on-time"}
	if _, err := st.AppendEvent(ctx, &later); err != nil {
		t.Fatal(err)
	}
	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := behind.AppendEvent(ctx, &early); err != nil {
		t.Fatal(err)
	}
	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !early.CreatedAt.Before(later.CreatedAt) {
		t.Fatalf("the late commit is stamped %v, not before %v", early.CreatedAt, later.CreatedAt)
	}
	frames, _ := s.Drain()
	if len(frames) != 2 || frames[0].Event.ID != later.ID || frames[1].Event.ID != early.ID {
		t.Fatalf("got %d frames %+v, want the on-time event then the late one", len(frames), frames)
	}
}
