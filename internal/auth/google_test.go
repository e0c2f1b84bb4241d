package auth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// googleStart begins a sign-in and returns the provider's authorize URL.
func (h *harness) googleStart() string {
	h.t.Helper()
	res, body := h.do("GET", "/api/auth/google", "", "")
	if res.StatusCode != http.StatusFound {
		h.t.Fatalf("start: %d %s", res.StatusCode, body)
	}
	cs := cookiesNamed(res, "astra.oauth_state")
	if len(cs) != 1 || !cs[0].HttpOnly || cs[0].MaxAge != 600 || cs[0].Path != h.google.CallbackPath() {
		h.t.Fatalf("state cookie %+v", cs)
	}
	return res.Header.Get("Location")
}

// googleConsent follows the authorize URL (the provider consents at once)
// and returns the callback URL it redirects to.
func (h *harness) googleConsent(authorizeURL string) string {
	h.t.Helper()
	res, body := h.do("GET", authorizeURL, "", "")
	if res.StatusCode != http.StatusFound {
		h.t.Fatalf("authorize: %d %s", res.StatusCode, body)
	}
	return res.Header.Get("Location")
}

// googleSignIn runs the whole flow and returns the callback's response.
func (h *harness) googleSignIn() (*http.Response, string) {
	h.t.Helper()
	return h.do("GET", h.googleConsent(h.googleStart()), "", "")
}

func (h *harness) wantSignedIn(res *http.Response, body string) *responder.Session {
	h.t.Helper()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/" {
		h.t.Fatalf("callback: %d (Location %q) %s", res.StatusCode, res.Header.Get("Location"), body)
	}
	tok, ok := Verify(testSecret, h.sessionCookie())
	if !ok {
		h.t.Fatal("no valid session cookie after the callback")
	}
	s, err := h.store.SessionByToken(h.t.Context(), tok)
	if err != nil {
		h.t.Fatalf("session of the callback: %v", err)
	}
	return s
}

// wantFailurePage checks a readable failure page that wrote nothing.
func (h *harness) wantFailurePage(res *http.Response, body string, status int, title string, before map[string]int) {
	h.t.Helper()
	if res.StatusCode != status {
		h.t.Errorf("status %d, want %d; body %s", res.StatusCode, status, body)
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, title) ||
		!strings.Contains(body, `href="/api/auth/google"`) || !strings.Contains(body, "Try again") {
		h.t.Errorf("failure page lacks %q or a Try again link: %s", title, body)
	}
	if len(cookiesNamed(res, h.sessions.CookieName())) != 0 {
		h.t.Error("a session cookie was set by a failed sign-in")
	}
	if after := h.rowCounts(); !equalCounts(before, after) {
		h.t.Errorf("a failed sign-in wrote to the store: %v -> %v", before, after)
	}
}

func TestGoogleStartRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	loc, err := url.Parse(h.googleStart())
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	wantScopes := "openid " + ScopeEmail + " " + ScopeProfile + " " + ScopeBirthday
	checks := map[string]string{
		"client_id": testClientID, "response_type": "code", "access_type": "offline",
		"prompt": "select_account consent", "code_challenge_method": "S256",
		"scope": wantScopes, "redirect_uri": h.srv.URL + "/api/auth/google/callback",
	}
	for k, want := range checks {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(q.Get("state")) != 32 || q.Get("nonce") == "" || len(q.Get("code_challenge")) != 43 {
		t.Errorf("state %q nonce %q challenge %q", q.Get("state"), q.Get("nonce"), q.Get("code_challenge"))
	}
	res, body := h.do("GET", "/api/auth/providers", "", "")
	if strings.TrimSpace(body) != `{"devLogin":false,"google":true}` {
		t.Errorf("providers: %d %s", res.StatusCode, body)
	}
}

func TestGoogleScopesFollowToggles(t *testing.T) {
	t.Parallel()
	g, err := NewGoogle(GoogleOptions{ClientID: "c", ClientSecret: "s", RedirectURI: "https://astra.example/cb", Secret: "x", Gmail: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.Scopes(), " "); got != "openid "+ScopeEmail+" "+ScopeProfile+" "+ScopeGmail {
		t.Errorf("scopes %q", got)
	}
	if g.CallbackPath() != "/cb" {
		t.Errorf("callback path %q", g.CallbackPath())
	}
}

func TestGoogleNewUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	ctx := t.Context()
	h.provider.setUser(oidcUser{Sub: "g-100", Email: "New.Person@Gmail.com", EmailVerified: true, Name: "New Person", Picture: "https://img.example/p.png"})

	res, body := h.googleSignIn()
	s := h.wantSignedIn(res, body)
	if cs := cookiesNamed(res, "astra.oauth_state"); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("state cookie not cleared: %+v", cs)
	}

	u, err := h.store.UserByEmail(ctx, "new.person@gmail.com")
	if err != nil {
		t.Fatalf("user: %v", err)
	}
	if u.ID != s.UserID || u.Email != "new.person@gmail.com" || !u.EmailVerified || u.Name != "New Person" || u.Image != "https://img.example/p.png" {
		t.Errorf("user %+v (session user %s)", u, s.UserID)
	}
	a, err := h.store.AccountByProvider(ctx, "google", "g-100")
	if err != nil {
		t.Fatalf("account: %v", err)
	}
	if a.UserID != u.ID || a.AccessToken != "access-g-100" || a.RefreshToken != "refresh-g-100" || a.IDToken == "" ||
		a.Scope != "openid,"+ScopeEmail+","+ScopeProfile {
		t.Errorf("account %+v", a)
	}
	if a.AccessTokenExpiresAt.IsZero() || a.RefreshTokenExpiresAt.IsZero() || !a.RefreshTokenExpiresAt.After(a.AccessTokenExpiresAt) {
		t.Errorf("expiries: access %v refresh %v", a.AccessTokenExpiresAt, a.RefreshTokenExpiresAt)
	}
	// The session route sees the new user.
	if res, body := h.do("GET", "/api/auth/session", "", ""); res.StatusCode != 200 || !strings.Contains(body, `"email":"new.person@gmail.com"`) {
		t.Errorf("session: %d %s", res.StatusCode, body)
	}
}

func TestGoogleExistingAccount(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	ctx := t.Context()
	h.provider.setUser(oidcUser{Sub: "g-200", Email: "back@example.com", EmailVerified: true, Name: "Back"})
	first := h.wantSignedIn(h.googleSignIn())
	a0, err := h.store.AccountByProvider(ctx, "google", "g-200")
	if err != nil {
		t.Fatal(err)
	}

	// Same Google identity, different email at Google now: still the same
	// user, found by account, not by email.
	h.provider.setUser(oidcUser{Sub: "g-200", Email: "renamed@example.com", EmailVerified: true, Name: "Back"})
	second := h.wantSignedIn(h.googleSignIn())
	if second.UserID != first.UserID || second.ID == first.ID {
		t.Errorf("second sign-in: user %s session %s; first user %s session %s", second.UserID, second.ID, first.UserID, first.ID)
	}
	if _, err := h.store.UserByEmail(ctx, "renamed@example.com"); !responder.IsNotFound(err) {
		t.Errorf("a second user was created: %v", err)
	}
	a1, err := h.store.AccountByProvider(ctx, "google", "g-200")
	if err != nil || a1.ID != a0.ID || a1.UserID != first.UserID || a1.IDToken == a0.IDToken {
		t.Errorf("account after second sign-in %+v (%v); first %+v", a1, err, a0)
	}
}

func TestGoogleLinksVerifiedLocalUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	ctx := t.Context()
	local := &responder.User{Email: "linked@example.com", Name: "Local", EmailVerified: true}
	if err := h.store.CreateUser(ctx, local); err != nil {
		t.Fatal(err)
	}
	h.provider.setUser(oidcUser{Sub: "g-300", Email: "Linked@example.com", EmailVerified: true, Name: "Google Name"})
	s := h.wantSignedIn(h.googleSignIn())
	if s.UserID != local.ID {
		t.Errorf("signed in as %s, want the local user %s", s.UserID, local.ID)
	}
	a, err := h.store.AccountByProvider(ctx, "google", "g-300")
	if err != nil || a.UserID != local.ID {
		t.Errorf("account %+v, %v", a, err)
	}
}

func TestGoogleRefusesToLinkUnverified(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                        string
		localVerified, googleVerify bool
	}{
		{"local unverified", false, true},
		{"google unverified", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{google: true})
			local := &responder.User{Email: "taken@example.com", Name: "Local", EmailVerified: c.localVerified}
			if err := h.store.CreateUser(t.Context(), local); err != nil {
				t.Fatal(err)
			}
			h.provider.setUser(oidcUser{Sub: "g-400", Email: "taken@example.com", EmailVerified: c.googleVerify})
			before := h.rowCounts()
			res, body := h.googleSignIn()
			h.wantFailurePage(res, body, http.StatusConflict, "Account not linked", before)
			if _, err := h.store.AccountByProvider(t.Context(), "google", "g-400"); !responder.IsNotFound(err) {
				t.Errorf("account created: %v", err)
			}
		})
	}
}

func TestGoogleUnverifiedNewUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	h.provider.setUser(oidcUser{Sub: "g-500", Email: "fresh@example.com", EmailVerified: false})
	s := h.wantSignedIn(h.googleSignIn())
	u, err := h.store.UserByID(t.Context(), s.UserID)
	if err != nil || u.EmailVerified {
		t.Errorf("user %+v, %v: want emailVerified false as Google said", u, err)
	}
}

func TestGoogleDeniedConsent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	authz, _ := url.Parse(h.googleStart())
	before := h.rowCounts()
	res, body := h.do("GET", "/api/auth/google/callback?error=access_denied&state="+authz.Query().Get("state"), "", "")
	h.wantFailurePage(res, body, http.StatusForbidden, "Sign-in cancelled", before)
}

func TestGoogleTamperedState(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	h.provider.setUser(oidcUser{Sub: "g-600", Email: "t@example.com", EmailVerified: true})
	cb, _ := url.Parse(h.googleConsent(h.googleStart()))
	q := cb.Query()
	q.Set("state", strings.Repeat("A", 32))
	cb.RawQuery = q.Encode()
	before := h.rowCounts()
	res, body := h.do("GET", cb.String(), "", "")
	h.wantFailurePage(res, body, http.StatusBadRequest, "Sign-in could not be verified", before)
}

func TestGoogleTamperedStateCookie(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	h.provider.setUser(oidcUser{Sub: "g-610", Email: "t@example.com", EmailVerified: true})
	cb := h.googleConsent(h.googleStart())
	cbURL, _ := url.Parse(cb)
	var value string
	for _, c := range h.client.Jar.Cookies(cbURL) {
		if c.Name == "astra.oauth_state" {
			value = c.Value
		}
	}
	if value == "" {
		t.Fatal("no state cookie in the jar")
	}
	// Flip one character of the payload: the signature no longer matches.
	b := []byte(value)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	h.client.Jar.SetCookies(cbURL, []*http.Cookie{{Name: "astra.oauth_state", Value: string(b), Path: h.google.CallbackPath()}})
	before := h.rowCounts()
	res, body := h.do("GET", cb, "", "")
	h.wantFailurePage(res, body, http.StatusBadRequest, "Sign-in could not be verified", before)
}

func TestGoogleMissingState(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	before := h.rowCounts()
	res, body := h.do("GET", "/api/auth/google/callback?code=abc&state=xyz", "", "")
	h.wantFailurePage(res, body, http.StatusBadRequest, "Sign-in expired", before)
}

func TestGoogleExpiredState(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	h.provider.setUser(oidcUser{Sub: "g-700", Email: "slow@example.com", EmailVerified: true})
	cb := h.googleConsent(h.googleStart())
	h.clock.Advance(10*time.Minute + time.Second)
	before := h.rowCounts()
	res, body := h.do("GET", cb, "", "")
	h.wantFailurePage(res, body, http.StatusBadRequest, "Sign-in expired", before)
}

func TestGoogleFailedExchange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true})
	h.provider.setUser(oidcUser{Sub: "g-800", Email: "x@example.com", EmailVerified: true})
	h.provider.mu.Lock()
	h.provider.failToken = true
	h.provider.mu.Unlock()
	cb := h.googleConsent(h.googleStart())
	before := h.rowCounts()
	res, body := h.do("GET", cb, "", "")
	h.wantFailurePage(res, body, http.StatusBadGateway, "Google could not sign you in", before)
}

func TestGoogleInvalidIDToken(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		tweak  func(p *testProvider)
		status int
		title  string
	}{
		{"other audience", func(p *testProvider) { p.audience = "someone-else" }, http.StatusBadGateway, "Google could not sign you in"},
		{"wrong nonce", func(p *testProvider) { p.tamperNonce = true }, http.StatusBadRequest, "Sign-in could not be verified"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{google: true})
			h.provider.setUser(oidcUser{Sub: "g-900", Email: "y@example.com", EmailVerified: true})
			h.provider.mu.Lock()
			c.tweak(h.provider)
			h.provider.mu.Unlock()
			cb := h.googleConsent(h.googleStart())
			before := h.rowCounts()
			res, body := h.do("GET", cb, "", "")
			h.wantFailurePage(res, body, c.status, c.title, before)
		})
	}
}

func TestGoogleCallbackOutsideAuthRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{google: true, callbackPath: "/oauth/google"})
	if h.google.CallbackPath() != "/oauth/google" {
		t.Fatalf("callback path %q", h.google.CallbackPath())
	}
	h.provider.setUser(oidcUser{Sub: "g-1000", Email: "out@example.com", EmailVerified: true})
	h.wantSignedIn(h.googleSignIn())
}

func TestGoogleNotConfigured(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	if res, _ := h.do("GET", "/api/auth/google", "", ""); res.StatusCode != 404 {
		t.Errorf("start without Google: %d", res.StatusCode)
	}
	if res, _ := h.do("GET", "/api/auth/google/callback?code=x&state=y", "", ""); res.StatusCode != 404 {
		t.Errorf("callback without Google: %d", res.StatusCode)
	}
}
