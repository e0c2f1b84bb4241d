package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	encode(w, http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
}

func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		// The reason is for operators and load balancers; it names a
		// dependency, not user data.
		encode(w, http.StatusServiceUnavailable, errorBody{Error: "Not ready: " + err.Error()})
		return
	}
	encode(w, http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
}

// checkOrigin refuses (403) a request whose Origin header names a site that
// is neither allowed nor the server itself: a cross-site page must not post
// messages or read the stream with the person's cookie. A request without
// Origin is not from a browser page making a cross-origin call (browsers
// always send it on cross-origin fetches and on WebSocket handshakes), so
// it passes here and still needs a valid session.
func (s *server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !s.originAllowed(o, r.Host) {
			encode(w, http.StatusForbidden, errorBody{Error: "Forbidden origin"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) originAllowed(origin, host string) bool {
	o := normalizeOrigin(origin)
	if o == "" {
		return false // "null" (sandboxed frames, file://) and garbage
	}
	if s.origins[o] {
		return true
	}
	u, _ := url.Parse(o)
	return strings.EqualFold(u.Host, host)
}

// normalizeOrigin returns scheme://host[:port] in lower case, or "".
func normalizeOrigin(o string) string {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}
