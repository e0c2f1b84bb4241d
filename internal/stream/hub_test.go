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
	if !h.PublishEvent(e) {
		t.Fatal("PublishEvent of a new event reported a duplicate")
	}
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

func TestHubDedupesEventsByID(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{RecentIDs: 4})
	s := h.Subscribe("ada")
	defer s.Close()
	e := event("ada", "once")
	h.PublishEvent(e)
	if h.PublishEvent(e) {
		t.Error("the same event published twice was reported new")
	}
	frames, _ := s.Drain()
	if len(frames) != 1 {
		t.Fatalf("got %d frames, want 1", len(frames))
	}
	// The set is bounded: after RecentIDs newer events the id is forgotten.
	for i := range 4 {
		h.PublishEvent(event("ada", fmt.Sprint(i)))
	}
	if !h.PublishEvent(e) {
		t.Error("an id older than the recent-ids window is still remembered; the set is not bounded")
	}
	if st := h.Stats(); st.Duplicates != 1 || st.Published != 6 {
		t.Errorf("stats %+v, want 1 duplicate and 6 published", st)
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
