package httpserve

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The cap works by eviction rather than by blocking Accept: a blocked
// Accept leaves new connections (a health probe among them) waiting in the
// kernel's backlog behind an attacker's idle ones until some time out.
// Instead, at the cap the oldest idle keep-alive connection is closed to
// make room (an idle connection has no request in flight, so closing it
// loses nothing: a client reconnects), then the oldest connection still
// waiting for its first request line, and only when every connection is
// busy with a request is the newcomer answered 503 and closed. The cap sits
// below the file-descriptor limit, so Accept itself keeps working and the
// store, the engine's outbound calls and the kernel's reserve keep their
// descriptors.

// newGrace is how long a just-accepted connection is safe from eviction:
// long enough for an honest client to send its request.
const newGrace = time.Second

type limiter struct {
	max int
	log *slog.Logger

	mu    sync.Mutex
	conns map[*trackedConn]struct{}

	refused atomic.Int64
}

func newLimiter(max int, log *slog.Logger) *limiter {
	return &limiter{max: max, log: log, conns: make(map[*trackedConn]struct{})}
}

// trackedConn is an accepted connection and what the server last said of it.
type trackedConn struct {
	net.Conn
	l        *limiter
	once     sync.Once
	state    http.ConnState // guarded by l.mu
	since    time.Time      // when it entered state; guarded by l.mu
	accepted time.Time
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return err
}

func (l *limiter) connState(nc net.Conn, st http.ConnState) {
	c, ok := nc.(*trackedConn)
	if !ok {
		return
	}
	if st == http.StateClosed {
		_ = c.Close()
		return
	}
	// A hijacked connection (the WebSocket) still holds its descriptor: it
	// stays counted, never evicted, until its own Close.
	l.mu.Lock()
	c.state, c.since = st, time.Now()
	l.mu.Unlock()
}

// admit registers c, making room by eviction when at the cap; false means
// there is no room and c must be refused.
func (l *limiter) admit(c *trackedConn) bool {
	now := time.Now()
	l.mu.Lock()
	var victim *trackedConn
	if len(l.conns) >= l.max {
		victim = l.victim(now)
		if victim == nil {
			l.mu.Unlock()
			return false
		}
		delete(l.conns, victim) // counted out now; its Close follows
	}
	c.state, c.since, c.accepted = http.StateNew, now, now
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	if victim != nil {
		_ = victim.Conn.Close()
		victim.once.Do(func() {})
	}
	return true
}

// victim picks the oldest idle connection, else the oldest one that has
// not sent a request within newGrace; nil when every connection is busy.
func (l *limiter) victim(now time.Time) *trackedConn {
	var idle, slow *trackedConn
	for c := range l.conns {
		switch {
		case c.state == http.StateIdle:
			if idle == nil || c.since.Before(idle.since) {
				idle = c
			}
		case c.state == http.StateNew && now.Sub(c.accepted) > newGrace:
			if slow == nil || c.accepted.Before(slow.accepted) {
				slow = c
			}
		}
	}
	if idle != nil {
		return idle
	}
	return slow
}

// open is the number of connections counted against the cap.
func (l *limiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

type limitListener struct {
	net.Listener
	l *limiter
}

const busyResponse = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 44\r\n\r\n{\"error\":\"Too many connections, try again\"}\n"

func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		nc, err := ll.Listener.Accept()
		if err != nil {
			return nil, err // http.Server backs off on temporary errors (EMFILE)
		}
		c := &trackedConn{Conn: nc, l: ll.l}
		if ll.l.admit(c) {
			return c, nil
		}
		if n := ll.l.refused.Add(1); n == 1 || n%1000 == 0 {
			ll.l.log.Warn("connection cap reached, every connection busy: refusing new ones with 503 (ASTRA_MAX_CONNECTIONS)",
				"max", ll.l.max, "refused_total", n)
		}
		// Answer on the side so a slow peer cannot stall Accept; read the
		// request's head first (briefly) so clients take the 503 as the
		// answer to their request rather than as a broken connection.
		go func() {
			_ = nc.SetDeadline(time.Now().Add(time.Second))
			skipHead(nc)
			_, _ = nc.Write([]byte(busyResponse))
			_ = nc.Close()
		}()
	}
}

// skipHead reads up to the blank line that ends a request's head, at most
// 8 KiB.
func skipHead(c net.Conn) {
	r := bufio.NewReaderSize(io.LimitReader(c, 8<<10), 1024)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil || len(bytes.TrimRight(line, "\r\n")) == 0 {
			return
		}
	}
}
