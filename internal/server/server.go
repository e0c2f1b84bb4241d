// Package server is Astra's HTTP API: the responder routes the original
// Next.js app served (same paths, shapes and error texts, so its dashboard
// works unchanged), the live socket, and the health endpoints. Other
// handlers (auth, dashboard, engine, metrics) are mounted from Deps.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/stream"
)

// Defaults for Deps.
const (
	DefaultSessionCheckInterval = 60 * time.Second
	DefaultPingInterval         = 30 * time.Second
	DefaultWriteTimeout         = 10 * time.Second
	DefaultMaxMessageBytes      = 64 << 10
	DefaultSocketsPerUser       = 16
	DefaultSocketFlush          = 20 * time.Millisecond
)

// Deps is everything the API needs; nil optional handlers are simply not
// mounted (their paths answer 404).
type Deps struct {
	Store    responder.Store
	Sessions *auth.Sessions
	Hub      *stream.Hub
	Logger   *slog.Logger

	// AllowedOrigins are the browser origins ("https://app.example.com")
	// allowed to call the API, sign in and out and open the socket; a
	// request carrying another Origin is refused with 403. Their hosts are
	// the Host headers served; another Host is refused with 421. When the
	// connection arrived on a loopback address, http://localhost,
	// 127.0.0.1 and [::1] with that port are allowed as well.
	AllowedOrigins []string

	// AuthRoutes is mounted at /api/auth and sees the full path.
	AuthRoutes http.Handler
	// Dashboard is mounted at / (everything no other route claims).
	Dashboard http.Handler
	// Engine is the embedded Julep engine, mounted under /julep with that
	// prefix stripped, so a Julep client's base URL is <server>/julep.
	Engine  http.Handler
	Metrics http.Handler

	// Ready reports readiness for /readyz; nil means Store.Ping.
	Ready func(context.Context) error
	// Console is the operators' console API (/api/console); nil: not mounted.
	Console *Console
	// Readiness, when set, answers /readyz instead of Ready (a report
	// naming each dependency checked).
	Readiness http.Handler
	// Execution returns an execution and its transitions for the
	// dashboard's panel; nil answers with the execution id only.
	Execution func(ctx context.Context, executionID string) (any, error)
	// OnEnqueue is called after a message is committed (the dispatcher's
	// wake-up); it must not block.
	OnEnqueue func(responder.Message)

	// Context, when done, closes every open socket with 1001 (going away):
	// hijacked connections outlive http.Server.Shutdown otherwise.
	Context context.Context

	SessionCheckInterval time.Duration // socket session re-check, default 60s
	PingInterval         time.Duration // socket pings, default 30s
	WriteTimeout         time.Duration // one socket write, default 10s
	MaxMessageBytes      int64         // POST /api/responder/messages body, default 64 KiB

	// MessagesPerMinute limits POST /api/responder/messages per user (a
	// token bucket with bursts of MessageBurst); 0 turns the limit off.
	MessagesPerMinute int
	MessageBurst      int
	// Now is the clock of the rate limit (tests); default time.Now.
	Now func() time.Time
	// SocketsPerUser caps one user's open sockets on this instance; a new
	// socket beyond it closes the user's oldest. Default 16.
	SocketsPerUser int
	// SocketFlush paces a socket's writes: frames arriving within it of
	// the socket's last write are sent together when it has passed (one
	// write, a reply's deltas merged). Default 20ms; negative sends at once.
	SocketFlush time.Duration
}

type server struct {
	Deps
	log   *slog.Logger
	site  site
	limit *userLimiter

	socketsMu sync.Mutex
	sockets   map[string][]*socket // each user's open sockets, oldest first
}

// New returns the API's handler.
func New(deps Deps) http.Handler {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.SessionCheckInterval <= 0 {
		deps.SessionCheckInterval = DefaultSessionCheckInterval
	}
	if deps.PingInterval <= 0 {
		deps.PingInterval = DefaultPingInterval
	}
	if deps.WriteTimeout <= 0 {
		deps.WriteTimeout = DefaultWriteTimeout
	}
	if deps.MaxMessageBytes <= 0 {
		deps.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if deps.SocketsPerUser <= 0 {
		deps.SocketsPerUser = DefaultSocketsPerUser
	}
	if deps.SocketFlush == 0 {
		deps.SocketFlush = DefaultSocketFlush
	}
	if deps.Context == nil {
		deps.Context = context.Background()
	}
	if deps.Ready == nil {
		deps.Ready = deps.Store.Ping
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &server{Deps: deps, log: deps.Logger, site: newSite(deps.AllowedOrigins),
		limit: newUserLimiter(deps.MessagesPerMinute, deps.MessageBurst), sockets: make(map[string][]*socket)}
	return s.routes()
}
