package dispatch_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// errFlaky is an ordinary store failure (a timeout, a failover): not a
// conflict, not "not found".
var errFlaky = errors.New("injected: server selection timeout")

// faultStore wraps a real store, failing chosen calls with errFlaky and
// recording what the dispatcher asked of it.
type faultStore struct {
	responder.Store

	failDeliver atomic.Int32 // fail the next n Deliver calls
	failSummary atomic.Int32 // fail the next n SetResponderSummary calls
	failExtend  atomic.Bool  // fail every ExtendLease while set
	// slowProgress delays storing still-working events, ignoring the
	// caller's context, as a stalled write does.
	slowProgress time.Duration
	// onClaim, when set, sees every row a Claim returned.
	onClaim func(m *responder.Message)

	delivers atomic.Int32 // Deliver calls, failed or not
	blobs    atomic.Int32 // blobs stored
	mu       sync.Mutex
	claims   []responder.Message
}

func (s *faultStore) Claim(ctx context.Context, owner string, lease time.Duration, maxPerUser int) (*responder.Message, error) {
	m, err := s.Store.Claim(ctx, owner, lease, maxPerUser)
	if m != nil {
		s.mu.Lock()
		s.claims = append(s.claims, *m)
		s.mu.Unlock()
		if s.onClaim != nil {
			s.onClaim(m)
		}
	}
	return m, err
}

// claimsOf returns the claims of row id, in order.
func (s *faultStore) claimsOf(id string) []responder.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []responder.Message
	for _, m := range s.claims {
		if m.ID == id {
			out = append(out, m)
		}
	}
	return out
}

func (s *faultStore) ExtendLease(ctx context.Context, id, owner string, lease time.Duration) error {
	if s.failExtend.Load() {
		return errFlaky
	}
	return s.Store.ExtendLease(ctx, id, owner, lease)
}

func (s *faultStore) AppendEvent(ctx context.Context, e *responder.Event) (bool, error) {
	if s.slowProgress > 0 && strings.HasSuffix(e.DedupeKey, ":still-working") {
		time.Sleep(s.slowProgress)
	}
	return s.Store.AppendEvent(ctx, e)
}

func (s *faultStore) PutBlob(ctx context.Context, b *responder.Blob) error {
	err := s.Store.PutBlob(ctx, b)
	if err == nil {
		s.blobs.Add(1)
	}
	return err
}

func (s *faultStore) Deliver(ctx context.Context, id, owner string) error {
	s.delivers.Add(1)
	if takeOne(&s.failDeliver) {
		return errFlaky
	}
	return s.Store.Deliver(ctx, id, owner)
}

func (s *faultStore) SetResponderSummary(ctx context.Context, userID, summary string, at time.Time) error {
	if takeOne(&s.failSummary) {
		return errFlaky
	}
	return s.Store.SetResponderSummary(ctx, userID, summary, at)
}

// takeOne decrements n when it is positive and reports whether it did.
func takeOne(n *atomic.Int32) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}
