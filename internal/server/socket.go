package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/stream"
)

// Socket limits.
const (
	initEvents       = 25      // events in messages:init, as the original
	resumePage       = 200     // events per UserEventsAfter query on resume
	maxResume        = 1000    // beyond this many missed events, start fresh with init
	maxClientMessage = 4 << 10 // a client frame (heartbeat, resume) is tiny
)

// Frames the socket sends.
type (
	eventJSON struct {
		ID        string         `json:"id"`
		Role      responder.Role `json:"role"`
		Content   string         `json:"content"`
		CreatedAt string         `json:"createdAt"`
		Metadata  map[string]any `json:"metadata"`
	}
	initFrame struct {
		Type string      `json:"type"` // messages:init
		Data []eventJSON `json:"data"`
	}
	appendFrame struct {
		Type string    `json:"type"` // messages:append
		Data eventJSON `json:"data"`
	}
	// deltaFrame is a reply's text while it is produced (an Astra
	// addition): Delta holds Count consecutive fragments from Index on.
	deltaFrame struct {
		Type string    `json:"type"` // messages:delta
		Data deltaJSON `json:"data"`
	}
	deltaJSON struct {
		OutboxID    string `json:"outboxId"`
		ExecutionID string `json:"executionId"`
		Delta       string `json:"delta"`
		Index       int    `json:"index"`
		Count       int    `json:"count"`
	}
	// outboxFrame is the state of the person's messages (an Astra
	// addition): each row as GET /api/responder/messages lists it.
	outboxFrame struct {
		Type string       `json:"type"` // messages:outbox
		Data []outboxJSON `json:"data"`
	}
	// outboxJSON is a row as GET /api/responder/messages lists it, plus
	// updatedAt, which orders a row's states (a client keeps the newest).
	outboxJSON struct {
		messageJSON
		UpdatedAt string `json:"updatedAt"`
	}
	resumeFrame struct {
		Type  string `json:"type"` // messages:resume
		After string `json:"after"`
	}
	heartbeatFrame struct {
		Type string `json:"type"` // heartbeat
		TS   int64  `json:"ts"`
	}
	errorFrame struct {
		Type  string `json:"type"` // error
		Error string `json:"error"`
	}
	// clientFrame is anything a client sends.
	clientFrame struct {
		Type  string `json:"type"`
		After string `json:"after"`
	}
)

func toOutboxJSON(m *responder.Message) outboxJSON {
	return outboxJSON{toMessageJSON(m), isoTime(m.UpdatedAt)}
}

func toEventJSON(e *responder.Event) eventJSON {
	return eventJSON{ID: e.ID, Role: e.Role, Content: e.Content, CreatedAt: isoTime(e.CreatedAt), Metadata: e.Metadata}
}

// tooManySockets is the close reason of a socket pushed out by the cap.
const tooManySockets = "too many connections for this user; closed the oldest"

// register adds c to its user's sockets and returns the oldest one when
// that puts the user over the cap: a page reloaded in a loop, or a script,
// cannot hold sockets (and their goroutines and buffers) without bound,
// while a person's newest tab always works.
func (s *server) register(c *socket) (oldest *socket) {
	s.socketsMu.Lock()
	defer s.socketsMu.Unlock()
	list := append(s.sockets[c.userID], c)
	if len(list) > s.SocketsPerUser {
		oldest = list[0]
		list = slices.Delete(list, 0, 1)
	}
	s.sockets[c.userID] = list
	return oldest
}

// unregister removes c from its user's sockets; removing twice is harmless.
func (s *server) unregister(c *socket) {
	s.socketsMu.Lock()
	defer s.socketsMu.Unlock()
	list := s.sockets[c.userID]
	if i := slices.Index(list, c); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(s.sockets, c.userID)
	} else {
		s.sockets[c.userID] = list
	}
}

// handleSocket upgrades to the live stream. Everything that can be refused
// is refused before the upgrade, as JSON: 403 for a foreign Origin
// (checkOrigin), 401 without a valid session.
func (s *server) handleSocket(w http.ResponseWriter, r *http.Request) {
	token, ok := s.Sessions.Token(r)
	if !ok {
		s.writeError(w, r, responder.Errorf(responder.EUNAUTHORIZED, "Unauthorized"))
		return
	}
	id, err := s.Sessions.Authenticate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		encode(w, http.StatusUpgradeRequired, errorBody{Error: "Expected a WebSocket upgrade"})
		return
	}
	after := r.URL.Query().Get("after")
	sb := &smallBuffers{ResponseWriter: w}
	ws, err := websocket.Accept(sb, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // checkOrigin already ran, with our own rules
	})
	if err != nil {
		return // Accept has answered the client
	}
	ws.SetReadLimit(maxClientMessage)
	c := &socket{
		srv:       s,
		ws:        ws,
		userID:    id.User.ID,
		token:     token,
		expiresAt: id.Session.ExpiresAt,
		out:       sb.out,
	}
	c.serve(after)
}

// socket is one open connection. Its only long-lived goroutine is the one
// reading from the client (coder/websocket needs a reader for control
// frames anyway); live frames are written by a goroutine started when
// frames arrive and gone when they are sent, pings and session checks run
// from timers. An idle socket costs a goroutine, its buffers and this.
type socket struct {
	srv       *server
	ws        *websocket.Conn
	out       *corkWriter // the connection under ws's buffer, for batched writes
	userID    string
	token     string
	expiresAt time.Time

	// wmu orders the socket's frames: history (init, resume) and live
	// frames never interleave. It guards the fields below it.
	wmu sync.Mutex
	sub *stream.Subscription
	// The newest event sent, in the user's order: an event at or before
	// it is not sent again, however late a feed delivers it. lastID is
	// that event (or, after a resume with nothing missed, the client's
	// cursor, whose position is then not known yet: known is false).
	last   responder.Position
	lastID string
	known  bool

	pending      atomic.Int32                  // wake-ups not yet handled by a writer; >0 while one runs
	lastFlush    time.Time                     // when the writer last wrote live frames; only the writer touches it
	hurry        atomic.Pointer[chan struct{}] // set while the writer paces: a send ends the wait
	closing      atomic.Bool
	pingTimer    *time.Timer
	authTimer    *time.Timer
	stopShutdown func() bool

	// tmu orders re-arming a timer against finish: a timer callback still
	// running when the socket finishes must not schedule another round,
	// or the socket stays reachable (and queries the store) until the
	// session expires.
	tmu      sync.Mutex
	finished bool
}

// serve sends the history, then hands the connection to a new goroutine
// that reads from the client. The request's goroutine, whose stack grew
// while it went through the router and queried the store, ends here, so
// an idle socket keeps only a small stack.
func (c *socket) serve(after string) {
	ctx := context.Background()
	if oldest := c.srv.register(c); oldest != nil {
		c.srv.log.Info("socket cap reached; closing the user's oldest", "user", c.userID, "cap", c.srv.SocketsPerUser)
		go oldest.close(websocket.StatusPolicyViolation, tooManySockets)
	}
	c.wmu.Lock()
	err := c.replay(ctx, after)
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		c.finish()
		return
	}
	c.stopShutdown = context.AfterFunc(c.srv.Context, func() { c.close(websocket.StatusGoingAway, "Server shutting down") })
	// Under tmu: a timer may fire (and re-arm itself) before AfterFunc
	// has even returned.
	c.tmu.Lock()
	c.pingTimer = time.AfterFunc(c.srv.PingInterval, c.ping)
	c.authTimer = time.AfterFunc(c.nextAuthCheck(), c.checkSession)
	c.tmu.Unlock()
	go c.readLoop(ctx)
}

func (c *socket) readLoop(ctx context.Context) {
	defer c.finish()
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return
		}
		if err := c.handleClient(ctx, data); err != nil {
			c.fail(err)
			return
		}
	}
}

// finish releases everything the socket holds.
func (c *socket) finish() {
	c.srv.unregister(c)
	c.tmu.Lock()
	c.finished = true
	if c.pingTimer != nil {
		c.pingTimer.Stop()
		c.authTimer.Stop()
	}
	c.tmu.Unlock()
	if c.stopShutdown != nil {
		c.stopShutdown()
	}
	c.wmu.Lock()
	if c.sub != nil {
		c.sub.Close()
	}
	c.wmu.Unlock()
	c.ws.CloseNow()
}

func (c *socket) handleClient(ctx context.Context, data []byte) error {
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return c.write(ctx, errorFrame{"error", "Invalid JSON"})
	}
	switch f.Type {
	case "heartbeat":
		return c.write(ctx, heartbeatFrame{"heartbeat", time.Now().UnixMilli()})
	case "resume":
		// Live frames may have been sent since the client wrote this, so
		// the replay starts with a marker: the client drops what it got
		// between sending resume and the marker; after the marker come
		// the events after f.After, in order, then live ones, once each.
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.sub.Close() // what it held is in the history replay() reads next
		if err := c.writeLocked(ctx, resumeFrame{"messages:resume", f.After}); err != nil {
			return err
		}
		return c.replay(ctx, f.After)
	default:
		return c.write(ctx, errorFrame{"error", "Unknown message type"})
	}
}

// replay subscribes, then sends history: the latest events as
// messages:init, or, with after, every event after it as messages:append.
// Subscribing first means an event committed meanwhile is either in the
// history or in the subscription, never in neither; ids sent from history
// are skipped when they come live. Called with wmu held.
func (c *socket) replay(ctx context.Context, after string) error {
	c.sub = c.srv.Hub.Subscribe(c.userID)
	var history []responder.Event
	fresh := after == ""
	if !fresh {
		var err error
		history, err = c.eventsAfter(ctx, after)
		switch {
		case responder.IsNotFound(err):
			if err := c.writeLocked(ctx, errorFrame{"error", "Unknown event id"}); err != nil {
				return err
			}
			fresh = true
		case errors.Is(err, errTooFarBehind):
			fresh = true // the client's list is replaced by init
		case err != nil:
			return err
		}
	}
	if fresh {
		var err error
		if history, err = c.srv.Store.LatestEvents(ctx, c.userID, initEvents); err != nil {
			return err
		}
		data := make([]eventJSON, len(history))
		for i := range history {
			data[i] = toEventJSON(&history[i])
		}
		if err := c.writeLocked(ctx, initFrame{"messages:init", data}); err != nil {
			return err
		}
	} else {
		for i := range history {
			if err := c.writeAppend(ctx, &history[i]); err != nil {
				return err
			}
		}
	}
	// Then the state of the person's latest messages: a tab that was away
	// (or is new) learns what it missed without polling.
	rows, err := c.srv.Store.UserMessages(ctx, c.userID, listMessagesLimit)
	if err != nil {
		return err
	}
	out := outboxFrame{"messages:outbox", make([]outboxJSON, len(rows))}
	for i := range rows {
		out.Data[i] = toOutboxJSON(&rows[i])
	}
	if err := c.writeLocked(ctx, out); err != nil {
		return err
	}
	switch {
	case len(history) > 0:
		c.sent(&history[len(history)-1])
		c.sub.Advance(c.last)
	case fresh: // the user has no events: everything is new
		c.last, c.lastID, c.known = responder.Position{}, "", true
	default: // nothing missed since after, whose position we did not read
		c.last, c.lastID, c.known = responder.Position{}, after, false
	}
	sub := c.sub
	sub.OnReady(func() { c.wake(sub) })
	return nil
}

var errTooFarBehind = errors.New("too many missed events")

func (c *socket) eventsAfter(ctx context.Context, after string) ([]responder.Event, error) {
	if after != "" && !responder.ValidID(after) {
		return nil, responder.Errorf(responder.ENOTFOUND, "Unknown event id")
	}
	var all []responder.Event
	for {
		page, err := c.srv.Store.UserEventsAfter(ctx, c.userID, after, resumePage)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(all) > maxResume {
			return nil, errTooFarBehind
		}
		if len(page) < resumePage {
			return all, nil
		}
		after = page[len(page)-1].ID
	}
}

// wake is the subscription's OnReady: it starts a writer unless one is
// running, and closes a socket whose subscription overflowed at once,
// even while a writer is stuck on the slow client.
func (c *socket) wake(sub *stream.Subscription) {
	if sub.Overflowed() {
		c.srv.log.Warn("socket too slow, closing", "user", c.userID)
		go c.close(websocket.StatusTryAgainLater, "Too slow")
		return
	}
	if c.pending.Add(1) == 1 {
		go c.flush()
		return
	}
	if h := c.hurry.Load(); h != nil && sub.Crowded() {
		select {
		case *h <- struct{}{}:
		default:
		}
	}
}

// pace waits out the rest of the flush interval since the last write,
// unless the queue fills up meanwhile (the hub wakes the socket again at
// half full, and wake hurries the writer).
func (c *socket) pace() {
	wait := c.srv.SocketFlush - time.Since(c.lastFlush)
	if wait <= 0 {
		return
	}
	ch := make(chan struct{}, 1)
	c.hurry.Store(&ch)
	defer c.hurry.Store(nil)
	c.wmu.Lock() // a resume replaces sub
	crowded := c.sub != nil && c.sub.Crowded()
	c.wmu.Unlock()
	if crowded {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ch:
	}
}

// flush writes live frames until none are left. The pending counter makes
// sure a wake-up that lands while it is finishing is not lost.
//
// Writes are paced: frames that arrive within SocketFlush of the last write
// wait for the rest of it, then go out together, a reply's consecutive
// deltas merged, in one write to the connection. A frame arriving after a
// quiet spell goes out at once.
func (c *socket) flush() {
	ctx := context.Background()
	for {
		c.pace()
		n := c.pending.Load()
		c.wmu.Lock()
		frames, over := c.sub.Drain()
		var err error
		if !over {
			c.out.cork(c.srv.WriteTimeout)
			err = c.writeLive(ctx, stream.Merge(frames))
			if uerr := c.out.uncork(); err == nil {
				err = uerr
			}
			c.lastFlush = time.Now()
		}
		c.wmu.Unlock()
		if over {
			return // wake is closing the socket
		}
		if err != nil {
			c.ws.CloseNow() // a dead or stuck client
			return
		}
		if c.pending.Add(-n) == 0 {
			return
		}
	}
}

// writeLive sends live frames. Called with wmu held.
func (c *socket) writeLive(ctx context.Context, frames []stream.Frame) error {
	for _, f := range frames {
		var err error
		if f.Event != nil {
			err = c.writeEvent(ctx, f)
		} else {
			err = c.writeFrame(ctx, f)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeEvent sends a live event unless it was sent already. An event that
// is not the next one of the user's numbers (a feed delivered it before
// one it holds back, or the hub dropped one as out of order) first brings
// the events between from the store: a user's numbers are visible in
// order, so the store has them. Called with wmu held.
func (c *socket) writeEvent(ctx context.Context, f stream.Frame) error {
	e := f.Event
	p := e.Position()
	if !c.known && e.ID == c.lastID {
		// The event the client resumed after, repeated by a feed: it
		// tells where the client is, and is not sent again.
		c.last, c.known = p, true
		return nil
	}
	if c.known && p.Compare(c.last) <= 0 {
		return nil
	}
	if !c.known || (p.Seq > 0 && p.Seq != c.last.Seq+1) {
		if err := c.catchUp(ctx, p); err != nil {
			return err
		}
		if c.known && p.Compare(c.last) <= 0 {
			return nil
		}
	}
	wctx, end := c.srv.observeSocketWrite(ctx, e)
	err := c.writeFrame(wctx, f)
	end(err)
	if err != nil {
		return err
	}
	c.sent(e)
	return nil
}

// encodeFrame is a live frame's wire form; stream.Frame.Encoded calls it
// once per publish, for every socket the publish reached.
func encodeFrame(f stream.Frame) ([]byte, error) {
	switch {
	case f.Event != nil:
		return json.Marshal(appendFrame{"messages:append", toEventJSON(f.Event)})
	case f.Outbox != nil:
		return json.Marshal(outboxFrame{"messages:outbox", []outboxJSON{toOutboxJSON(f.Outbox)}})
	case f.Delta != nil:
		d := f.Delta
		return json.Marshal(deltaFrame{"messages:delta", deltaJSON{
			OutboxID: d.OutboxID, ExecutionID: d.ExecutionID, Delta: d.Text, Index: d.Index, Count: max(d.Count, 1)}})
	default:
		return json.Marshal(f.Data)
	}
}

// writeFrame sends a live frame's shared bytes. Called with wmu held.
func (c *socket) writeFrame(ctx context.Context, f stream.Frame) error {
	b, err := f.Encoded(encodeFrame)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.srv.WriteTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// catchUp sends the events after the last one sent up to upTo, from the
// store. Not beyond: an event committed since is published after its
// commit, and whatever its writer published before it (a reply's deltas
// before its answer) is still queued behind the frame being written, so
// sending it now would put it ahead of them. Called with wmu held.
func (c *socket) catchUp(ctx context.Context, upTo responder.Position) error {
	rctx, cancel := context.WithTimeout(ctx, c.srv.WriteTimeout)
	evs, err := c.eventsAfter(rctx, c.lastID)
	cancel()
	if err != nil {
		return fmt.Errorf("read the events after %s: %w", c.lastID, err)
	}
	for i := range evs {
		if evs[i].Position().Compare(upTo) > 0 {
			break
		}
		if err := c.writeAppend(ctx, &evs[i]); err != nil {
			return err
		}
		c.sent(&evs[i])
	}
	return nil
}

// sent records e as the newest event sent. Called with wmu held.
func (c *socket) sent(e *responder.Event) {
	c.last, c.lastID, c.known = e.Position(), e.ID, true
}

// writeAppend sends one event as messages:append. Called with wmu held.
func (c *socket) writeAppend(ctx context.Context, e *responder.Event) error {
	ctx, end := c.srv.observeSocketWrite(ctx, e)
	err := c.writeLocked(ctx, appendFrame{"messages:append", toEventJSON(e)})
	end(err)
	return err
}

// write sends one frame outside the history/live order (heartbeats, errors).
func (c *socket) write(ctx context.Context, v any) error { return c.writeLocked(ctx, v) }

// writeLocked sends one frame; coder/websocket serialises whole messages,
// wmu only orders them.
func (c *socket) writeLocked(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.srv.WriteTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// fail reports an error to the client as an error frame, then closes.
func (c *socket) fail(err error) {
	msg := responder.ErrorMessage(err)
	if responder.ErrorCode(err) == responder.EINTERNAL {
		c.srv.log.Error("socket failed", "user", c.userID, "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = c.writeLocked(ctx, errorFrame{"error", msg})
	cancel()
	c.close(websocket.StatusInternalError, msg)
}

// close sends a close frame and drops the connection. coder/websocket
// bounds the handshake (5s per step); a client too stuck to take the frame
// is cut off then, or sooner when a pending write times out.
func (c *socket) close(code websocket.StatusCode, reason string) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	_ = c.ws.Close(code, reason)
}

func (c *socket) ping() {
	if c.closing.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.PingInterval)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil {
		c.ws.CloseNow()
		return
	}
	c.rearm(&c.pingTimer, c.srv.PingInterval)
}

// rearm schedules t again unless the socket has finished.
func (c *socket) rearm(t **time.Timer, d time.Duration) {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	if !c.finished {
		(*t).Reset(d)
	}
}

// checkSession closes the socket (1008) once its session is revoked or
// expired; a store that cannot answer keeps the socket open.
func (c *socket) checkSession() {
	if c.closing.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := c.srv.Sessions.Check(ctx, c.token)
	switch {
	case responder.ErrorCode(err) == responder.EUNAUTHORIZED:
		c.close(websocket.StatusPolicyViolation, "Session expired")
		return
	case err != nil:
		c.srv.log.Warn("socket session check", "user", c.userID, "err", err)
	default:
		c.expiresAt = id.Session.ExpiresAt // only this timer's goroutine touches it after start
	}
	c.rearm(&c.authTimer, c.nextAuthCheck())
}

// nextAuthCheck is the check interval, or sooner when the session expires first.
func (c *socket) nextAuthCheck() time.Duration {
	d := c.srv.SessionCheckInterval
	if until := time.Until(c.expiresAt) + 10*time.Millisecond; until < d {
		d = max(until, 10*time.Millisecond)
	}
	return d
}

// Buffer sizes of a socket's connection. net/http hands a hijacked
// connection over with 4 KiB read and 4 KiB write buffers; a socket reads
// tiny client frames and writes one frame at a time, so smaller buffers
// cost a syscall now and then on a large frame and save 7 KiB per idle socket.
const (
	socketReadBuffer  = 512
	socketWriteBuffer = 1024
)

// smallBuffers is a ResponseWriter whose Hijack swaps net/http's buffers
// for small ones, keeping any bytes the client already sent.
//
// Those bytes must sit in the new reader's buffer, not behind it:
// coder/websocket keeps only what Buffered() reports and Resets the reader
// onto the bare connection, so bytes left in an underlying io.MultiReader
// were dropped, and a frame the client wrote right after the handshake lost
// its head ("unexpected rsv bits", 1002).
//
// Writes go through a corkWriter, so the socket can hold the frames of one
// flush and send them in one write.
type smallBuffers struct {
	http.ResponseWriter
	out *corkWriter // set by Hijack
}

func (w *smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	var br *bufio.Reader
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(socketReadBuffer, n))
		// Pull the early bytes into br's buffer: a bytes.Reader fills a
		// read of at least its length at once, so conn is not read here.
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	} else {
		br = bufio.NewReaderSize(conn, socketReadBuffer)
	}
	w.out = &corkWriter{conn: conn}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(w.out, socketWriteBuffer)), nil
}

// corkWriter passes writes to the connection, except while corked: then it
// collects them (whole WebSocket frames, as coder/websocket flushes each)
// and uncork sends them in one write. Control frames written meanwhile by
// other goroutines (pong, ping, close) join the batch in their order. Its
// buffer comes from a pool and goes back after each batch, so an idle
// socket holds none.
type corkWriter struct {
	conn    net.Conn
	mu      sync.Mutex
	corked  bool
	timeout time.Duration
	buf     *[]byte
}

var corkBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// corkMax bounds what a corked writer holds: a batch larger than this
// goes out in several writes, so a flush of big frames costs no more memory
// than this.
const corkMax = 32 << 10

func (w *corkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.corked {
		return w.conn.Write(p)
	}
	if w.buf != nil && len(*w.buf)+len(p) > corkMax {
		if err := w.send(); err != nil {
			return 0, err
		}
	}
	if len(p) > corkMax {
		return w.conn.Write(p) // the batch so far is out: order is kept
	}
	if w.buf == nil {
		w.buf = corkBuffers.Get().(*[]byte)
	}
	*w.buf = append(*w.buf, p...)
	return len(p), nil
}

// cork makes writes collect until uncork; a write to the connection
// meanwhile (a batch over corkMax) must be done within timeout.
func (w *corkWriter) cork(timeout time.Duration) {
	w.mu.Lock()
	w.corked, w.timeout = true, timeout
	w.mu.Unlock()
}

// uncork sends what was collected.
func (w *corkWriter) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corked = false
	return w.send()
}

// send writes the collected bytes, within the timeout, and gives the
// buffer back. Called with mu held.
func (w *corkWriter) send() error {
	if w.buf == nil {
		return nil
	}
	b := w.buf
	w.buf = nil
	defer func() {
		*b = (*b)[:0]
		corkBuffers.Put(b)
	}()
	if len(*b) == 0 {
		return nil
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	_, err := w.conn.Write(*b)
	_ = w.conn.SetWriteDeadline(time.Time{})
	return err
}

// headerHasToken reports whether a comma-separated header lists token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
