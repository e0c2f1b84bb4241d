package server

import (
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestSocketCapClosesTheUsersOldest: one user opening more sockets than
// the cap loses the oldest, with a close saying why; the newest work, and
// another user is not affected.
func TestSocketCapClosesTheUsersOldest(t *testing.T) {
	t.Parallel()
	const limit = 3
	e := newEnv(t, func(c *envConfig) { c.deps.SocketsPerUser = limit })
	ctx := testCtx(t)
	u, other := e.newUser("Ada"), e.newUser("Grace")
	theirs := e.mustDial(ctx, other.withCookie(), "")
	readFrame(ctx, t, theirs)
	var mine []*websocket.Conn
	for range limit + 2 {
		c := e.mustDial(ctx, u.withCookie(), "")
		readFrame(ctx, t, c)
		mine = append(mine, c)
	}
	for i, c := range mine[:2] {
		_, err := tryReadFrame(ctx, c)
		var ce websocket.CloseError
		if !asCloseError(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != tooManySockets {
			t.Errorf("socket %d: %v, want close 1008 %q", i, err, tooManySockets)
		}
	}
	ev := e.event(u.ID, "to every open tab")
	for i, c := range mine[2:] {
		if f := readFrame(ctx, t, c); f.Type != "messages:append" || f.event(t).ID != ev.ID {
			t.Errorf("socket %d: %s, want the event", i+2, f.raw)
		}
	}
	ev2 := e.event(other.ID, "still here")
	if f := readFrame(ctx, t, theirs); f.event(t).ID != ev2.ID {
		t.Errorf("the other user's socket: %s", f.raw)
	}
	// Closed sockets leave the count: a new one closes the next oldest only.
	mine[2].CloseNow()
	for e.hub.Stats().Subscribers != limit { // Grace's and Ada's last two
		if ctx.Err() != nil {
			t.Fatal("the closed socket never went")
		}
		time.Sleep(time.Millisecond)
	}
	c := e.mustDial(ctx, u.withCookie(), "")
	readFrame(ctx, t, c)
	ev3 := e.event(u.ID, "after a close")
	for i, c := range []*websocket.Conn{mine[3], mine[4], c} {
		if f := readFrame(ctx, t, c); f.event(t).ID != ev3.ID {
			t.Errorf("socket %d after a close: %s", i, f.raw)
		}
	}
}

func asCloseError(err error, ce *websocket.CloseError) bool {
	return errors.As(err, ce)
}
