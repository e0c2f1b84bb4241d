package mongo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/astra-app/astra/internal/responder"
)

// The Better Auth documents. Optional fields are omitted when empty, never
// null, as Better Auth writes them; foreign keys are ObjectIds.

type userDoc struct {
	ID                 bson.ObjectID `bson:"_id"`
	Name               string        `bson:"name"`
	Email              string        `bson:"email"`
	EmailVerified      bool          `bson:"emailVerified"`
	Image              string        `bson:"image,omitempty"`
	CreatedAt          time.Time     `bson:"createdAt"`
	UpdatedAt          time.Time     `bson:"updatedAt"`
	JulepUserID        string        `bson:"julepUserId,omitempty"`
	ResponderSummary   string        `bson:"responderSummary,omitempty"`
	ResponderSummaryAt time.Time     `bson:"responderSummaryAt,omitempty"`
	Role               string        `bson:"role,omitempty"` // Better Auth's admin plugin
}

func (d *userDoc) user() *responder.User {
	return &responder.User{
		ID:                 d.ID.Hex(),
		Name:               d.Name,
		Email:              d.Email,
		EmailVerified:      d.EmailVerified,
		Image:              d.Image,
		CreatedAt:          utc(d.CreatedAt),
		UpdatedAt:          utc(d.UpdatedAt),
		JulepUserID:        d.JulepUserID,
		ResponderSummary:   d.ResponderSummary,
		ResponderSummaryAt: utc(d.ResponderSummaryAt),
		Role:               d.Role,
	}
}

type sessionDoc struct {
	ID        bson.ObjectID `bson:"_id"`
	Token     string        `bson:"token"`
	UserID    userRef       `bson:"userId"`
	ExpiresAt time.Time     `bson:"expiresAt"`
	CreatedAt time.Time     `bson:"createdAt"`
	UpdatedAt time.Time     `bson:"updatedAt"`
	IPAddress string        `bson:"ipAddress,omitempty"`
	UserAgent string        `bson:"userAgent,omitempty"`
}

func (d *sessionDoc) session() *responder.Session {
	return &responder.Session{
		ID:        d.ID.Hex(),
		Token:     d.Token,
		UserID:    string(d.UserID),
		ExpiresAt: utc(d.ExpiresAt),
		CreatedAt: utc(d.CreatedAt),
		UpdatedAt: utc(d.UpdatedAt),
		IPAddress: d.IPAddress,
		UserAgent: d.UserAgent,
	}
}

type accountDoc struct {
	ID                    bson.ObjectID `bson:"_id"`
	AccountID             string        `bson:"accountId"`
	ProviderID            string        `bson:"providerId"`
	UserID                userRef       `bson:"userId"`
	AccessToken           string        `bson:"accessToken,omitempty"`
	RefreshToken          string        `bson:"refreshToken,omitempty"`
	IDToken               string        `bson:"idToken,omitempty"`
	AccessTokenExpiresAt  time.Time     `bson:"accessTokenExpiresAt,omitempty"`
	RefreshTokenExpiresAt time.Time     `bson:"refreshTokenExpiresAt,omitempty"`
	Scope                 string        `bson:"scope,omitempty"`
	CreatedAt             time.Time     `bson:"createdAt"`
	UpdatedAt             time.Time     `bson:"updatedAt"`
}

func (d *accountDoc) account() *responder.Account {
	return &responder.Account{
		ID:                    d.ID.Hex(),
		AccountID:             d.AccountID,
		ProviderID:            d.ProviderID,
		UserID:                string(d.UserID),
		AccessToken:           d.AccessToken,
		RefreshToken:          d.RefreshToken,
		IDToken:               d.IDToken,
		AccessTokenExpiresAt:  utc(d.AccessTokenExpiresAt),
		RefreshTokenExpiresAt: utc(d.RefreshTokenExpiresAt),
		Scope:                 d.Scope,
		CreatedAt:             utc(d.CreatedAt),
		UpdatedAt:             utc(d.UpdatedAt),
	}
}

// ---- users ----

// CreateUser stores a new user with a lowercased email. See the package
// comment for why the duplicate check is a read when Better Auth's unique
// email index is absent.
func (s *Store) CreateUser(ctx context.Context, u *responder.User) error {
	oid, err := newObjectID("user", u.ID)
	if err != nil {
		return err
	}
	email := strings.ToLower(strings.TrimSpace(u.Email))
	if email == "" {
		return responder.Errorf(responder.EINVALID, "user has no email")
	}
	if _, err := s.UserByEmail(ctx, email); err == nil {
		return responder.Errorf(responder.ECONFLICT, "a user with email %s already exists", email)
	} else if !responder.IsNotFound(err) {
		return err
	}
	t := now()
	d := userDoc{
		ID:                 oid,
		Name:               u.Name,
		Email:              email,
		EmailVerified:      u.EmailVerified,
		Image:              u.Image,
		CreatedAt:          t,
		UpdatedAt:          t,
		JulepUserID:        u.JulepUserID,
		ResponderSummary:   u.ResponderSummary,
		ResponderSummaryAt: ms(u.ResponderSummaryAt),
		Role:               u.Role,
	}
	if _, err := s.users.InsertOne(ctx, d); err != nil {
		if isDuplicate(err) {
			return responder.Errorf(responder.ECONFLICT, "a user with email %s or id %s already exists", email, oid.Hex())
		}
		return fmt.Errorf("create user %s: %w", email, err)
	}
	u.ID, u.Email, u.CreatedAt, u.UpdatedAt, u.ResponderSummaryAt = oid.Hex(), email, t, t, d.ResponderSummaryAt
	return nil
}

func (s *Store) findUser(ctx context.Context, what string, filter bson.D) (*responder.User, error) {
	var d userDoc
	if err := s.users.FindOne(ctx, filter).Decode(&d); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, responder.Errorf(responder.ENOTFOUND, "user %s not found", what)
		}
		return nil, fmt.Errorf("read user %s: %w", what, err)
	}
	return d.user(), nil
}

// UserByID returns a user by id.
func (s *Store) UserByID(ctx context.Context, id string) (*responder.User, error) {
	oid, ok := objectID(id)
	if !ok {
		return nil, notFound("user", id)
	}
	return s.findUser(ctx, id, bson.D{{Key: "_id", Value: oid}})
}

// UserByEmail returns a user by email, ignoring case: emails are stored
// lowercased, by Better Auth and by CreateUser.
func (s *Store) UserByEmail(ctx context.Context, email string) (*responder.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	return s.findUser(ctx, email, bson.D{{Key: "email", Value: email}})
}

func (s *Store) updateUser(ctx context.Context, what, id string, set bson.D) error {
	oid, ok := objectID(id)
	if !ok {
		return notFound("user", id)
	}
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}}, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return fmt.Errorf("%s of user %s: %w", what, id, err)
	}
	if res.MatchedCount == 0 {
		return notFound("user", id)
	}
	return nil
}

// SetUserJulepID stores the user's Julep user id.
func (s *Store) SetUserJulepID(ctx context.Context, userID, julepUserID string) error {
	return s.updateUser(ctx, "set Julep id", userID, bson.D{
		{Key: "julepUserId", Value: julepUserID},
		{Key: "updatedAt", Value: now()},
	})
}

// SetResponderSummary stores the latest turn summary and its time.
func (s *Store) SetResponderSummary(ctx context.Context, userID, summary string, at time.Time) error {
	return s.updateUser(ctx, "set responder summary", userID, bson.D{
		{Key: "responderSummary", Value: summary},
		{Key: "responderSummaryAt", Value: ms(at)},
		{Key: "updatedAt", Value: now()},
	})
}

// ---- accounts ----

// CreateAccount stores a provider link; the unique (providerId, accountId)
// index makes a second link of one identity ECONFLICT.
func (s *Store) CreateAccount(ctx context.Context, a *responder.Account) error {
	oid, err := newObjectID("account", a.ID)
	if err != nil {
		return err
	}
	if _, ok := objectID(a.UserID); !ok {
		return responder.Errorf(responder.EINVALID, "account user id %q is not a 24-hex id", a.UserID)
	}
	if a.ProviderID == "" || a.AccountID == "" {
		return responder.Errorf(responder.EINVALID, "account needs a provider id and an account id")
	}
	t := now()
	d := accountDoc{
		ID:                    oid,
		AccountID:             a.AccountID,
		ProviderID:            a.ProviderID,
		UserID:                userRef(a.UserID),
		AccessToken:           a.AccessToken,
		RefreshToken:          a.RefreshToken,
		IDToken:               a.IDToken,
		AccessTokenExpiresAt:  ms(a.AccessTokenExpiresAt),
		RefreshTokenExpiresAt: ms(a.RefreshTokenExpiresAt),
		Scope:                 a.Scope,
		CreatedAt:             t,
		UpdatedAt:             t,
	}
	if _, err := s.accounts.InsertOne(ctx, d); err != nil {
		if isDuplicate(err) {
			return responder.Errorf(responder.ECONFLICT, "%s account %s is already linked", a.ProviderID, a.AccountID)
		}
		return fmt.Errorf("create %s account %s: %w", a.ProviderID, a.AccountID, err)
	}
	a.ID, a.CreatedAt, a.UpdatedAt = oid.Hex(), t, t
	a.AccessTokenExpiresAt, a.RefreshTokenExpiresAt = d.AccessTokenExpiresAt, d.RefreshTokenExpiresAt
	return nil
}

// AccountByProvider returns the account of an identity at a provider.
func (s *Store) AccountByProvider(ctx context.Context, providerID, accountID string) (*responder.Account, error) {
	var d accountDoc
	err := s.accounts.FindOne(ctx, bson.D{{Key: "providerId", Value: providerID}, {Key: "accountId", Value: accountID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, responder.Errorf(responder.ENOTFOUND, "%s account %s not found", providerID, accountID)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s account %s: %w", providerID, accountID, err)
	}
	return d.account(), nil
}

// UpdateAccountTokens replaces an account's tokens, expiries and scope. An
// empty value removes its field, as Better Auth omits unset ones.
func (s *Store) UpdateAccountTokens(ctx context.Context, a *responder.Account) error {
	oid, ok := objectID(a.ID)
	if !ok {
		return notFound("account", a.ID)
	}
	t := now()
	set := bson.D{{Key: "updatedAt", Value: t}}
	unset := bson.D{}
	put := func(key string, v any, empty bool) {
		if empty {
			unset = append(unset, bson.E{Key: key, Value: ""})
		} else {
			set = append(set, bson.E{Key: key, Value: v})
		}
	}
	put("accessToken", a.AccessToken, a.AccessToken == "")
	put("refreshToken", a.RefreshToken, a.RefreshToken == "")
	put("idToken", a.IDToken, a.IDToken == "")
	put("accessTokenExpiresAt", ms(a.AccessTokenExpiresAt), a.AccessTokenExpiresAt.IsZero())
	put("refreshTokenExpiresAt", ms(a.RefreshTokenExpiresAt), a.RefreshTokenExpiresAt.IsZero())
	put("scope", a.Scope, a.Scope == "")
	update := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	res, err := s.accounts.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}}, update)
	if err != nil {
		return fmt.Errorf("update tokens of account %s: %w", a.ID, err)
	}
	if res.MatchedCount == 0 {
		return notFound("account", a.ID)
	}
	a.UpdatedAt = t
	return nil
}

// ---- sessions ----

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, sess *responder.Session) error {
	oid, err := newObjectID("session", sess.ID)
	if err != nil {
		return err
	}
	if _, ok := objectID(sess.UserID); !ok {
		return responder.Errorf(responder.EINVALID, "session user id %q is not a 24-hex id", sess.UserID)
	}
	if sess.Token == "" {
		return responder.Errorf(responder.EINVALID, "session has no token")
	}
	t := now()
	d := sessionDoc{
		ID:        oid,
		Token:     sess.Token,
		UserID:    userRef(sess.UserID),
		ExpiresAt: ms(sess.ExpiresAt),
		CreatedAt: t,
		UpdatedAt: t,
		IPAddress: sess.IPAddress,
		UserAgent: sess.UserAgent,
	}
	if _, err := s.sessions.InsertOne(ctx, d); err != nil {
		if isDuplicate(err) {
			return responder.Errorf(responder.ECONFLICT, "session %s already exists", oid.Hex())
		}
		return fmt.Errorf("create session for user %s: %w", sess.UserID, err)
	}
	sess.ID, sess.ExpiresAt, sess.CreatedAt, sess.UpdatedAt = oid.Hex(), d.ExpiresAt, t, t
	return nil
}

// SessionByToken returns an unexpired session. Expiry is checked here, not
// in the query, with Better Auth's rule: expired when expiresAt < now.
func (s *Store) SessionByToken(ctx context.Context, token string) (*responder.Session, error) {
	var d sessionDoc
	err := s.sessions.FindOne(ctx, bson.D{{Key: "token", Value: token}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, responder.Errorf(responder.ENOTFOUND, "session not found")
	}
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	if d.ExpiresAt.Before(time.Now()) {
		return nil, responder.Errorf(responder.ENOTFOUND, "session expired")
	}
	return d.session(), nil
}

// ExtendSession sets a session's expiry.
func (s *Store) ExtendSession(ctx context.Context, token string, expiresAt time.Time) error {
	res, err := s.sessions.UpdateOne(ctx, bson.D{{Key: "token", Value: token}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "expiresAt", Value: ms(expiresAt)},
		{Key: "updatedAt", Value: now()},
	}}})
	if err != nil {
		return fmt.Errorf("extend session: %w", err)
	}
	if res.MatchedCount == 0 {
		return responder.Errorf(responder.ENOTFOUND, "session not found")
	}
	return nil
}

// DeleteSession removes a session; a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if _, err := s.sessions.DeleteOne(ctx, bson.D{{Key: "token", Value: token}}); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
