package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/config"
)

func TestFromConfig(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.Map(map[string]string{
		"BETTER_AUTH_SECRET":             "s3cret",
		"BETTER_AUTH_URL":                "https://astra.example",
		"GOOGLE_CLIENT_ID":               "id",
		"GOOGLE_CLIENT_SECRET":           "secret",
		"GOOGLE_ENABLE_BIRTHDAY_SCOPE":   "off",
		"GOOGLE_ENABLE_GMAIL_READ_SCOPE": "yes",
		"GOOGLE_OAUTH_PROMPT":            "consent",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := GoogleFromConfig(c)
	if err != nil || g == nil {
		t.Fatalf("GoogleFromConfig: %v, %v", g, err)
	}
	if g.CallbackPath() != "/api/auth/google/callback" || g.opt.RedirectURI != "https://astra.example/api/auth/google/callback" {
		t.Errorf("callback %q, redirect %q", g.CallbackPath(), g.opt.RedirectURI)
	}
	if got := strings.Join(g.Scopes(), " "); got != "openid "+ScopeEmail+" "+ScopeProfile+" "+ScopeGmail {
		t.Errorf("scopes %q", got)
	}
	if !g.opt.Secure || g.stateCookieName() != "__Secure-astra.oauth_state" || g.opt.Prompt != "consent" || g.opt.Issuer != DefaultGoogleIssuer {
		t.Errorf("options %+v", g.opt)
	}
	o := OptionsFromConfig(c)
	if !o.Secure || o.Secret != "s3cret" || o.CookiePrefix != "better-auth" || o.ExpiresIn != 7*24*time.Hour || o.UpdateAge != 12*time.Hour {
		t.Errorf("session options %+v", o)
	}
	if New(nil, o).CookieName() != "__Secure-better-auth.session_token" {
		t.Errorf("cookie name %q", New(nil, o).CookieName())
	}

	plain, err := config.Load(config.Map(map[string]string{"BETTER_AUTH_SECRET": "s"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := GoogleFromConfig(plain); g != nil || err != nil {
		t.Errorf("Google without settings: %v, %v", g, err)
	}
}
