package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// newID returns id normalised, or a new id when it is empty.
func newID(what, id string) (string, error) {
	if id == "" {
		return responder.NewID(), nil
	}
	key, ok := normID(id)
	if !ok {
		return "", responder.Errorf(responder.EINVALID, "%s id %q is not a 24-hex id", what, id)
	}
	return key, nil
}

// updateOne runs a single-row UPDATE and reports ENOTFOUND when it matched nothing.
func (s *Store) updateOne(ctx context.Context, what, id, query string, args ...any) error {
	err := s.write(ctx, func(tx *wtx) error {
		res, err := tx.exec(query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound(what, id)
		}
		return nil
	})
	if err != nil && responder.ErrorCode(err) == responder.EINTERNAL {
		return fmt.Errorf("update %s: %w", strings.TrimSpace(what+" "+id), err)
	}
	return err
}

// ---- users ----

const userCols = `id, name, email, email_verified, image, created_at, updated_at, julep_user_id, responder_summary, responder_summary_at, role`

func scanUser(sc scanner) (*responder.User, error) {
	var u responder.User
	err := sc.Scan(&u.ID, &u.Name, &u.Email, &u.EmailVerified, &u.Image, timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt},
		&u.JulepUserID, &u.ResponderSummary, timeCol{&u.ResponderSummaryAt}, &u.Role)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateUser stores u with its email lowercased.
func (s *Store) CreateUser(ctx context.Context, u *responder.User) error {
	id, err := newID("user", u.ID)
	if err != nil {
		return err
	}
	email := strings.ToLower(strings.TrimSpace(u.Email))
	if email == "" {
		return responder.Errorf(responder.EINVALID, "user has no email")
	}
	at := now()
	err = s.write(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, u.Name, email, u.EmailVerified, u.Image, at.UnixMilli(), at.UnixMilli(),
			u.JulepUserID, u.ResponderSummary, optMS(u.ResponderSummaryAt), u.Role)
		return err
	})
	if isUnique(err) {
		return responder.Errorf(responder.ECONFLICT, "a user with email %s already exists", email)
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", email, err)
	}
	u.ID, u.Email, u.CreatedAt, u.UpdatedAt = id, email, at, at
	u.ResponderSummaryAt = msTimeOpt(u.ResponderSummaryAt)
	return nil
}

func msTimeOpt(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return msTime(t)
}

// UserByID returns a user by id.
func (s *Store) UserByID(ctx context.Context, id string) (*responder.User, error) {
	key, ok := normID(id)
	if !ok {
		return nil, notFound("user", id)
	}
	return s.user(ctx, "user", id, `WHERE id = ?`, key)
}

// UserByEmail returns a user by email, case-insensitively.
func (s *Store) UserByEmail(ctx context.Context, email string) (*responder.User, error) {
	return s.user(ctx, "user with email", email, `WHERE email = ?`, strings.ToLower(strings.TrimSpace(email)))
}

func (s *Store) user(ctx context.Context, what, key, where string, arg any) (*responder.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(what, key)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, key, err)
	}
	return u, nil
}

// SetUserJulepID stores the user's Julep user id.
func (s *Store) SetUserJulepID(ctx context.Context, userID, julepUserID string) error {
	key, ok := normID(userID)
	if !ok {
		return notFound("user", userID)
	}
	return s.updateOne(ctx, "user", userID, `UPDATE users SET julep_user_id = ?, updated_at = ? WHERE id = ?`,
		julepUserID, now().UnixMilli(), key)
}

// SetResponderSummary stores the latest turn summary and when it was written.
func (s *Store) SetResponderSummary(ctx context.Context, userID, summary string, at time.Time) error {
	key, ok := normID(userID)
	if !ok {
		return notFound("user", userID)
	}
	return s.updateOne(ctx, "user", userID, `UPDATE users SET responder_summary = ?, responder_summary_at = ?, updated_at = ? WHERE id = ?`,
		summary, optMS(at), now().UnixMilli(), key)
}

// ---- accounts ----

const accountCols = `id, account_id, provider_id, user_id, access_token, refresh_token, id_token,
	access_token_expires_at, refresh_token_expires_at, scope, created_at, updated_at`

// CreateAccount stores a; (provider, account id) is unique.
func (s *Store) CreateAccount(ctx context.Context, a *responder.Account) error {
	id, err := newID("account", a.ID)
	if err != nil {
		return err
	}
	if a.ProviderID == "" || a.AccountID == "" {
		return responder.Errorf(responder.EINVALID, "account needs a provider id and an account id")
	}
	at := now()
	err = s.write(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO accounts (`+accountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, a.AccountID, a.ProviderID, a.UserID, a.AccessToken, a.RefreshToken, a.IDToken,
			optMS(a.AccessTokenExpiresAt), optMS(a.RefreshTokenExpiresAt), a.Scope, at.UnixMilli(), at.UnixMilli())
		return err
	})
	if isUnique(err) {
		return responder.Errorf(responder.ECONFLICT, "account %s at %s already exists", a.AccountID, a.ProviderID)
	}
	if err != nil {
		return fmt.Errorf("create account %s at %s: %w", a.AccountID, a.ProviderID, err)
	}
	a.ID, a.CreatedAt, a.UpdatedAt = id, at, at
	a.AccessTokenExpiresAt, a.RefreshTokenExpiresAt = msTimeOpt(a.AccessTokenExpiresAt), msTimeOpt(a.RefreshTokenExpiresAt)
	return nil
}

// AccountByProvider returns the account a provider knows as accountID.
func (s *Store) AccountByProvider(ctx context.Context, providerID, accountID string) (*responder.Account, error) {
	var a responder.Account
	err := s.queryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE provider_id = ? AND account_id = ?`,
		providerID, accountID).Scan(&a.ID, &a.AccountID, &a.ProviderID, &a.UserID, &a.AccessToken, &a.RefreshToken, &a.IDToken,
		timeCol{&a.AccessTokenExpiresAt}, timeCol{&a.RefreshTokenExpiresAt}, &a.Scope, timeCol{&a.CreatedAt}, timeCol{&a.UpdatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, responder.Errorf(responder.ENOTFOUND, "account %q at %q not found", accountID, providerID)
	}
	if err != nil {
		return nil, fmt.Errorf("read account %s at %s: %w", accountID, providerID, err)
	}
	return &a, nil
}

// UpdateAccountTokens replaces the tokens, expiries and scope of account a.ID.
func (s *Store) UpdateAccountTokens(ctx context.Context, a *responder.Account) error {
	key, ok := normID(a.ID)
	if !ok {
		return notFound("account", a.ID)
	}
	at := now()
	err := s.updateOne(ctx, "account", a.ID, `UPDATE accounts SET access_token = ?, refresh_token = ?, id_token = ?,
		access_token_expires_at = ?, refresh_token_expires_at = ?, scope = ?, updated_at = ? WHERE id = ?`,
		a.AccessToken, a.RefreshToken, a.IDToken, optMS(a.AccessTokenExpiresAt), optMS(a.RefreshTokenExpiresAt),
		a.Scope, at.UnixMilli(), key)
	if err == nil {
		a.UpdatedAt = at
	}
	return err
}

// ---- sessions ----

const sessionCols = `id, token, user_id, expires_at, created_at, updated_at, ip_address, user_agent`

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, ss *responder.Session) error {
	id, err := newID("session", ss.ID)
	if err != nil {
		return err
	}
	if ss.Token == "" || ss.ExpiresAt.IsZero() {
		return responder.Errorf(responder.EINVALID, "session needs a token and an expiry")
	}
	at := now()
	err = s.write(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, ss.Token, ss.UserID, ss.ExpiresAt.UnixMilli(), at.UnixMilli(), at.UnixMilli(), ss.IPAddress, ss.UserAgent)
		return err
	})
	if isUnique(err) {
		return responder.Errorf(responder.ECONFLICT, "session already exists")
	}
	if err != nil {
		return fmt.Errorf("create session of user %s: %w", ss.UserID, err)
	}
	ss.ID, ss.CreatedAt, ss.UpdatedAt, ss.ExpiresAt = id, at, at, msTime(ss.ExpiresAt)
	return nil
}

// SessionByToken returns an unexpired session by its token.
func (s *Store) SessionByToken(ctx context.Context, token string) (*responder.Session, error) {
	var ss responder.Session
	err := s.queryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE token = ? AND expires_at > ?`,
		token, now().UnixMilli()).Scan(&ss.ID, &ss.Token, &ss.UserID, timeCol{&ss.ExpiresAt}, timeCol{&ss.CreatedAt},
		timeCol{&ss.UpdatedAt}, &ss.IPAddress, &ss.UserAgent)
	if errors.Is(err, sql.ErrNoRows) {
		// The token is a secret: it is not repeated in the message.
		return nil, responder.Errorf(responder.ENOTFOUND, "session not found or expired")
	}
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	return &ss, nil
}

// ExtendSession sets a session's ExpiresAt and UpdatedAt.
func (s *Store) ExtendSession(ctx context.Context, token string, expiresAt time.Time) error {
	err := s.updateOne(ctx, "session", "", `UPDATE sessions SET expires_at = ?, updated_at = ? WHERE token = ?`,
		expiresAt.UnixMilli(), now().UnixMilli(), token)
	if responder.IsNotFound(err) {
		return responder.Errorf(responder.ENOTFOUND, "session not found")
	}
	return err
}

// DeleteSession removes a session; a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	err := s.write(ctx, func(tx *wtx) error {
		_, err := tx.exec(`DELETE FROM sessions WHERE token = ?`, token)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
