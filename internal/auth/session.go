package auth

import (
	"context"
	"crypto/rand"
	"net/http"
	"time"

	"github.com/astra-app/astra/internal/clientip"
	"github.com/astra-app/astra/internal/responder"
)

// Options configures sessions. Zero durations take Better Auth's defaults as
// the original app set them (7 days, refreshed after 12 hours).
type Options struct {
	Secret       string
	CookiePrefix string // "better-auth" unless advanced.cookiePrefix was changed
	Secure       bool   // the app URL is https: cookies get the __Secure- prefix
	// Proxies are the reverse proxies whose X-Forwarded-For names the
	// client recorded on a session; by default no one's is believed.
	Proxies   clientip.Proxies
	ExpiresIn time.Duration
	UpdateAge time.Duration
	Now       func() time.Time
}

// Identity is the caller of a request: the session and its user.
type Identity struct {
	User    *responder.User
	Session *responder.Session
}

// Sessions reads, refreshes, mints and ends sessions.
type Sessions struct {
	store responder.Auth
	opt   Options
}

// New returns Sessions over the auth records of store.
func New(store responder.Auth, opt Options) *Sessions {
	if opt.CookiePrefix == "" {
		opt.CookiePrefix = "better-auth"
	}
	if opt.ExpiresIn <= 0 {
		opt.ExpiresIn = 7 * 24 * time.Hour
	}
	if opt.UpdateAge <= 0 {
		opt.UpdateAge = 12 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Sessions{store: store, opt: opt}
}

// CookieName is the session cookie's name (with __Secure- on https).
func (s *Sessions) CookieName() string { return s.name("session_token") }

func (s *Sessions) name(suffix string) string {
	n := s.opt.CookiePrefix + "." + suffix
	if s.opt.Secure {
		n = "__Secure-" + n
	}
	return n
}

var errUnauthorized = responder.Errorf(responder.EUNAUTHORIZED, "Unauthorized")

// Token returns the verified session token a request's cookie carries. Both
// the plain and the __Secure- names are read, since a proxy may terminate TLS.
func (s *Sessions) Token(r *http.Request) (string, bool) {
	for _, n := range []string{s.opt.CookiePrefix + ".session_token", "__Secure-" + s.opt.CookiePrefix + ".session_token"} {
		c, err := r.Cookie(n)
		if err != nil {
			continue
		}
		if tok, ok := Verify(s.opt.Secret, c.Value); ok {
			return tok, true
		}
	}
	return "", false
}

// Authenticate returns the caller of r, or EUNAUTHORIZED. When the session is
// due for its sliding refresh it is extended and the cookie re-sent on w.
func (s *Sessions) Authenticate(w http.ResponseWriter, r *http.Request) (*Identity, error) {
	tok, ok := s.Token(r)
	if !ok {
		return nil, errUnauthorized
	}
	id, err := s.Check(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	now := s.opt.Now()
	if !id.Session.ExpiresAt.Add(-s.opt.ExpiresIn).Add(s.opt.UpdateAge).After(now) {
		exp := now.Add(s.opt.ExpiresIn)
		if err := s.store.ExtendSession(r.Context(), tok, exp); err != nil {
			return nil, err
		}
		id.Session.ExpiresAt, id.Session.UpdatedAt = exp, now
		if w != nil {
			s.setCookie(w, tok)
		}
	}
	return id, nil
}

// Check looks a session token up and returns its identity; an unknown,
// expired or orphaned session is EUNAUTHORIZED. A socket calls it to notice
// that its session was revoked.
func (s *Sessions) Check(ctx context.Context, token string) (*Identity, error) {
	sess, err := s.store.SessionByToken(ctx, token)
	if err != nil {
		if responder.IsNotFound(err) {
			return nil, errUnauthorized
		}
		return nil, err
	}
	if !sess.ExpiresAt.After(s.opt.Now()) {
		return nil, errUnauthorized
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		if responder.IsNotFound(err) {
			return nil, errUnauthorized
		}
		return nil, err
	}
	return &Identity{User: u, Session: sess}, nil
}

// Start mints a Better Auth-shaped session for u and sets its cookie.
func (s *Sessions) Start(ctx context.Context, w http.ResponseWriter, r *http.Request, u *responder.User) (*responder.Session, error) {
	now := s.opt.Now()
	sess := &responder.Session{
		Token:     newToken(),
		UserID:    u.ID,
		ExpiresAt: now.Add(s.opt.ExpiresIn),
		IPAddress: s.opt.Proxies.Of(r),
		UserAgent: r.UserAgent(),
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	s.setCookie(w, sess.Token)
	s.expire(w, "session_data") // a stale cookie cache must not win over the new session
	return sess, nil
}

// End deletes the caller's session (if any) and expires the session cookies.
func (s *Sessions) End(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if tok, ok := s.Token(r); ok {
		if err := s.store.DeleteSession(ctx, tok); err != nil {
			return err
		}
	}
	s.expire(w, "session_token")
	s.expire(w, "session_data")
	return nil
}

func (s *Sessions) setCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.CookieName(),
		Value:    Sign(s.opt.Secret, token),
		Path:     "/",
		MaxAge:   int(s.opt.ExpiresIn / time.Second),
		HttpOnly: true,
		Secure:   s.opt.Secure,
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Sessions) expire(w http.ResponseWriter, suffix string) {
	http.SetCookie(w, &http.Cookie{
		Name: s.name(suffix), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.opt.Secure, SameSite: http.SameSiteLaxMode,
	})
}

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity Require put in ctx, or nil.
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}

// Require lets a request through only with a valid session, putting its
// Identity in the context; otherwise it answers 401 {"error":"Unauthorized"}.
func (s *Sessions) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.Authenticate(w, r)
		if err != nil {
			status := http.StatusUnauthorized
			msg := "Unauthorized"
			if responder.ErrorCode(err) != responder.EUNAUTHORIZED {
				status, msg = http.StatusServiceUnavailable, "Service unavailable"
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":"` + msg + `"}`))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newToken returns 32 characters of [A-Za-z0-9], as Better Auth's tokens are.
func newToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	for i := range b {
		// 256 % 62 != 0, so reject-sample to keep the distribution uniform.
		for b[i] >= 248 {
			var c [1]byte
			_, _ = rand.Read(c[:])
			b[i] = c[0]
		}
		b[i] = tokenAlphabet[int(b[i])%len(tokenAlphabet)]
	}
	return string(b)
}
