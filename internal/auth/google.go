package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/astra-app/astra/internal/config"
	"github.com/astra-app/astra/internal/responder"
)

// Google scopes, as the original app requested them.
const (
	ScopeEmail    = "https://www.googleapis.com/auth/userinfo.email"
	ScopeProfile  = "https://www.googleapis.com/auth/userinfo.profile"
	ScopeBirthday = "https://www.googleapis.com/auth/user.birthday.read"
	ScopeGmail    = "https://www.googleapis.com/auth/gmail.readonly"

	// ProviderGoogle is Better Auth's providerId for Google accounts.
	ProviderGoogle = "google"
	// DefaultGoogleIssuer is Google's OIDC issuer.
	DefaultGoogleIssuer = "https://accounts.google.com"

	stateTTL = 10 * time.Minute
)

// GoogleOptions configures Google sign-in.
type GoogleOptions struct {
	ClientID     string
	ClientSecret string
	RedirectURI  string // absolute; its path is where the callback is served
	Issuer       string // OIDC issuer; DefaultGoogleIssuer when empty (tests use their own provider)
	Birthday     bool   // GOOGLE_ENABLE_BIRTHDAY_SCOPE
	Gmail        bool   // GOOGLE_ENABLE_GMAIL_READ_SCOPE
	Prompt       string // GOOGLE_OAUTH_PROMPT, e.g. "select_account consent"
	Secret       string // signs the state cookie (the auth secret)
	Secure       bool   // https app URL: the state cookie is Secure and __Secure- prefixed
	// StartPath is where GET /google is reachable, for "Try again" links.
	StartPath  string
	HTTPClient *http.Client // for discovery, token exchange and keys; http.DefaultClient when nil
	Now        func() time.Time
}

// Google runs the Google OIDC sign-in: start (state + PKCE + nonce in a
// signed cookie) and callback (exchange, ID token validation, Better
// Auth-shaped user/account records, session).
type Google struct {
	opt      GoogleOptions
	key      []byte
	callback string

	mu       sync.Mutex
	provider *oidc.Provider // discovered lazily, so a start-up never depends on reaching Google
	verifier *oidc.IDTokenVerifier
}

// NewGoogle checks opt and returns Google sign-in.
func NewGoogle(opt GoogleOptions) (*Google, error) {
	if opt.ClientID == "" || opt.ClientSecret == "" {
		return nil, errors.New("google sign-in needs a client id and secret")
	}
	if opt.Secret == "" {
		return nil, errors.New("google sign-in needs the auth secret to sign its state cookie")
	}
	u, err := url.Parse(opt.RedirectURI)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("google redirect URI %q is not an absolute http(s) URL", opt.RedirectURI)
	}
	cb := u.EscapedPath()
	if cb == "" {
		cb = "/"
	}
	if opt.Issuer == "" {
		opt.Issuer = DefaultGoogleIssuer
	}
	if opt.StartPath == "" {
		opt.StartPath = MountPath + "/google"
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Google{opt: opt, key: stateKey(opt.Secret), callback: cb}, nil
}

// GoogleFromConfig returns Google sign-in as configured, or nil when Google is
// not configured. The config's AuthSecret must be set (EnsureSecrets).
func GoogleFromConfig(c *config.Config) (*Google, error) {
	if !c.GoogleEnabled() {
		return nil, nil
	}
	return NewGoogle(GoogleOptions{
		ClientID:     c.GoogleClientID,
		ClientSecret: c.GoogleClientSecret,
		RedirectURI:  c.GoogleRedirectURI,
		Issuer:       c.GoogleIssuer,
		Birthday:     c.GoogleEnableBirthday,
		Gmail:        c.GoogleEnableGmail,
		Prompt:       c.GooglePrompt,
		Secret:       c.AuthSecret,
		Secure:       strings.HasPrefix(c.AppURL, "https://"),
	})
}

// OptionsFromConfig returns session options as configured.
func OptionsFromConfig(c *config.Config) Options {
	return Options{
		Secret:       c.AuthSecret,
		CookiePrefix: c.CookiePrefix,
		Secure:       strings.HasPrefix(c.AppURL, "https://"),
		ExpiresIn:    c.SessionExpiresIn,
		UpdateAge:    c.SessionUpdateAge,
		Proxies:      c.TrustedProxies,
	}
}

// CallbackPath is the path of the redirect URI, where the callback must be served.
func (g *Google) CallbackPath() string { return g.callback }

// Scopes returns the scopes requested: openid, email and profile, plus the
// birthday and Gmail scopes when enabled.
func (g *Google) Scopes() []string {
	s := []string{oidc.ScopeOpenID, ScopeEmail, ScopeProfile}
	if g.opt.Birthday {
		s = append(s, ScopeBirthday)
	}
	if g.opt.Gmail {
		s = append(s, ScopeGmail)
	}
	return s
}

func (g *Google) stateCookieName() string {
	if g.opt.Secure {
		return "__Secure-astra.oauth_state"
	}
	return "astra.oauth_state"
}

func (g *Google) ctx(ctx context.Context) context.Context {
	ctx = oidc.ClientContext(ctx, g.opt.HTTPClient)
	return context.WithValue(ctx, oauth2.HTTPClient, g.opt.HTTPClient)
}

// discover returns the OIDC provider, fetching its metadata on first use; a
// failure is not cached, so the next sign-in tries again.
func (g *Google) discover(ctx context.Context) (*oidc.Provider, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.provider != nil {
		return g.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(g.ctx(ctx), g.opt.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover OIDC issuer %s: %w", g.opt.Issuer, err)
	}
	// One verifier for the provider's lifetime, so its signing keys are
	// cached between sign-ins (and refetched when a new key id appears).
	g.provider = p
	g.verifier = p.Verifier(&oidc.Config{ClientID: g.opt.ClientID, Now: g.opt.Now})
	return p, nil
}

func (g *Google) oauth2Config(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     g.opt.ClientID,
		ClientSecret: g.opt.ClientSecret,
		RedirectURL:  g.opt.RedirectURI,
		Endpoint:     p.Endpoint(),
		Scopes:       g.Scopes(),
	}
}

func (d RoutesDeps) googleStart(w http.ResponseWriter, r *http.Request) {
	g := d.Google
	if g == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "Google sign-in is not configured"})
		return
	}
	p, err := g.discover(r.Context())
	if err != nil {
		d.logger().Error("google sign-in start", "err", err)
		g.page(w, http.StatusBadGateway, "Google sign-in is unavailable",
			"Astra could not reach Google just now. Please try again in a moment.")
		return
	}
	st := oauthState{
		State:     newToken(), // 32 characters, as Better Auth's
		Verifier:  oauth2.GenerateVerifier(),
		Nonce:     newToken(),
		ExpiresAt: g.opt.Now().Add(stateTTL).Unix(),
	}
	sealed, err := sealState(g.key, st)
	if err != nil {
		d.fail(w, r, fmt.Errorf("seal oauth state: %w", err))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: g.stateCookieName(), Value: sealed, Path: g.callback,
		MaxAge: int(stateTTL / time.Second), HttpOnly: true, Secure: g.opt.Secure,
		// Lax: the callback is a top-level GET navigation back from Google.
		SameSite: http.SameSiteLaxMode,
	})
	opts := []oauth2.AuthCodeOption{
		oauth2.AccessTypeOffline,
		oauth2.S256ChallengeOption(st.Verifier),
		oidc.Nonce(st.Nonce),
	}
	if g.opt.Prompt != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", g.opt.Prompt))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.oauth2Config(p).AuthCodeURL(st.State, opts...), http.StatusFound)
}

// googleClaims are the ID token claims Astra uses.
type googleClaims struct {
	Email         string `json:"email"`
	EmailVerified any    `json:"email_verified"` // Google sends a bool; some providers a string
	Name          string `json:"name"`
	Picture       string `json:"picture"`
}

func (c googleClaims) verified() bool {
	switch v := c.EmailVerified.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

// signInError is a callback failure shown to the person as a small page.
type signInError struct {
	status        int
	title, detail string
	err           error // logged, never shown
}

func (e *signInError) Error() string {
	if e.err != nil {
		return e.title + ": " + e.err.Error()
	}
	return e.title
}

func (d RoutesDeps) googleCallback(w http.ResponseWriter, r *http.Request) {
	g := d.Google
	if g == nil {
		http.NotFound(w, r)
		return
	}
	// Whatever happens, this state is used up.
	http.SetCookie(w, &http.Cookie{
		Name: g.stateCookieName(), Value: "", Path: g.callback, MaxAge: -1,
		HttpOnly: true, Secure: g.opt.Secure, SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	u, err := d.finishGoogle(r)
	if err != nil {
		var se *signInError
		if !errors.As(err, &se) {
			se = &signInError{status: http.StatusServiceUnavailable, title: "Sign-in failed",
				detail: "Something went wrong on our side while signing you in. Please try again.", err: err}
		}
		level := d.logger().Warn
		if se.status >= 500 {
			level = d.logger().Error
		}
		level("google sign-in failed", "reason", se.title, "err", se.err)
		g.page(w, se.status, se.title, se.detail)
		return
	}
	if _, err := d.Sessions.Start(r.Context(), w, r, u); err != nil {
		d.logger().Error("google sign-in: start session", "user", u.ID, "err", err)
		g.page(w, http.StatusServiceUnavailable, "Sign-in failed",
			"You were recognised, but Astra could not start your session. Please try again.")
		return
	}
	d.logger().Info("google sign-in", "user", u.ID)
	http.Redirect(w, r, "/", http.StatusFound)
}

// finishGoogle checks the callback, exchanges the code, validates the ID
// token and finds, links or creates the user. Nothing is written to the
// store before every check has passed.
func (d RoutesDeps) finishGoogle(r *http.Request) (*responder.User, error) {
	g := d.Google
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			return nil, &signInError{status: http.StatusForbidden, title: "Sign-in cancelled",
				detail: "You did not allow Astra to use your Google account, so you are not signed in."}
		}
		return nil, &signInError{status: http.StatusBadRequest, title: "Google could not sign you in",
			detail: "Google reported: " + e + ".", err: fmt.Errorf("google error %q: %s", e, q.Get("error_description"))}
	}
	c, err := r.Cookie(g.stateCookieName())
	if err != nil {
		return nil, &signInError{status: http.StatusBadRequest, title: "Sign-in expired",
			detail: "This sign-in link is no longer valid (it may have been opened in another browser, or too long ago).",
			err:    errStateMissing}
	}
	st, err := openState(g.key, c.Value, g.opt.Now())
	if err != nil {
		title, detail := "Sign-in could not be verified", "The sign-in response did not match the request this browser made."
		if errors.Is(err, errStateExpired) {
			title, detail = "Sign-in expired", "You took longer than 10 minutes to finish signing in."
		}
		return nil, &signInError{status: http.StatusBadRequest, title: title, detail: detail, err: err}
	}
	if s := q.Get("state"); s == "" || subtle.ConstantTimeCompare([]byte(s), []byte(st.State)) != 1 {
		return nil, &signInError{status: http.StatusBadRequest, title: "Sign-in could not be verified",
			detail: "The sign-in response did not match the request this browser made.",
			err:    errors.New("state parameter does not match the state cookie")}
	}
	code := q.Get("code")
	if code == "" {
		return nil, &signInError{status: http.StatusBadRequest, title: "Google could not sign you in",
			detail: "Google's response carried no authorization code.", err: errors.New("no code")}
	}
	p, err := g.discover(r.Context())
	if err != nil {
		return nil, &signInError{status: http.StatusBadGateway, title: "Google sign-in is unavailable",
			detail: "Astra could not reach Google just now.", err: err}
	}
	ctx := g.ctx(r.Context())
	tok, err := g.oauth2Config(p).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return nil, &signInError{status: http.StatusBadGateway, title: "Google could not sign you in",
			detail: "Exchanging Google's answer for your sign-in failed.", err: fmt.Errorf("exchange code: %w", err)}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, &signInError{status: http.StatusBadGateway, title: "Google could not sign you in",
			detail: "Google's answer carried no identity.", err: errors.New("token response has no id_token")}
	}
	g.mu.Lock()
	verifier := g.verifier
	g.mu.Unlock()
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return nil, &signInError{status: http.StatusBadGateway, title: "Google could not sign you in",
			detail: "Google's answer could not be verified.", err: fmt.Errorf("verify id token: %w", err)}
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return nil, &signInError{status: http.StatusBadRequest, title: "Sign-in could not be verified",
			detail: "Google's answer was not made for this sign-in.", err: errors.New("id token nonce mismatch")}
	}
	var cl googleClaims
	if err := idt.Claims(&cl); err != nil {
		return nil, &signInError{status: http.StatusBadGateway, title: "Google could not sign you in",
			detail: "Google's answer could not be read.", err: fmt.Errorf("read id token claims: %w", err)}
	}
	cl.Email = strings.ToLower(strings.TrimSpace(cl.Email))
	if idt.Subject == "" || cl.Email == "" {
		return nil, &signInError{status: http.StatusBadGateway, title: "Google could not sign you in",
			detail: "Google did not share your email address.", err: errors.New("id token without sub or email")}
	}
	acct := g.accountFrom(tok, raw, idt.Subject)
	return d.linkGoogle(r.Context(), acct, cl)
}

// accountFrom builds the account record Better Auth would write for a token.
func (g *Google) accountFrom(tok *oauth2.Token, idToken, sub string) *responder.Account {
	a := &responder.Account{
		AccountID:            sub,
		ProviderID:           ProviderGoogle,
		AccessToken:          tok.AccessToken,
		RefreshToken:         tok.RefreshToken,
		IDToken:              idToken,
		AccessTokenExpiresAt: tok.Expiry,
		Scope:                strings.Join(g.Scopes(), ","),
	}
	// Google reports what was granted, which may be less than was asked.
	if s, _ := tok.Extra("scope").(string); strings.TrimSpace(s) != "" {
		a.Scope = strings.Join(strings.Fields(s), ",")
	}
	if secs, ok := tok.Extra("refresh_token_expires_in").(float64); ok && secs > 0 && tok.RefreshToken != "" {
		a.RefreshTokenExpiresAt = g.opt.Now().Add(time.Duration(secs) * time.Second)
	}
	return a
}

// linkGoogle finds the user of a Google identity, Better Auth's way: by
// account (google, sub); else by email, linking only when Google verified
// the email and so did the local user; else a new user and account.
func (d RoutesDeps) linkGoogle(ctx context.Context, a *responder.Account, cl googleClaims) (*responder.User, error) {
	existing, err := d.Store.AccountByProvider(ctx, ProviderGoogle, a.AccountID)
	switch {
	case err == nil:
		u, err := d.Store.UserByID(ctx, existing.UserID)
		if err != nil {
			return nil, fmt.Errorf("user %s of google account %s: %w", existing.UserID, a.AccountID, err)
		}
		a.ID, a.UserID, a.CreatedAt = existing.ID, existing.UserID, existing.CreatedAt
		// Google sends a refresh token only on consent; keep the one we have.
		if a.RefreshToken == "" {
			a.RefreshToken, a.RefreshTokenExpiresAt = existing.RefreshToken, existing.RefreshTokenExpiresAt
		}
		if err := d.Store.UpdateAccountTokens(ctx, a); err != nil {
			return nil, fmt.Errorf("update tokens of google account %s: %w", a.AccountID, err)
		}
		return u, nil
	case !responder.IsNotFound(err):
		return nil, fmt.Errorf("find google account %s: %w", a.AccountID, err)
	}

	u, err := d.Store.UserByEmail(ctx, cl.Email)
	switch {
	case err == nil:
		if !cl.verified() || !u.EmailVerified {
			return nil, &signInError{status: http.StatusConflict, title: "Account not linked",
				detail: "An Astra account with this email already exists, and it could not be linked to this " +
					"Google account because the email is not verified on both sides. Sign in the way you did before.",
				err: fmt.Errorf("refused to link google %s to user %s (google verified %v, local verified %v)",
					a.AccountID, u.ID, cl.verified(), u.EmailVerified)}
		}
	case responder.IsNotFound(err):
		u = &responder.User{Email: cl.Email, Name: cl.Name, EmailVerified: cl.verified(), Image: cl.Picture}
		if err := d.Store.CreateUser(ctx, u); err != nil {
			return nil, fmt.Errorf("create user for google account %s: %w", a.AccountID, err)
		}
	default:
		return nil, fmt.Errorf("find user by email: %w", err)
	}
	a.UserID = u.ID
	if err := d.Store.CreateAccount(ctx, a); err != nil {
		return nil, fmt.Errorf("create google account %s for user %s: %w", a.AccountID, u.ID, err)
	}
	return u, nil
}
