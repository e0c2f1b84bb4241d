package auth

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/astra-app/astra/internal/httpjson"
	"github.com/astra-app/astra/internal/responder"
)

// MountPath is where the server mounts Routes.
const MountPath = "/api/auth"

// RoutesDeps is everything the sign-in routes need.
type RoutesDeps struct {
	Store    responder.Auth // users and accounts (sessions go through Sessions)
	Sessions *Sessions
	// DevLogin enables POST /dev-login (config decides: no Google and a
	// loopback listener, or ASTRA_DEV_LOGIN=1).
	DevLogin bool
	// Google is nil when Google sign-in is not configured.
	Google *Google
	Logger *slog.Logger
}

func (d RoutesDeps) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

// Routes returns the /api/auth sub-router:
//
//	POST /dev-login   {email, name} -> {user, session}   (404 unless DevLogin)
//	GET  /session     -> {user, session} or 401
//	POST /sign-out    -> {"ok":true}
//	GET  /providers   -> {"google":bool,"devLogin":bool}
//	GET  /google      -> redirect to Google               (404 unless Google)
//	GET  <callback>   -> the Google callback, when GOOGLE_REDIRECT_URI's path is under /api/auth
//
// When the callback path is outside /api/auth, mount GoogleCallback(deps) at
// deps.Google.CallbackPath() yourself (or use Mount, which does both).
func Routes(deps RoutesDeps) http.Handler {
	r := chi.NewRouter()
	r.Post("/dev-login", deps.devLogin)
	r.Get("/session", deps.session)
	r.Post("/sign-out", deps.signOut)
	r.Get("/providers", deps.providers)
	r.Get("/google", deps.googleStart)
	if deps.Google != nil {
		if rel, ok := strings.CutPrefix(deps.Google.CallbackPath(), MountPath+"/"); ok {
			r.Get("/"+rel, deps.googleCallback)
		}
	}
	return r
}

// GoogleCallback returns the Google callback handler on its own, for a
// redirect URI whose path is outside /api/auth.
func GoogleCallback(deps RoutesDeps) http.Handler { return http.HandlerFunc(deps.googleCallback) }

// Mount mounts Routes at MountPath on r and, when the Google callback path
// lies outside it, the callback at its own path.
func Mount(r chi.Router, deps RoutesDeps) {
	r.Mount(MountPath, Routes(deps))
	if deps.Google != nil && !strings.HasPrefix(deps.Google.CallbackPath(), MountPath+"/") {
		r.Get(deps.Google.CallbackPath(), deps.googleCallback)
	}
}

// userView and sessionView are what the browser sees: Better Auth's shapes,
// minus the session token (the cookie carries it; scripts never need it).
type userView struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"emailVerified"`
	Image         string    `json:"image,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

type sessionView struct {
	ID        string    `json:"id"`
	UserID    string    `json:"userId"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	IPAddress string    `json:"ipAddress,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
}

type identityView struct {
	User    userView    `json:"user"`
	Session sessionView `json:"session"`
}

func viewOf(u *responder.User, s *responder.Session) identityView {
	return identityView{
		User: userView{ID: u.ID, Name: u.Name, Email: u.Email, EmailVerified: u.EmailVerified,
			Image: u.Image, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt},
		Session: sessionView{ID: s.ID, UserID: s.UserID, ExpiresAt: s.ExpiresAt, CreatedAt: s.CreatedAt,
			UpdatedAt: s.UpdatedAt, IPAddress: s.IPAddress, UserAgent: s.UserAgent},
	}
}

func (d RoutesDeps) session(w http.ResponseWriter, r *http.Request) {
	id, err := d.Sessions.Authenticate(w, r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(id.User, id.Session))
}

func (d RoutesDeps) signOut(w http.ResponseWriter, r *http.Request) {
	if err := d.Sessions.End(r.Context(), w, r); err != nil {
		d.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (d RoutesDeps) providers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]bool{"google": d.Google != nil, "devLogin": d.DevLogin})
}

const (
	maxEmailLen = 254 // RFC 5321 path limit
	maxNameLen  = 100
	maxAuthBody = 16 << 10
)

func (d RoutesDeps) devLogin(w http.ResponseWriter, r *http.Request) {
	if !d.DevLogin {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "Not found"})
		return
	}
	// Requiring JSON also keeps a cross-site HTML form from signing someone
	// in: a JSON content type cannot be sent without a CORS preflight.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		d.fail(w, r, responder.Errorf(responder.EUNSUPPORTED, "Content-Type must be application/json"))
		return
	}
	var in struct {
		Email *string `json:"email"`
		Name  *string `json:"name"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAuthBody))
	if err := dec.Decode(&in); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			d.fail(w, r, responder.Errorf(responder.ETOOLARGE, "Request body is too large"))
			return
		}
		d.fail(w, r, responder.Errorf(responder.EINVALID, "Invalid JSON"))
		return
	}
	email, name, err := validDevLogin(in.Email, in.Name)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	u, err := d.Store.UserByEmail(r.Context(), email)
	if responder.IsNotFound(err) {
		u = &responder.User{Email: email, Name: name}
		err = d.Store.CreateUser(r.Context(), u)
		if responder.IsConflict(err) { // created by a concurrent request
			u, err = d.Store.UserByEmail(r.Context(), email)
		}
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	sess, err := d.Sessions.Start(r.Context(), w, r, u)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.logger().Info("dev login", "user", u.ID)
	writeJSON(w, http.StatusOK, viewOf(u, sess))
}

// validDevLogin checks a dev-login request and returns the lowercased email
// and the display name (the email's local part when none was given).
func validDevLogin(emailIn, nameIn *string) (email, name string, err error) {
	if emailIn == nil || strings.TrimSpace(*emailIn) == "" {
		return "", "", responder.Errorf(responder.EINVALID, "Email is required")
	}
	email = strings.ToLower(strings.TrimSpace(*emailIn))
	if len(email) > maxEmailLen {
		return "", "", responder.Errorf(responder.EINVALID, "Email is too long (at most %d characters)", maxEmailLen)
	}
	addr, perr := mail.ParseAddress(email)
	if perr != nil || addr.Name != "" || addr.Address != email || !strings.Contains(email, "@") {
		return "", "", responder.Errorf(responder.EINVALID, "Email must look like name@example.com")
	}
	if nameIn != nil {
		name = strings.TrimSpace(*nameIn)
	}
	if utf8.RuneCountInString(name) > maxNameLen {
		return "", "", responder.Errorf(responder.EINVALID, "Name is too long (at most %d characters)", maxNameLen)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", "", responder.Errorf(responder.EINVALID, "Name must not contain control characters")
	}
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	return email, name, nil
}

type errorBody = httpjson.ErrorBody

// fail answers err as {"error": message} with the status of its code.
func (d RoutesDeps) fail(w http.ResponseWriter, r *http.Request, err error) {
	httpjson.Error(w, r, d.logger(), err)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }
