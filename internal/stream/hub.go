// Package stream fans conversation events out to the sockets of the user
// they belong to: one hub per instance, fed by the in-process publisher and
// by one feed (a poller or a change stream), never one feed per socket.
package stream

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/astra-app/astra/internal/responder"
)

// DefaultBuffer is Options.Buffer's default.
const DefaultBuffer = 256

// Options configures a Hub.
type Options struct {
	// Buffer is how many frames a subscription holds before it is marked
	// overflowed (its consumer cannot keep up). Default 256.
	Buffer int
	Logger *slog.Logger
}

// Frame is one thing a subscription delivers: a stored event, or a
// transient frame (not stored, sent to the socket as is).
type Frame struct {
	// Event is a stored event; shared by every subscriber, so read-only.
	Event *responder.Event
	// Data is a transient frame when Event is nil.
	Data any
}

// Hub is a per-user fan-out of frames to subscriptions. It is safe for
// concurrent use; publishers never block on a subscriber.
//
// An event may be published more than once (by the in-process publisher and
// by a feed, by a poller re-reading its window, by a change stream resuming
// after an outage, however late). Each subscription drops an event at or
// before the newest one it has taken in its user's order (Position), so a
// repeat is dropped however long after, and however many events after, it
// comes; no id set to outgrow.
type Hub struct {
	buffer int
	log    *slog.Logger

	mu    sync.RWMutex
	users map[string][]*Subscription

	subscribers atomic.Int64
	published   atomic.Int64
	duplicates  atomic.Int64
	overflows   atomic.Int64
}

// NewHub returns an empty hub.
func NewHub(opts Options) *Hub {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		buffer: opts.Buffer,
		log:    opts.Logger,
		users:  make(map[string][]*Subscription),
	}
}

// Stats are the hub's counters, for metrics.
type Stats struct {
	Subscribers int64 // open subscriptions
	Published   int64 // events fanned out
	Duplicates  int64 // events a subscription dropped as already taken
	Overflows   int64 // subscriptions that could not keep up
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Subscribers: h.subscribers.Load(),
		Published:   h.published.Load(),
		Duplicates:  h.duplicates.Load(),
		Overflows:   h.overflows.Load(),
	}
}

// Subscribe opens a subscription to userID's frames. Each browser tab has
// its own. Frames published from now on are buffered until drained; call
// Close when done.
func (h *Hub) Subscribe(userID string) *Subscription {
	s := &Subscription{hub: h, userID: userID, max: h.buffer}
	h.mu.Lock()
	h.users[userID] = append(h.users[userID], s)
	h.mu.Unlock()
	h.subscribers.Add(1)
	return s
}

func (h *Hub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.users[s.userID]
	for i, x := range subs {
		if x == s {
			last := len(subs) - 1
			subs[i] = subs[last]
			subs[last] = nil
			subs = subs[:last]
			break
		}
	}
	if len(subs) == 0 {
		delete(h.users, s.userID)
	} else {
		h.users[s.userID] = subs
	}
	h.subscribers.Add(-1)
}

// PublishEvent fans a stored event out to its user's subscriptions; each
// drops it if it has taken it (or a later event) already. Call it after the
// event is committed.
func (h *Hub) PublishEvent(e responder.Event) {
	if e.ID == "" {
		return
	}
	h.published.Add(1)
	h.fanOut(e.UserID, Frame{Event: &e})
}

// PublishTransient sends a frame that is not stored (e.g. token deltas) to
// userID's subscriptions. It is not deduplicated and not replayed on resume.
func (h *Hub) PublishTransient(userID string, frame any) {
	h.fanOut(userID, Frame{Data: frame})
}

func (h *Hub) fanOut(userID string, f Frame) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.users[userID] {
		switch s.push(f) {
		case pushOverflowed:
			h.overflows.Add(1)
			h.log.Warn("stream subscriber overflowed", "user", userID, "buffer", h.buffer)
		case pushDuplicate:
			h.duplicates.Add(1)
		}
	}
}

// Subscription is one consumer's bounded queue of frames. A consumer is
// woken by Ready or by the function given to OnReady, then takes the frames
// with Drain. The queue holds no memory while empty, so idle subscriptions
// stay small.
type Subscription struct {
	hub    *Hub
	userID string
	max    int

	mu         sync.Mutex
	frames     []Frame
	overflowed bool
	closed     bool
	notify     func()
	ready      chan struct{}
	// newest is the position of the newest event taken (queued, or sent by
	// the consumer from history: Advance); has says whether there is one.
	newest responder.Position
	has    bool
}

// UserID is the user whose frames this subscription receives.
func (s *Subscription) UserID() string { return s.userID }

type pushResult int

const (
	pushQueued pushResult = iota
	pushDuplicate
	pushOverflowed
	pushIgnored // closed or overflowed already
)

// push queues f and wakes the consumer when the queue was empty. An event
// at or before the newest one taken is dropped: a repeat, or one that came
// late from a feed out of order (a consumer that sees a hole in a user's
// numbers reads what it lacks from the store).
func (s *Subscription) push(f Frame) pushResult {
	s.mu.Lock()
	if s.closed || s.overflowed {
		s.mu.Unlock()
		return pushIgnored
	}
	if f.Event != nil {
		p := f.Event.Position()
		if s.has && p.Compare(s.newest) <= 0 {
			s.mu.Unlock()
			return pushDuplicate
		}
		s.newest, s.has = p, true
	}
	res := pushQueued
	if len(s.frames) >= s.max {
		// Drop the queue rather than block the publisher or grow without
		// bound: the consumer is told and closes its socket.
		s.overflowed, s.frames = true, nil
		res = pushOverflowed
	} else {
		s.frames = append(s.frames, f)
		if len(s.frames) > 1 {
			s.mu.Unlock()
			return res
		}
	}
	notify, ready := s.notify, s.ready
	s.mu.Unlock()
	wake(notify, ready)
	return res
}

// Advance records that the consumer has sent events up to p by other means
// (history read from the store), so events at or before p are dropped when
// they come live.
func (s *Subscription) Advance(p responder.Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.has || p.Compare(s.newest) > 0 {
		s.newest, s.has = p, true
	}
}

func wake(notify func(), ready chan struct{}) {
	if notify != nil {
		notify()
	}
	if ready != nil {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
}

// Ready returns a channel that receives a value when frames become
// available (or the subscription overflows) after the last Drain.
func (s *Subscription) Ready() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == nil {
		s.ready = make(chan struct{}, 1)
		if len(s.frames) > 0 || s.overflowed {
			s.ready <- struct{}{}
		}
	}
	return s.ready
}

// OnReady sets fn to be called when frames become available (or the
// subscription overflows) after the last Drain; it is called at once when
// frames are already waiting. fn runs on the publisher's goroutine, so it
// must not block: typically it starts a writer goroutine.
func (s *Subscription) OnReady(fn func()) {
	s.mu.Lock()
	s.notify = fn
	pending := len(s.frames) > 0 || s.overflowed
	s.mu.Unlock()
	if pending && fn != nil {
		fn()
	}
}

// Drain takes every queued frame, oldest first, and reports whether the
// subscription overflowed (frames were lost; the consumer should go away).
func (s *Subscription) Drain() (frames []Frame, overflowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	frames, s.frames = s.frames, nil
	return frames, s.overflowed
}

// Pending reports whether frames are waiting.
func (s *Subscription) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames) > 0
}

// Overflowed reports whether the subscription lost frames because its
// consumer could not keep up.
func (s *Subscription) Overflowed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overflowed
}

// Close ends the subscription; it is safe to call more than once.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.frames, s.notify = true, nil, nil
	s.mu.Unlock()
	s.hub.unsubscribe(s)
}
