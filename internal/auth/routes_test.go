package auth

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

func TestDevLoginOffIs404(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{devLogin: false})
	before := h.rowCounts()
	res, body := h.do("POST", "/api/auth/dev-login", "application/json", `{"email":"a@example.com","name":"A"}`)
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404; body %s", res.StatusCode, body)
	}
	if h.sessionCookie() != "" {
		t.Error("a session cookie was set with dev login off")
	}
	if after := h.rowCounts(); !equalCounts(before, after) {
		t.Errorf("store changed: %v -> %v", before, after)
	}
	res, body = h.do("GET", "/api/auth/providers", "", "")
	if res.StatusCode != 200 || strings.TrimSpace(body) != `{"devLogin":false,"google":false}` {
		t.Errorf("providers: %d %s", res.StatusCode, body)
	}
}

func TestDevLoginCreatesOrFindsUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{devLogin: true})
	ctx := t.Context()

	res, body := h.do("POST", "/api/auth/dev-login", "application/json", `{"email":"  Ada@Example.COM ","name":" Ada "}`)
	if res.StatusCode != 200 {
		t.Fatalf("dev-login: %d %s", res.StatusCode, body)
	}
	var got identityView
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, "token") {
		t.Errorf("response leaks the session token: %s", body)
	}
	u, err := h.store.UserByEmail(ctx, "ada@example.com")
	if err != nil {
		t.Fatalf("user not stored: %v", err)
	}
	if u.Email != "ada@example.com" || u.Name != "Ada" || u.EmailVerified || got.User.ID != u.ID {
		t.Errorf("stored user %+v, response %+v", u, got.User)
	}
	if h.sessionCookie() == "" {
		t.Fatal("no session cookie")
	}
	tok, ok := Verify(testSecret, h.sessionCookie())
	if !ok {
		t.Fatal("session cookie does not verify")
	}
	s, err := h.store.SessionByToken(ctx, tok)
	if err != nil || s.UserID != u.ID || s.ID != got.Session.ID {
		t.Fatalf("session %+v, %v", s, err)
	}

	// Same email, different case: the same user, a new session.
	res, body = h.do("POST", "/api/auth/dev-login", "application/json; charset=utf-8", `{"email":"ADA@example.com"}`)
	if res.StatusCode != 200 {
		t.Fatalf("second dev-login: %d %s", res.StatusCode, body)
	}
	var again identityView
	_ = json.Unmarshal([]byte(body), &again)
	if again.User.ID != u.ID || again.Session.ID == got.Session.ID {
		t.Errorf("second login: user %s session %s (first %s %s)", again.User.ID, again.Session.ID, u.ID, got.Session.ID)
	}

	res, body = h.do("GET", "/api/auth/providers", "", "")
	if strings.TrimSpace(body) != `{"devLogin":true,"google":false}` {
		t.Errorf("providers: %d %s", res.StatusCode, body)
	}
}

func TestDevLoginValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{devLogin: true})
	before := h.rowCounts()
	long := strings.Repeat("x", 101)
	cases := []struct {
		name, ctype, body string
		status            int
		msg               string
	}{
		{"not json", "application/json", `{"email":`, 400, "Invalid JSON"},
		{"form", "application/x-www-form-urlencoded", `email=a@example.com`, 415, "Content-Type must be application/json"},
		{"no email", "application/json", `{"name":"A"}`, 400, "Email is required"},
		{"blank email", "application/json", `{"email":"   "}`, 400, "Email is required"},
		{"no at", "application/json", `{"email":"example.com"}`, 400, "Email must look like name@example.com"},
		{"display name", "application/json", `{"email":"A <a@example.com>"}`, 400, "Email must look like name@example.com"},
		{"two addresses", "application/json", `{"email":"a@example.com, b@example.com"}`, 400, "Email must look like name@example.com"},
		{"email too long", "application/json", `{"email":"` + strings.Repeat("a", 250) + `@example.com"}`, 400, "Email is too long (at most 254 characters)"},
		{"name too long", "application/json", `{"email":"a@example.com","name":"` + long + `"}`, 400, "Name is too long (at most 100 characters)"},
		{"control chars", "application/json", `{"email":"a@example.com","name":"a\u0000b"}`, 400, "Name must not contain control characters"},
		{"email not string", "application/json", `{"email":42}`, 400, "Invalid JSON"},
	}
	for _, c := range cases {
		res, body := h.do("POST", "/api/auth/dev-login", c.ctype, c.body)
		var e errorBody
		_ = json.Unmarshal([]byte(body), &e)
		if res.StatusCode != c.status || e.Error != c.msg {
			t.Errorf("%s: %d %q, want %d %q", c.name, res.StatusCode, e.Error, c.status, c.msg)
		}
	}
	if after := h.rowCounts(); !equalCounts(before, after) {
		t.Errorf("store changed by invalid requests: %v -> %v", before, after)
	}
	// A name of exactly 100 characters (not bytes) is fine.
	res, body := h.do("POST", "/api/auth/dev-login", "application/json", `{"email":"a@example.com","name":"`+strings.Repeat("é", 100)+`"}`)
	if res.StatusCode != 200 {
		t.Errorf("100-rune name: %d %s", res.StatusCode, body)
	}
}

func TestSessionAndSignOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{devLogin: true})

	res, body := h.do("GET", "/api/auth/session", "", "")
	if res.StatusCode != 401 || strings.TrimSpace(body) != `{"error":"Unauthorized"}` {
		t.Fatalf("anonymous session: %d %s", res.StatusCode, body)
	}
	if res, body := h.do("POST", "/api/auth/dev-login", "application/json", `{"email":"s@example.com","name":"S"}`); res.StatusCode != 200 {
		t.Fatalf("dev-login: %d %s", res.StatusCode, body)
	}
	tok, _ := Verify(testSecret, h.sessionCookie())

	res, body = h.do("GET", "/api/auth/session", "", "")
	if res.StatusCode != 200 {
		t.Fatalf("session: %d %s", res.StatusCode, body)
	}
	var raw map[string]map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["user"]["email"] != "s@example.com" || raw["session"]["userId"] != raw["user"]["id"] || raw["session"]["expiresAt"] == nil {
		t.Errorf("session body %s", body)
	}
	if _, ok := raw["session"]["token"]; ok || strings.Contains(body, tok) {
		t.Errorf("session body leaks the token: %s", body)
	}

	res, body = h.do("POST", "/api/auth/sign-out", "", "")
	if res.StatusCode != 200 || strings.TrimSpace(body) != `{"ok":true}` {
		t.Fatalf("sign-out: %d %s", res.StatusCode, body)
	}
	for _, name := range []string{"better-auth.session_token", "better-auth.session_data"} {
		cs := cookiesNamed(res, name)
		if len(cs) != 1 || cs[0].MaxAge >= 0 || cs[0].Path != "/" {
			t.Errorf("sign-out cookie %s: %+v", name, cs)
		}
		if !strings.Contains(strings.Join(res.Header.Values("Set-Cookie"), "\n"), name+"=; Path=/; Max-Age=0") {
			t.Errorf("Set-Cookie %v lacks %s Max-Age=0", res.Header.Values("Set-Cookie"), name)
		}
	}
	if _, err := h.store.SessionByToken(t.Context(), tok); !responder.IsNotFound(err) {
		t.Errorf("session still in the store after sign-out: %v", err)
	}
	if res, _ := h.do("GET", "/api/auth/session", "", ""); res.StatusCode != 401 {
		t.Errorf("session after sign-out: %d", res.StatusCode)
	}
	// Signing out without a session is harmless.
	if res, body := h.do("POST", "/api/auth/sign-out", "", ""); res.StatusCode != 200 {
		t.Errorf("second sign-out: %d %s", res.StatusCode, body)
	}
}

func TestSessionRejectsForgedCookie(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{devLogin: true})
	if res, body := h.do("POST", "/api/auth/dev-login", "application/json", `{"email":"f@example.com"}`); res.StatusCode != 200 {
		t.Fatalf("dev-login: %d %s", res.StatusCode, body)
	}
	tok, _ := Verify(testSecret, h.sessionCookie())
	req, _ := http.NewRequestWithContext(t.Context(), "GET", h.srv.URL+"/api/auth/session", nil)
	req.AddCookie(&http.Cookie{Name: "better-auth.session_token", Value: Sign("another-secret", tok)})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Errorf("forged cookie: %d, want 401", res.StatusCode)
	}
}

// TestSlidingRefresh drives Sessions.Authenticate through the session route
// with a fixed clock: no refresh before updateAge, then one that re-sends the
// cookie and moves expiresAt in the store, then expiry.
func TestSlidingRefresh(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{devLogin: true})
	ctx := t.Context()
	if res, body := h.do("POST", "/api/auth/dev-login", "application/json", `{"email":"slide@example.com"}`); res.StatusCode != 200 {
		t.Fatalf("dev-login: %d %s", res.StatusCode, body)
	}
	tok, _ := Verify(testSecret, h.sessionCookie())
	start := h.clock.Now()
	s0, err := h.store.SessionByToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !s0.ExpiresAt.Equal(start.Add(7 * 24 * time.Hour)) {
		t.Fatalf("new session expires %v, want %v", s0.ExpiresAt, start.Add(7*24*time.Hour))
	}

	h.clock.Advance(11 * time.Hour) // younger than updateAge (12h): untouched
	res, _ := h.do("GET", "/api/auth/session", "", "")
	if res.StatusCode != 200 || len(cookiesNamed(res, "better-auth.session_token")) != 0 {
		t.Fatalf("early request: %d, cookies %v", res.StatusCode, res.Header.Values("Set-Cookie"))
	}
	if s, _ := h.store.SessionByToken(ctx, tok); !s.ExpiresAt.Equal(s0.ExpiresAt) {
		t.Errorf("expiry moved before updateAge: %v", s.ExpiresAt)
	}

	h.clock.Advance(2 * time.Hour) // 13h: due
	res, body := h.do("GET", "/api/auth/session", "", "")
	if res.StatusCode != 200 {
		t.Fatalf("refresh request: %d %s", res.StatusCode, body)
	}
	cs := cookiesNamed(res, "better-auth.session_token")
	if len(cs) != 1 || cs[0].MaxAge != 604800 || cs[0].Value != Sign(testSecret, tok) || !cs[0].HttpOnly {
		t.Fatalf("refreshed cookie %+v", cs)
	}
	want := start.Add(13*time.Hour + 7*24*time.Hour)
	s1, err := h.store.SessionByToken(ctx, tok)
	if err != nil || !s1.ExpiresAt.Equal(want) {
		t.Fatalf("stored expiry %v (%v), want %v", s1.ExpiresAt, err, want)
	}
	var v identityView
	_ = json.Unmarshal([]byte(body), &v)
	if !v.Session.ExpiresAt.Equal(want) {
		t.Errorf("response expiresAt %v, want %v", v.Session.ExpiresAt, want)
	}

	h.clock.Advance(7*24*time.Hour + time.Hour) // past the new expiry
	if res, _ := h.do("GET", "/api/auth/session", "", ""); res.StatusCode != 401 {
		t.Errorf("expired session: %d, want 401", res.StatusCode)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
