package stream

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

func event(user, content string) responder.Event {
	return responder.Event{ID: responder.NewID(), UserID: user, Role: responder.RoleAssistant, Content: content, CreatedAt: time.Now()}
}

func TestHubDeliversToTheUsersSubscriptionsOnly(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{})
	tab1, tab2, other := h.Subscribe("ada"), h.Subscribe("ada"), h.Subscribe("grace")
	defer tab1.Close()
	defer tab2.Close()
	defer other.Close()

	e := event("ada", "hello")
	h.PublishEvent(e)
	for _, s := range []*Subscription{tab1, tab2} {
		<-s.Ready()
		frames, over := s.Drain()
		if over || len(frames) != 1 || frames[0].Event.ID != e.ID || frames[0].Event.Content != "hello" {
			t.Fatalf("tab got %+v overflowed=%v, want the one event", frames, over)
		}
	}
	if frames, _ := other.Drain(); len(frames) != 0 {
		t.Fatalf("another user's subscription got %d frames", len(frames))
	}
	if got := h.Stats().Subscribers; got != 3 {
		t.Errorf("Subscribers = %d, want 3", got)
	}
}

// numbered is a user's event n as a store numbers it.
func numbered(user string, n int64) responder.Event {
	e := event(user, fmt.Sprint("event ", n))
	e.Seq = n
	return e
}

// TestHubDropsRepeatsHoweverLate: an event comes again after many others
// (a change stream resuming after an outage, a poller's backlog) and after
// any time; each subscription still takes it once. The repeat is judged by
// the event's place in its user's order, not by a bounded set of ids.
func TestHubDropsRepeatsHoweverLate(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{Buffer: 1 << 15})
	s := h.Subscribe("ada")
	defer s.Close()
	const many = 10000 // more than the 8,192 ids the hub once remembered
	first := numbered("ada", 1)
	h.PublishEvent(first)
	for i := range int64(many) {
		h.PublishEvent(numbered("grace", i+1)) // other users' traffic
		h.PublishEvent(numbered("ada", i+2))
	}
	h.PublishEvent(first)                   // the feed delivers it again
	h.PublishEvent(numbered("ada", many/2)) // and one from the middle
	frames, _ := s.Drain()
	if len(frames) != many+1 {
		t.Fatalf("got %d frames, want %d: each event once", len(frames), many+1)
	}
	for i, f := range frames {
		if f.Event.Seq != int64(i+1) {
			t.Fatalf("frame %d is event %d", i, f.Event.Seq)
		}
	}
	if st := h.Stats(); st.Duplicates != 2 {
		t.Errorf("stats %+v, want 2 duplicates", st)
	}

	// Events without a number (imports, the original app's) follow
	// (CreatedAt, ID), and come before numbered ones.
	s2 := h.Subscribe("lin")
	defer s2.Close()
	old := event("lin", "old")
	h.PublishEvent(old)
	h.PublishEvent(numbered("lin", 1))
	h.PublishEvent(old)
	h.PublishEvent(event("lin", "unnumbered, after a numbered one"))
	if frames, _ := s2.Drain(); len(frames) != 2 {
		t.Errorf("got %d frames, want the old event and event 1", len(frames))
	}

	// History sent by the consumer counts as taken.
	s3 := h.Subscribe("mo")
	defer s3.Close()
	s3.Advance(responder.Position{Seq: 3})
	for n := range int64(5) {
		h.PublishEvent(numbered("mo", n+1))
	}
	if frames, _ := s3.Drain(); len(frames) != 2 || frames[0].Event.Seq != 4 {
		t.Errorf("after Advance(3) got %d frames, want events 4 and 5", len(frames))
	}
}

func TestHubTransientFramesAreNotDeduped(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{})
	s := h.Subscribe("ada")
	defer s.Close()
	h.PublishTransient("ada", "delta")
	h.PublishTransient("ada", "delta")
	frames, _ := s.Drain()
	if len(frames) != 2 || frames[0].Event != nil || frames[1].Data != "delta" {
		t.Fatalf("got %+v, want two transient frames", frames)
	}
}

func TestSlowSubscriberOverflowsWithoutBlockingOthers(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{Buffer: 8})
	slow, fast := h.Subscribe("ada"), h.Subscribe("ada")
	defer slow.Close()
	defer fast.Close()

	var got int
	for i := range 20 {
		h.PublishEvent(event("ada", fmt.Sprint(i)))
		frames, over := fast.Drain()
		if over {
			t.Fatal("a subscriber that keeps up was marked overflowed")
		}
		got += len(frames)
	}
	if got != 20 {
		t.Errorf("fast subscriber got %d frames, want 20", got)
	}
	frames, over := slow.Drain()
	if !over || len(frames) != 0 {
		t.Errorf("slow subscriber: %d frames, overflowed=%v; want none kept and overflowed", len(frames), over)
	}
	if !slow.Overflowed() || h.Stats().Overflows != 1 {
		t.Errorf("overflow not recorded: %+v", h.Stats())
	}
}

func TestOnReadyIsCalledOncePerBatch(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{})
	s := h.Subscribe("ada")
	defer s.Close()
	h.PublishEvent(event("ada", "before OnReady"))

	var mu sync.Mutex
	calls := 0
	s.OnReady(func() { mu.Lock(); calls++; mu.Unlock() })
	h.PublishEvent(event("ada", "queued behind the first"))
	mu.Lock()
	if calls != 1 {
		t.Errorf("OnReady called %d times for one undrained batch, want 1 (at registration)", calls)
	}
	mu.Unlock()
	if frames, _ := s.Drain(); len(frames) != 2 {
		t.Fatalf("drained %d frames, want 2", len(frames))
	}
	h.PublishEvent(event("ada", "after drain"))
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("OnReady called %d times, want 2 after a drain and a new frame", calls)
	}
}

func TestClosedSubscriptionGetsNothing(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{})
	s := h.Subscribe("ada")
	s.Close()
	s.Close()
	h.PublishEvent(event("ada", "late"))
	if frames, _ := s.Drain(); len(frames) != 0 {
		t.Errorf("closed subscription got %d frames", len(frames))
	}
	if n := h.Stats().Subscribers; n != 0 {
		t.Errorf("Subscribers = %d after Close, want 0", n)
	}
}

func TestConcurrentPublishAndSubscribe(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{Buffer: 10000})
	const users, perUser = 8, 200
	subs := make([]*Subscription, users)
	for i := range subs {
		subs[i] = h.Subscribe(fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			for i := range perUser {
				e := event(fmt.Sprint(u), fmt.Sprint(i))
				h.PublishEvent(e)
				h.PublishEvent(e) // a feed delivering it again
			}
		})
		wg.Go(func() { // churn: tabs opening and closing meanwhile
			for range perUser {
				h.Subscribe(fmt.Sprint(u)).Close()
			}
		})
	}
	wg.Wait()
	for u, s := range subs {
		frames, _ := s.Drain()
		if len(frames) != perUser {
			t.Errorf("user %d got %d frames, want %d", u, len(frames), perUser)
		}
		s.Close()
	}
}
