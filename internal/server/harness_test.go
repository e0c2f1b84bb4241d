package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/stream"
)

const (
	testSecret = "test-secret-0123456789abcdef0123456789"
	testOrigin = "http://dashboard.test"
)

// env is one test's whole server: a real SQLite file, real sessions, a hub
// and the handler behind httptest.
type env struct {
	t        testing.TB
	store    *sqlite.Store
	sessions *auth.Sessions
	hub      *stream.Hub
	srv      *httptest.Server
	enqueued chan responder.Message
}

// envConfig is what a test may change before its env starts.
type envConfig struct {
	deps *Deps
	hub  *stream.Options
	auth *auth.Options
	// devLogin mounts the auth routes with dev login on.
	devLogin bool
	// authStore, when set, wraps the store the sessions read (to count or
	// hold their lookups).
	authStore func(responder.Auth) responder.Auth
	// smallBuffers shrinks the kernel send buffer of every accepted
	// connection, so a client that stops reading stalls the server fast.
	smallBuffers bool
}

func newEnv(t testing.TB, configure ...func(*envConfig)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, store: st, enqueued: make(chan responder.Message, 1024)}
	deps := Deps{
		Store:          st,
		AllowedOrigins: []string{testOrigin},
		OnEnqueue: func(m responder.Message) {
			select {
			case e.enqueued <- m:
			default:
			}
		},
	}
	var hubOpts stream.Options
	authOpts := auth.Options{Secret: testSecret}
	cfg := envConfig{deps: &deps, hub: &hubOpts, auth: &authOpts}
	for _, f := range configure {
		f(&cfg)
	}
	var authStore responder.Auth = st
	if cfg.authStore != nil {
		authStore = cfg.authStore(st)
	}
	e.sessions = auth.New(authStore, authOpts)
	deps.Sessions = e.sessions
	e.hub = stream.NewHub(hubOpts)
	deps.Hub = e.hub
	if cfg.devLogin {
		deps.AuthRoutes = auth.Routes(auth.RoutesDeps{Store: st, Sessions: e.sessions, DevLogin: true})
	}
	e.srv = httptest.NewUnstartedServer(New(deps))
	if cfg.smallBuffers {
		e.srv.Listener = smallBufferListener{e.srv.Listener}
	}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

// user is a signed-in person: their record, session and cookie.
type user struct {
	*responder.User
	session *responder.Session
	cookie  string // the Cookie header value
}

func (e *env) newUser(name string) *user {
	e.t.Helper()
	ctx := context.Background()
	u := &responder.User{Name: name, Email: strings.ToLower(name) + "@example.com"}
	if err := e.store.CreateUser(ctx, u); err != nil {
		e.t.Fatalf("create user: %v", err)
	}
	return &user{User: u, session: e.newSession(u.ID, time.Now().Add(24*time.Hour))}
}

func (e *env) newSession(userID string, expires time.Time) *responder.Session {
	e.t.Helper()
	s := &responder.Session{Token: "tok" + responder.NewID(), UserID: userID, ExpiresAt: expires}
	if err := e.store.CreateSession(context.Background(), s); err != nil {
		e.t.Fatalf("create session: %v", err)
	}
	return s
}

func (u *user) withCookie() string { return cookieFor(u.session.Token) }

func cookieFor(token string) string {
	return "better-auth.session_token=" + auth.Sign(testSecret, token)
}

// event stores an event for u and publishes it, as the dispatcher does.
func (e *env) event(userID, content string) responder.Event {
	e.t.Helper()
	ev := &responder.Event{UserID: userID, Role: responder.RoleAssistant, Content: content, DedupeKey: responder.NewID()}
	if _, err := e.store.AppendEvent(context.Background(), ev); err != nil {
		e.t.Fatalf("append event: %v", err)
	}
	e.hub.PublishEvent(*ev)
	return *ev
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d %q is not JSON: %v", r.status, r.body, err)
	}
}

func (e *env) do(method, path, cookie string, body []byte, header ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1] // Go sends req.Host, not a Host header
			continue
		}
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

// dial opens the socket; on a refused upgrade it returns the response.
func (e *env) dial(ctx context.Context, cookie, query string, header ...string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/responder/socket" + query
	c, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if c != nil {
		c.SetReadLimit(1 << 24)
	}
	return c, res, err
}

func (e *env) mustDial(ctx context.Context, cookie, query string) *websocket.Conn {
	e.t.Helper()
	c, _, err := e.dial(ctx, cookie, query)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { c.CloseNow() })
	return c
}

// frame is any frame the server sends.
type frame struct {
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
	Error string          `json:"error"`
	TS    int64           `json:"ts"`
	raw   []byte
}

type wireEvent struct {
	ID        string         `json:"id"`
	Role      string         `json:"role"`
	Content   string         `json:"content"`
	CreatedAt string         `json:"createdAt"`
	Metadata  map[string]any `json:"metadata"`
}

func readFrame(ctx context.Context, t testing.TB, c *websocket.Conn) frame {
	t.Helper()
	f, err := tryReadFrame(ctx, c)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// tryReadFrame reads the next frame other than messages:outbox (the
// message states, which most tests do not follow; readAnyFrame reads them).
func tryReadFrame(ctx context.Context, c *websocket.Conn) (frame, error) {
	for {
		f, err := readAnyFrame(ctx, c)
		if err != nil || f.Type != "messages:outbox" {
			return f, err
		}
	}
}

func readAnyFrame(ctx context.Context, c *websocket.Conn) (frame, error) {
	_, b, err := c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, err
	}
	f.raw = b
	return f, nil
}

func (f frame) events(t testing.TB) []wireEvent {
	t.Helper()
	var out []wireEvent
	if err := json.Unmarshal(f.Data, &out); err != nil {
		t.Fatalf("%s data %s: %v", f.Type, f.Data, err)
	}
	return out
}

func (f frame) event(t testing.TB) wireEvent {
	t.Helper()
	var out wireEvent
	if err := json.Unmarshal(f.Data, &out); err != nil {
		t.Fatalf("%s data %s: %v", f.Type, f.Data, err)
	}
	return out
}

func writeJSON(ctx context.Context, t testing.TB, c *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10) // fixed size: no autotuning up to megabytes
	}
	return c, err
}
