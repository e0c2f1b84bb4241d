// Package stream fans conversation events out to the sockets of the user
// they belong to: one hub per instance, fed by the in-process publisher and
// by one feed (a poller or a change stream), never one feed per socket.
package stream

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// Rows, when set, is read for the state of an outbox row whose event
	// a subscription took, and that state is published (PublishOutbox).
	// An instance whose rows are worked by a dispatcher in another process
	// sets it: that dispatcher's state changes reach it as their events.
	Rows responder.Outbox
}

// Frame is one thing a subscription delivers: a stored event, a reply's
// text fragment, or a transient frame (not stored, sent to the socket as is).
type Frame struct {
	// Event is a stored event; shared by every subscriber, so read-only.
	Event *responder.Event
	// Delta is a fragment of a reply being produced.
	Delta *Delta
	// Outbox is the current state of one of the user's outbox rows (their
	// message: pending, processing, delivered, error).
	Outbox *responder.Message
	// Data is any other transient frame when Event, Delta and Outbox are nil.
	Data any

	// enc is the frame's wire encoding, made once by the first consumer
	// that needs it and shared by every subscription the publish reached.
	enc *encoding
}

// Delta is a fragment of a reply's text, relayed while it is produced.
// Index numbers the fragments of one execution; Count is how many
// consecutive fragments Text holds (1 unless merged, see Merge).
type Delta struct {
	OutboxID    string
	ExecutionID string
	Text        string
	Index       int
	Count       int
}

type encoding struct {
	once sync.Once
	b    []byte
	err  error
}

// Encoded returns the frame's bytes: encode's result, computed once per
// publish however many sockets send it.
func (f Frame) Encoded(encode func(Frame) ([]byte, error)) ([]byte, error) {
	if f.enc == nil {
		return encode(f)
	}
	f.enc.once.Do(func() { f.enc.b, f.enc.err = encode(f) })
	return f.enc.b, f.enc.err
}

// Merge joins runs of consecutive deltas of one reply into one delta each
// (its Text the run's texts in order, Index the first's, Count their
// number), so a consumer that fell behind sends a reply's backlog as one
// frame. Other frames, and their order, are kept. A merged frame has its
// own encoding (its bytes are not shared).
func Merge(frames []Frame) []Frame {
	out := frames[:0:0]
	for i := 0; i < len(frames); i++ {
		f := frames[i]
		if f.Delta == nil {
			out = append(out, f)
			continue
		}
		j := i + 1
		next := f.Delta.Index + max(f.Delta.Count, 1)
		for j < len(frames) && frames[j].Delta != nil && frames[j].Delta.OutboxID == f.Delta.OutboxID &&
			frames[j].Delta.ExecutionID == f.Delta.ExecutionID && frames[j].Delta.Index == next {
			next += max(frames[j].Delta.Count, 1)
			j++
		}
		if j == i+1 {
			out = append(out, f)
			continue
		}
		var b strings.Builder
		for _, g := range frames[i:j] {
			b.WriteString(g.Delta.Text)
		}
		m := *f.Delta
		m.Text, m.Count = b.String(), next-f.Delta.Index
		out = append(out, Frame{Delta: &m})
		i = j - 1
	}
	return out
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
	rows   responder.Outbox

	mu    sync.RWMutex
	users map[string][]*Subscription

	// replies marks, per execution, the next delta index to send and
	// whether the reply's answer went out: a delta can come twice (relayed
	// in process and read back from the store by the feed, or re-read in
	// the feed's window), and none may follow the answer.
	rmu     sync.Mutex
	replies map[string]*replyMark
	swept   time.Time

	subscribers atomic.Int64
	published   atomic.Int64
	duplicates  atomic.Int64
	overflows   atomic.Int64
	// deltaRepeats counts deltas dropped as sent already (or late).
	deltaRepeats atomic.Int64
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
		rows:   opts.Rows,
		users:  make(map[string][]*Subscription),
	}
}

type replyMark struct {
	next     int  // deltas below it were sent
	answered bool // the reply's answer (or error) event went out
	at       time.Time
}

// replyMarkKeep is how long a reply's mark is kept after its last delta
// or answer: longer than any feed re-reads (its window) or the store keeps
// a delta (responder.DeltaKeep), so no repeat outlives its mark.
const replyMarkKeep = 2 * time.Minute

// takeDelta reports whether d is new for its reply (not sent before, its
// answer not out yet) and marks it sent.
func (h *Hub) takeDelta(d Delta) bool {
	if d.ExecutionID == "" {
		return true
	}
	now := time.Now()
	h.rmu.Lock()
	defer h.rmu.Unlock()
	h.sweepMarks(now)
	m := h.replies[d.ExecutionID]
	if m == nil {
		m = &replyMark{}
		h.replies[d.ExecutionID] = m
	}
	if m.answered || d.Index < m.next {
		return false
	}
	m.next, m.at = d.Index+max(d.Count, 1), now
	return true
}

// answered marks e's reply answered when e ends one: later deltas of its
// execution are dropped.
func (h *Hub) answered(e *responder.Event) {
	if !EndsReply(*e) {
		return
	}
	now := time.Now()
	h.rmu.Lock()
	defer h.rmu.Unlock()
	h.sweepMarks(now)
	m := h.replies[e.ExecutionID]
	if m == nil {
		m = &replyMark{}
		h.replies[e.ExecutionID] = m
	}
	m.answered, m.at = true, now
}

// sweepMarks drops old marks, at most every few seconds. h.rmu is held.
func (h *Hub) sweepMarks(now time.Time) {
	if h.replies == nil {
		h.replies = make(map[string]*replyMark)
	}
	if now.Sub(h.swept) < 10*time.Second {
		return
	}
	h.swept = now
	for id, m := range h.replies {
		if now.Sub(m.at) > replyMarkKeep {
			delete(h.replies, id)
		}
	}
}

// Stats are the hub's counters, for metrics.
type Stats struct {
	Subscribers int64 // open subscriptions
	Published   int64 // events fanned out
	Duplicates  int64 // events a subscription dropped as already taken
	Overflows   int64 // subscriptions that could not keep up
	// DeltaRepeats are deltas dropped as sent already or after their answer.
	DeltaRepeats int64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Subscribers:  h.subscribers.Load(),
		Published:    h.published.Load(),
		Duplicates:   h.duplicates.Load(),
		Overflows:    h.overflows.Load(),
		DeltaRepeats: h.deltaRepeats.Load(),
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
	h.answered(&e)
	if h.fanOut(e.UserID, Frame{Event: &e, enc: &encoding{}}) && h.rows != nil && e.OutboxID != "" {
		go h.readRow(e)
	}
}

// PublishOutbox sends the state of one of the user's outbox rows to their
// subscriptions (not stored, not deduplicated: a state is idempotent).
func (h *Hub) PublishOutbox(m responder.Message) {
	h.fanOut(m.UserID, Frame{Outbox: &m, enc: &encoding{}})
}

// PublishDelta sends a reply's text fragment to userID's subscriptions.
// Like a transient frame it is not stored nor replayed. A fragment of an
// execution is sent once, in index order: one at or below an index sent
// already, or after the reply's answer event was published, is dropped
// (it reports whether d was sent).
func (h *Hub) PublishDelta(userID string, d Delta) bool {
	if d.Count <= 0 {
		d.Count = 1
	}
	if !h.takeDelta(d) {
		h.deltaRepeats.Add(1)
		return false
	}
	h.fanOut(userID, Frame{Delta: &d, enc: &encoding{}})
	return true
}

// PublishTransient sends a frame that is not stored (e.g. token deltas) to
// userID's subscriptions. It is not deduplicated and not replayed on resume.
func (h *Hub) PublishTransient(userID string, frame any) {
	h.fanOut(userID, Frame{Data: frame, enc: &encoding{}})
}

// fanOut pushes f to userID's subscriptions and reports whether one took
// it (queued it as new).
func (h *Hub) fanOut(userID string, f Frame) (taken bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, s := range h.users[userID] {
		switch s.push(f) {
		case pushQueued:
			taken = true
		case pushOverflowed:
			h.overflows.Add(1)
			h.log.Warn("stream subscriber overflowed", "user", userID, "buffer", h.buffer)
		case pushDuplicate:
			h.duplicates.Add(1)
		}
	}
	return taken
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
		// The consumer is woken when the queue stops being empty, and
		// again when it is half full: one that paces its writes then
		// hurries instead of overflowing.
		if n := len(s.frames); n > 1 && n != s.max/2 {
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

// Len is how many frames are waiting.
func (s *Subscription) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

// Crowded reports whether the queue is half full or more: its consumer
// should drain it now rather than wait for more.
func (s *Subscription) Crowded() bool { return s.Len() >= s.max/2 }

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

// readRow publishes the state of the outbox row e belongs to. A
// dispatcher appends a row's answer (or its error) before it marks the row,
// so while the row does not show the outcome yet it is read again, a few
// times, with backoff.
func (h *Hub) readRow(e responder.Event) {
	outcome := e.Role == responder.RoleAssistant || e.Metadata["error"] == true
	delay := 50 * time.Millisecond
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m, err := h.rows.Message(ctx, e.OutboxID)
		cancel()
		switch {
		case err != nil:
			if !responder.IsNotFound(err) {
				h.log.Warn("read outbox row for the stream", "outbox_id", e.OutboxID, "err", err)
			}
			return
		case m.UserID != e.UserID:
			return
		case !outcome || m.Status.Terminal() || try >= 6:
			h.PublishOutbox(*m)
			return
		}
		time.Sleep(delay)
		delay *= 2
	}
}
