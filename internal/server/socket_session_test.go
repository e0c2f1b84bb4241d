package server

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// heldSessions counts session lookups and, once held, makes them wait
// until released: a session check that is in flight when its socket goes.
type heldSessions struct {
	responder.Auth
	lookups atomic.Int64

	mu      sync.Mutex
	hold    bool
	entered chan struct{} // a held lookup has started
	release chan struct{}
}

func (h *heldSessions) SessionByToken(ctx context.Context, token string) (*responder.Session, error) {
	h.lookups.Add(1)
	h.mu.Lock()
	hold := h.hold
	h.hold = false // only the first lookup after arming waits
	h.mu.Unlock()
	if hold {
		close(h.entered)
		<-h.release
	}
	return h.Auth.SessionByToken(ctx, token)
}

// TestClosedSocketStopsCheckingItsSession: a client that leaves while its
// socket's session check runs leaves nothing behind that checks again.
func TestClosedSocketStopsCheckingItsSession(t *testing.T) {
	t.Parallel()
	held := &heldSessions{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(c *envConfig) {
		c.deps.SessionCheckInterval = 5 * time.Millisecond
		c.authStore = func(a responder.Auth) responder.Auth { held.Auth = a; return held }
	})
	ctx := testCtx(t)
	u := e.newUser("Ada")
	c := e.mustDial(ctx, u.withCookie(), "")
	readFrame(ctx, t, c)

	held.mu.Lock()
	held.hold = true
	held.mu.Unlock()
	select {
	case <-held.entered:
	case <-ctx.Done():
		t.Fatal("no session check started")
	}
	c.CloseNow()
	// The socket has finished once its subscription is gone.
	for e.hub.Stats().Subscribers != 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the socket never finished")
		case <-time.After(time.Millisecond):
		}
	}
	before := held.lookups.Load()
	close(held.release)
	// Forty check intervals: a re-armed timer would have looked up again.
	time.Sleep(200 * time.Millisecond)
	if n := held.lookups.Load() - before; n != 0 {
		t.Errorf("%d session lookups after the socket finished, want 0", n)
	}
}
