package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

func createUser(t *testing.T, s responder.Store, email string) *responder.User {
	t.Helper()
	u := &responder.User{Name: "Ada", Email: email, EmailVerified: true, Image: "https://example.com/a.png"}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

func sameUser(t *testing.T, got, want *responder.User) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Email != want.Email || got.EmailVerified != want.EmailVerified ||
		got.Image != want.Image || got.JulepUserID != want.JulepUserID || got.ResponderSummary != want.ResponderSummary ||
		got.Role != want.Role {
		t.Errorf("user:\n got %+v\nwant %+v", *got, *want)
	}
	sameTime(t, "user CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, "user UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	sameTime(t, "user ResponderSummaryAt", got.ResponderSummaryAt, want.ResponderSummaryAt)
}

func testUsers(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	before := time.Now()
	u := createUser(t, s, "Ada.Lovelace@Example.COM")
	if !responder.ValidID(u.ID) || u.Email != "ada.lovelace@example.com" {
		t.Errorf("CreateUser set ID %q Email %q, want a 24-hex id and the lowercased email", u.ID, u.Email)
	}
	if u.CreatedAt.Before(ms(before)) || !u.UpdatedAt.Equal(u.CreatedAt) {
		t.Errorf("CreateUser set CreatedAt %v UpdatedAt %v", u.CreatedAt, u.UpdatedAt)
	}

	byID, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	sameUser(t, byID, u)
	for _, email := range []string{"ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM", "Ada.Lovelace@example.com"} {
		byEmail, err := s.UserByEmail(ctx, email)
		if err != nil {
			t.Fatalf("UserByEmail(%s): %v", email, err)
		}
		sameUser(t, byEmail, u)
	}
	err = s.CreateUser(ctx, &responder.User{Name: "Copy", Email: "ADA.lovelace@example.com"})
	wantCode(t, "CreateUser with a taken email", err, responder.ECONFLICT)

	// Better Auth's admin plugin's role round-trips (the console's check).
	admin := &responder.User{Name: "Root", Email: "root@example.com", Role: "admin"}
	if err := s.CreateUser(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UserByID(ctx, admin.ID); err != nil || got.Role != "admin" {
		t.Errorf("admin user read back: %+v %v", got, err)
	}

	other := createUser(t, s, "grace@example.com")
	if other.ID == u.ID {
		t.Fatal("two users share an id")
	}

	ju := responder.JulepUserID(u.ID)
	if err := s.SetUserJulepID(ctx, u.ID, ju); err != nil {
		t.Fatalf("SetUserJulepID: %v", err)
	}
	at := time.Now().Add(-time.Minute)
	if err := s.SetResponderSummary(ctx, u.ID, "likes engines", at); err != nil {
		t.Fatalf("SetResponderSummary: %v", err)
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.JulepUserID != ju || got.ResponderSummary != "likes engines" {
		t.Errorf("user after updates = %+v", *got)
	}
	sameTime(t, "ResponderSummaryAt", got.ResponderSummaryAt, at)
	if g, err := s.UserByID(ctx, other.ID); err != nil || g.JulepUserID != "" || g.ResponderSummary != "" {
		t.Errorf("the other user changed too: %+v, %v", g, err)
	}
}

func testUserNotFound(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	createUser(t, s, "someone@example.com")
	for _, id := range badIDs {
		_, err := s.UserByID(ctx, id)
		wantCode(t, fmt.Sprintf("UserByID(%q)", id), err, responder.ENOTFOUND)
		wantCode(t, fmt.Sprintf("SetUserJulepID(%q)", id), s.SetUserJulepID(ctx, id, "j"), responder.ENOTFOUND)
		wantCode(t, fmt.Sprintf("SetResponderSummary(%q)", id), s.SetResponderSummary(ctx, id, "s", time.Now()), responder.ENOTFOUND)
		wantCode(t, fmt.Sprintf("UpdateAccountTokens(%q)", id), s.UpdateAccountTokens(ctx, &responder.Account{ID: id, AccessToken: "x"}), responder.ENOTFOUND)
	}
	_, err := s.UserByEmail(ctx, "nobody@example.com")
	wantCode(t, "UserByEmail(unknown)", err, responder.ENOTFOUND)
	_, err = s.AccountByProvider(ctx, "google", "nope")
	wantCode(t, "AccountByProvider(unknown)", err, responder.ENOTFOUND)
	_, err = s.SessionByToken(ctx, "no-such-token")
	wantCode(t, "SessionByToken(unknown)", err, responder.ENOTFOUND)
	wantCode(t, "ExtendSession(unknown)", s.ExtendSession(ctx, "no-such-token", time.Now().Add(time.Hour)), responder.ENOTFOUND)
}

func sameAccount(t *testing.T, got, want *responder.Account) {
	t.Helper()
	if got.ID != want.ID || got.AccountID != want.AccountID || got.ProviderID != want.ProviderID || got.UserID != want.UserID ||
		got.AccessToken != want.AccessToken || got.RefreshToken != want.RefreshToken || got.IDToken != want.IDToken || got.Scope != want.Scope {
		t.Errorf("account:\n got %+v\nwant %+v", *got, *want)
	}
	sameTime(t, "AccessTokenExpiresAt", got.AccessTokenExpiresAt, want.AccessTokenExpiresAt)
	sameTime(t, "RefreshTokenExpiresAt", got.RefreshTokenExpiresAt, want.RefreshTokenExpiresAt)
	sameTime(t, "account CreatedAt", got.CreatedAt, want.CreatedAt)
}

func testAccounts(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	u := createUser(t, s, "acc@example.com")
	a := &responder.Account{
		AccountID: "google-sub-1", ProviderID: "google", UserID: u.ID,
		AccessToken: "at1", RefreshToken: "rt1", IDToken: "idt1",
		AccessTokenExpiresAt: time.Now().Add(time.Hour), Scope: "openid email",
	}
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	if !responder.ValidID(a.ID) || a.CreatedAt.IsZero() || !a.UpdatedAt.Equal(a.CreatedAt) {
		t.Errorf("CreateAccount set ID %q CreatedAt %v UpdatedAt %v", a.ID, a.CreatedAt, a.UpdatedAt)
	}
	got, err := s.AccountByProvider(ctx, "google", "google-sub-1")
	if err != nil {
		t.Fatalf("AccountByProvider: %v", err)
	}
	sameAccount(t, got, a)

	err = s.CreateAccount(ctx, &responder.Account{AccountID: "google-sub-1", ProviderID: "google", UserID: u.ID})
	wantCode(t, "CreateAccount duplicate", err, responder.ECONFLICT)
	// The same account id at another provider is another account.
	cred := &responder.Account{AccountID: "google-sub-1", ProviderID: "credential", UserID: u.ID}
	if err := s.CreateAccount(ctx, cred); err != nil {
		t.Fatalf("CreateAccount at another provider: %v", err)
	}
	_, err = s.AccountByProvider(ctx, "github", "google-sub-1")
	wantCode(t, "AccountByProvider(other provider)", err, responder.ENOTFOUND)

	a.AccessToken, a.RefreshToken, a.IDToken, a.Scope = "at2", "rt2", "idt2", "openid email profile"
	a.AccessTokenExpiresAt = time.Now().Add(2 * time.Hour)
	a.RefreshTokenExpiresAt = time.Now().Add(30 * 24 * time.Hour)
	if err := s.UpdateAccountTokens(ctx, a); err != nil {
		t.Fatalf("UpdateAccountTokens: %v", err)
	}
	got, err = s.AccountByProvider(ctx, "google", "google-sub-1")
	if err != nil {
		t.Fatal(err)
	}
	sameAccount(t, got, a)
	if got.UpdatedAt.Before(got.CreatedAt) {
		t.Errorf("UpdatedAt %v before CreatedAt %v", got.UpdatedAt, got.CreatedAt)
	}
	if c, err := s.AccountByProvider(ctx, "credential", "google-sub-1"); err != nil || c.AccessToken != "" {
		t.Errorf("the other account changed: %+v, %v", c, err)
	}
}

func testSessions(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	u := createUser(t, s, "sess@example.com")
	live := &responder.Session{Token: "tok-live", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour), IPAddress: "127.0.0.1", UserAgent: "test"}
	if err := s.CreateSession(ctx, live); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if !responder.ValidID(live.ID) || live.CreatedAt.IsZero() {
		t.Errorf("CreateSession set ID %q CreatedAt %v", live.ID, live.CreatedAt)
	}
	got, err := s.SessionByToken(ctx, "tok-live")
	if err != nil {
		t.Fatalf("SessionByToken: %v", err)
	}
	if got.ID != live.ID || got.UserID != u.ID || got.IPAddress != "127.0.0.1" || got.UserAgent != "test" || got.Token != "tok-live" {
		t.Errorf("session = %+v, want %+v", *got, *live)
	}
	sameTime(t, "session ExpiresAt", got.ExpiresAt, live.ExpiresAt)
	sameTime(t, "session CreatedAt", got.CreatedAt, live.CreatedAt)

	expired := &responder.Session{Token: "tok-old", UserID: u.ID, ExpiresAt: time.Now().Add(-time.Second)}
	if err := s.CreateSession(ctx, expired); err != nil {
		t.Fatal(err)
	}
	_, err = s.SessionByToken(ctx, "tok-old")
	wantCode(t, "SessionByToken(expired)", err, responder.ENOTFOUND)

	// Extending revives it, and moves UpdatedAt.
	until := time.Now().Add(7 * 24 * time.Hour)
	if err := s.ExtendSession(ctx, "tok-old", until); err != nil {
		t.Fatalf("ExtendSession: %v", err)
	}
	got, err = s.SessionByToken(ctx, "tok-old")
	if err != nil {
		t.Fatalf("SessionByToken after extend: %v", err)
	}
	sameTime(t, "extended ExpiresAt", got.ExpiresAt, until)
	if got.UpdatedAt.Before(got.CreatedAt) {
		t.Errorf("UpdatedAt %v before CreatedAt %v", got.UpdatedAt, got.CreatedAt)
	}
	// Extending into the past ends it.
	if err := s.ExtendSession(ctx, "tok-old", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, err = s.SessionByToken(ctx, "tok-old")
	wantCode(t, "SessionByToken(shortened)", err, responder.ENOTFOUND)

	if err := s.DeleteSession(ctx, "tok-live"); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	_, err = s.SessionByToken(ctx, "tok-live")
	wantCode(t, "SessionByToken(deleted)", err, responder.ENOTFOUND)
	if err := s.DeleteSession(ctx, "tok-live"); err != nil {
		t.Errorf("DeleteSession of a missing session: %v", err)
	}
}
