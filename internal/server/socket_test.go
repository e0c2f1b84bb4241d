package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/astra-app/astra/internal/responder"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSocketInitHoldsTheLatest25OldestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	u, other := e.newUser("Ada"), e.newUser("Grace")
	var want []responder.Event
	for i := range 30 {
		want = append(want, e.event(u.ID, fmt.Sprint("e", i)))
		e.event(other.ID, "not yours")
	}
	meta := &responder.Event{UserID: u.ID, Role: responder.RoleUser, Content: "with metadata", DedupeKey: "k-meta",
		Metadata: map[string]any{"mood": "curious"}}
	if _, err := e.store.AppendEvent(ctx, meta); err != nil {
		t.Fatal(err)
	}
	want = append(want, *meta)
	want = want[len(want)-initEvents:]

	c := e.mustDial(ctx, u.withCookie(), "")
	f := readFrame(ctx, t, c)
	if f.Type != "messages:init" {
		t.Fatalf("first frame %s", f.raw)
	}
	got := f.events(t)
	if len(got) != initEvents {
		t.Fatalf("init has %d events, want %d", len(got), initEvents)
	}
	for i, g := range got {
		w := want[i]
		if g.ID != w.ID || g.Content != w.Content || g.Role != string(w.Role) || g.CreatedAt != isoTime(w.CreatedAt) {
			t.Errorf("init[%d] = %+v, want %+v", i, g, w)
		}
	}
	if got[len(got)-1].Metadata["mood"] != "curious" {
		t.Errorf("metadata lost: %+v", got[len(got)-1])
	}
	if !strings.Contains(string(f.raw), `"metadata":null`) {
		t.Errorf("an event without metadata must carry metadata:null: %s", f.raw)
	}
}

func TestSocketAppendsHeartbeatsAndErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	u, other := e.newUser("Ada"), e.newUser("Grace")
	tab1 := e.mustDial(ctx, u.withCookie(), "")
	tab2 := e.mustDial(ctx, u.withCookie(), "")
	for _, c := range []*websocket.Conn{tab1, tab2} {
		if f := readFrame(ctx, t, c); f.Type != "messages:init" || string(f.Data) != "[]" {
			t.Fatalf("init %s, want an empty list", f.raw)
		}
	}

	e.event(other.ID, "not for Ada")
	ev := e.event(u.ID, "hello Ada")
	e.hub.PublishEvent(ev) // a feed delivering it again: still one frame
	for _, c := range []*websocket.Conn{tab1, tab2} {
		f := readFrame(ctx, t, c)
		if f.Type != "messages:append" {
			t.Fatalf("got %s, want messages:append", f.raw)
		}
		if g := f.event(t); g.ID != ev.ID || g.Content != "hello Ada" || g.Role != "assistant" {
			t.Errorf("append %+v", g)
		}
	}

	before := time.Now().UnixMilli()
	writeJSON(ctx, t, tab1, map[string]string{"type": "heartbeat"})
	f := readFrame(ctx, t, tab1)
	if f.Type != "heartbeat" || f.TS < before || string(f.raw) != fmt.Sprintf(`{"type":"heartbeat","ts":%d}`, f.TS) {
		t.Errorf("heartbeat answer %s", f.raw)
	}
	// The second tab got no heartbeat and no duplicate: the next frame it
	// reads is the next event.
	ev2 := e.event(u.ID, "second")
	if f := readFrame(ctx, t, tab2); f.event(t).ID != ev2.ID {
		t.Errorf("tab2 next frame %s, want the second event", f.raw)
	}

	for _, in := range []string{`nope`, `{"type":"dance"}`} {
		if err := tab1.Write(ctx, websocket.MessageText, []byte(in)); err != nil {
			t.Fatal(err)
		}
		if f := readFrame(ctx, t, tab1); f.Type == "messages:append" {
			continue // the second event, sent to both tabs
		} else if f.Type != "error" || f.Error == "" {
			t.Errorf("after %s got %s, want an error frame", in, f.raw)
		}
	}

	e.hub.PublishTransient(u.ID, map[string]any{"type": "messages:delta", "data": "tok"})
	for {
		f := readFrame(ctx, t, tab1)
		if f.Type == "messages:delta" {
			break
		}
	}
}

// TestSocketResumeHasNoGapsAndNoDuplicates reconnects several times while
// events are being published, resuming with ?after= or with the resume
// message, and checks the client ends up with every event exactly once,
// in order.
func TestSocketResumeHasNoGapsAndNoDuplicates(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"query", "message"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testResume(t, mode)
		})
	}
}

func testResume(t *testing.T, mode string) {
	e := newEnv(t)
	ctx := testCtx(t)
	u := e.newUser("Ada")
	for i := range 5 {
		e.event(u.ID, fmt.Sprint("old", i))
	}

	const burst = 300
	var (
		mu        sync.Mutex
		published []string
		wg        sync.WaitGroup
	)
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		for i := range burst {
			ev := e.event(u.ID, fmt.Sprint("burst", i))
			mu.Lock()
			published = append(published, ev.ID)
			mu.Unlock()
		}
	})

	c := e.mustDial(ctx, u.withCookie(), "")
	var seen []string
	for _, ev := range readFrame(ctx, t, c).events(t) {
		seen = append(seen, ev.ID)
	}
	close(start)

	readSome := func(c *websocket.Conn, n int) {
		for range n {
			f := readFrame(ctx, t, c)
			if f.Type != "messages:append" {
				t.Fatalf("got %s, want appends", f.raw)
			}
			seen = append(seen, f.event(t).ID)
		}
	}
	// Read a little, drop the connection, come back with the last id seen.
	for range 6 {
		readSome(c, 20)
		c.CloseNow()
		last := seen[len(seen)-1]
		if mode == "query" {
			c = e.mustDial(ctx, u.withCookie(), "?after="+last)
			continue
		}
		c = e.mustDial(ctx, u.withCookie(), "")
		if f := readFrame(ctx, t, c); f.Type != "messages:init" {
			t.Fatalf("got %s, want init", f.raw) // a resuming client ignores it
		}
		writeJSON(ctx, t, c, map[string]string{"type": "resume", "after": last})
		for { // live frames sent before the server read the resume are dropped
			f := readFrame(ctx, t, c)
			if f.Type == "messages:resume" {
				if !strings.Contains(string(f.raw), last) {
					t.Fatalf("resume marker %s does not name %s", f.raw, last)
				}
				break
			}
		}
	}
	wg.Wait()
	all, err := e.store.UserEventsAfter(ctx, u.ID, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, 0, len(all))
	for _, ev := range all {
		want = append(want, ev.ID)
	}
	for len(seen) < len(want) {
		readSome(c, 1)
	}

	count := map[string]int{}
	for _, id := range seen {
		count[id]++
	}
	for _, id := range want {
		if count[id] != 1 {
			t.Errorf("event %s received %d times", id, count[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("received %d events, the store has %d", len(seen), len(want))
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("events out of order; first difference at %d", firstDiff(seen, want))
	}
	// And nothing more is coming.
	writeJSON(ctx, t, c, map[string]string{"type": "heartbeat"})
	if f := readFrame(ctx, t, c); f.Type != "heartbeat" {
		t.Errorf("extra frame after the burst: %s", f.raw)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSocketUnknownResumeIDGetsAnErrorThenInit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	u, other := e.newUser("Ada"), e.newUser("Grace")
	mine := e.event(u.ID, "mine")
	theirs := e.event(other.ID, "theirs")
	for _, after := range []string{responder.NewID(), "not-an-id", theirs.ID} {
		c := e.mustDial(ctx, u.withCookie(), "?after="+after)
		if f := readFrame(ctx, t, c); f.Type != "error" || f.Error != "Unknown event id" {
			t.Errorf("after=%s: first frame %s, want the error", after, f.raw)
		}
		f := readFrame(ctx, t, c)
		if evs := f.events(t); f.Type != "messages:init" || len(evs) != 1 || evs[0].ID != mine.ID {
			t.Errorf("after=%s: then %s, want init with the user's one event", after, f.raw)
		}
	}
	// Nothing missed: no frames, then live.
	c := e.mustDial(ctx, u.withCookie(), "?after="+mine.ID)
	next := e.event(u.ID, "next")
	if f := readFrame(ctx, t, c); f.Type != "messages:append" || f.event(t).ID != next.ID {
		t.Errorf("resume at the newest: %s, want the next live event", f.raw)
	}
}

func TestSlowSocketIsClosedWhileAFastOneReceives(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.hub.Buffer = 8
		c.deps.WriteTimeout = 500 * time.Millisecond
		c.smallBuffers = true
		// No pacing: the fast client reads each frame before the next is
		// published, so paced writes would stretch the run past the
		// write timeout, which then closes the slow socket before its
		// queue overflows.
		c.deps.SocketFlush = -1
	})
	ctx := testCtx(t)
	u := e.newUser("Ada")
	slow := e.mustDial(ctx, u.withCookie(), "")
	fast := e.mustDial(ctx, u.withCookie(), "")
	for _, c := range []*websocket.Conn{slow, fast} {
		readFrame(ctx, t, c) // init
	}

	// The slow client reads nothing more. Big frames fill the kernel's
	// buffers, then its subscription's; the fast one reads every frame
	// before the next is published, so its queue never holds more than one.
	big := strings.Repeat("x", 16<<10)
	const n = 200 // 3 MiB: far more than the slow client's buffers hold
	for i := range n {
		ev := responder.Event{ID: responder.NewID(), UserID: u.ID, Role: responder.RoleAssistant, Content: big, CreatedAt: time.Now()}
		e.hub.PublishEvent(ev)
		f, err := tryReadFrame(ctx, fast)
		if err != nil {
			t.Fatalf("fast client, frame %d: %v", i, err)
		}
		if f.Type != "messages:append" || f.event(t).ID != ev.ID {
			t.Fatalf("fast client, frame %d: %.80s", i, f.raw)
		}
	}
	if st := e.hub.Stats(); st.Overflows != 1 {
		t.Errorf("overflows = %d, want exactly the slow one", st.Overflows)
	}
	// The slow client finds its connection closed after what was buffered.
	var got int
	for {
		_, _, err := slow.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("the slow socket was never closed")
			}
			if s := websocket.CloseStatus(err); s != -1 && s != websocket.StatusTryAgainLater {
				t.Errorf("closed with %v, want 1013 or a dropped connection", s)
			}
			break
		}
		got++
	}
	if got >= n {
		t.Errorf("slow client got all %d frames; it was not cut off", got)
	}
	// The fast one still works.
	ev := e.event(u.ID, "still here")
	if f := readFrame(ctx, t, fast); f.event(t).ID != ev.ID {
		t.Errorf("fast client after the slow one left: %s", f.raw)
	}
}

func TestSocketClosesWhenTheSessionIsRevokedOrExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.deps.SessionCheckInterval = 20 * time.Millisecond })
	ctx := testCtx(t)
	u := e.newUser("Ada")
	c := e.mustDial(ctx, u.withCookie(), "")
	readFrame(ctx, t, c)
	if err := e.store.DeleteSession(ctx, u.session.Token); err != nil {
		t.Fatal(err)
	}
	_, err := tryReadFrame(ctx, c)
	if s := websocket.CloseStatus(err); s != websocket.StatusPolicyViolation {
		t.Errorf("after revoking the session: %v (status %v), want close 1008", err, s)
	}

	// A session that runs out while connected: checked at its expiry even
	// when the interval is longer.
	e2 := newEnv(t, func(c *envConfig) {
		c.deps.SessionCheckInterval = time.Hour
		// No sliding refresh, which would otherwise extend it at connect.
		c.auth.ExpiresIn, c.auth.UpdateAge = time.Hour, 2*time.Hour
	})
	u2 := e2.newUser("Grace")
	short := e2.newSession(u2.ID, time.Now().Add(1500*time.Millisecond))
	c2 := e2.mustDial(ctx, cookieFor(short.Token), "")
	readFrame(ctx, t, c2)
	_, err = tryReadFrame(ctx, c2)
	if s := websocket.CloseStatus(err); s != websocket.StatusPolicyViolation {
		t.Errorf("after the session expired: %v (status %v), want close 1008", err, s)
	}
}

func TestSocketClosesOnShutdown(t *testing.T) {
	t.Parallel()
	shutdown, stop := context.WithCancel(context.Background())
	e := newEnv(t, func(c *envConfig) { c.deps.Context = shutdown })
	ctx := testCtx(t)
	u := e.newUser("Ada")
	c := e.mustDial(ctx, u.withCookie(), "")
	readFrame(ctx, t, c)
	stop()
	_, err := tryReadFrame(ctx, c)
	if s := websocket.CloseStatus(err); s != websocket.StatusGoingAway {
		t.Errorf("on shutdown: %v, want close 1001", err)
	}
}

func TestSocketRefusesPlainHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.newUser("Ada")
	r := e.do(http.MethodGet, "/api/responder/socket", u.withCookie(), nil)
	if r.status != http.StatusUpgradeRequired || string(r.body) != "{\"error\":\"Expected a WebSocket upgrade\"}\n" {
		t.Errorf("a plain GET to the socket got %d %s", r.status, r.body)
	}
}
