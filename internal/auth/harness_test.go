package auth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
)

const (
	testSecret       = "test-secret-0123456789abcdef0123456789"
	testClientID     = "astra-test-client.apps.googleusercontent.com"
	testClientSecret = "test-client-secret"
)

// clock is a settable Now shared by Sessions and Google in a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is the auth routes served over HTTP on a real SQLite store, with
// an in-process OIDC provider standing in for Google when asked.
type harness struct {
	t        *testing.T
	dbPath   string
	store    responder.Store
	sessions *Sessions
	clock    *clock
	provider *testProvider
	google   *Google
	srv      *httptest.Server
	client   *http.Client // keeps cookies, does not follow redirects
}

type harnessOpts struct {
	devLogin bool
	google   bool
	// callbackPath overrides the Google redirect URI's path.
	callbackPath string
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), dbPath: filepath.Join(t.TempDir(), "astra.db")}
	st, err := sqlite.Open(t.Context(), h.dbPath)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	h.store = st
	h.sessions = New(st, Options{Secret: testSecret, Now: h.clock.Now})

	var handler http.Handler
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.srv.Close)

	deps := RoutesDeps{Store: st, Sessions: h.sessions, DevLogin: o.devLogin,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if o.google {
		h.provider = newTestProvider(t, testClientID, testClientSecret)
		cb := o.callbackPath
		if cb == "" {
			cb = "/api/auth/google/callback"
		}
		h.google, err = NewGoogle(GoogleOptions{
			ClientID: testClientID, ClientSecret: testClientSecret,
			RedirectURI: h.srv.URL + cb, Issuer: h.provider.issuer(),
			Birthday: true, Prompt: "select_account consent", Secret: testSecret, Now: h.clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		deps.Google = h.google
	}
	r := chi.NewRouter()
	Mount(r, deps)
	handler = r

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return h
}

// do sends a request with the harness's cookies and returns the response
// with its body read.
func (h *harness) do(method, path, contentType, body string) (*http.Response, string) {
	h.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = h.srv.URL + path
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return res, string(b)
}

// sessionCookie returns the session cookie the jar holds for the app, or "".
func (h *harness) sessionCookie() string {
	u, _ := url.Parse(h.srv.URL + "/")
	for _, c := range h.client.Jar.Cookies(u) {
		if c.Name == h.sessions.CookieName() {
			return c.Value
		}
	}
	return ""
}

// rowCounts counts the rows of every table of the SQLite file, so a test can
// prove a failed sign-in wrote nothing, whatever the schema looks like.
func (h *harness) rowCounts() map[string]int {
	h.t.Helper()
	db := h.store.(*sqlite.Store).DB()
	rows, err := db.QueryContext(h.t.Context(), `SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		h.t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			h.t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	if len(names) == 0 {
		h.t.Fatal("no tables found in the store")
	}
	out := map[string]int{}
	for _, n := range names {
		var c int
		if err := db.QueryRowContext(h.t.Context(), `SELECT count(*) FROM "`+n+`"`).Scan(&c); err != nil {
			h.t.Fatal(err)
		}
		out[n] = c
	}
	return out
}

// cookiesNamed returns the Set-Cookie headers of res with the given name.
func cookiesNamed(res *http.Response, name string) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}
