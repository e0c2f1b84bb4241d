// Package httpserve runs a public http.Server the way an exposed listener
// needs: every request bounded in time, idle keep-alives closed, and
// accepted connections capped below the file-descriptor limit so a flood of
// idle or slow connections cannot starve the process (or its health probe).
package httpserve

import (
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults for Options.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
)

// Options bound a server's connections. Zero values take the defaults.
type Options struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a body
	// trickled in byte by byte is cut off. Streaming routes lift it with
	// NoDeadlines.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends nothing more.
	IdleTimeout time.Duration
	// MaxConnections caps accepted connections; 0 derives it from the
	// file-descriptor limit (see DefaultMaxConnections).
	MaxConnections int
	Logger         *slog.Logger
}

// Server is an http.Server with its connection cap.
type Server struct {
	*http.Server
	limit *limiter
}

// New returns a server for h. Serve it with Serve(ln): the cap works on
// the listener Serve wraps.
func New(h http.Handler, o Options) *Server {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := newLimiter(o.MaxConnections, o.Logger)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		// No WriteTimeout: it would cut streams, and a slow reader of a
		// normal response is bounded by the kernel's buffers and IdleTimeout.
		IdleTimeout: o.IdleTimeout,
		ConnState:   l.connState,
		ErrorLog:    slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	return &Server{Server: srv, limit: l}
}

// MaxConnections is the cap in force.
func (s *Server) MaxConnections() int { return s.limit.max }

// Serve accepts connections on ln, within the cap, until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	return s.Server.Serve(&limitListener{Listener: ln, l: s.limit})
}
