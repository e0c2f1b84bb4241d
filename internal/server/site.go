package server

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// The checks here keep a browser page from another site acting with the
// person's cookie, including through DNS rebinding: a name the attacker
// controls, re-pointed at this server, makes the browser send the
// attacker's Host and an Origin that equals it. So the Host must be one the
// server was configured for, and the Origin must be on the allowlist; a
// request's own Host is never evidence for its Origin.

// site is the hosts and origins the server answers for.
type site struct {
	origins map[string]bool // normalized scheme://host[:port]
	hosts   map[string]bool // lower-case host[:port] as a Host header carries it
}

func newSite(origins []string) site {
	s := site{origins: map[string]bool{}, hosts: map[string]bool{}}
	for _, o := range origins {
		o = normalizeOrigin(o)
		if o == "" {
			continue
		}
		s.origins[o] = true
		u, _ := url.Parse(o)
		s.hosts[u.Host] = true
		// A browser leaves the scheme's default port out of Host; a client
		// may spell it. Both name the same site.
		def := map[string]string{"http": "80", "https": "443"}[u.Scheme]
		if u.Port() == "" {
			s.hosts[net.JoinHostPort(u.Hostname(), def)] = true
		} else if u.Port() == def {
			s.hosts[hostOnly(u.Hostname())] = true
		}
	}
	return s
}

func hostOnly(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// loopbackNames are what a browser on this machine calls a loopback listener.
var loopbackNames = []string{"localhost", "127.0.0.1", "[::1]"}

// localPort returns the port of the listener r arrived on when that
// listener address is loopback: then this machine's own names for it are
// served too (a newcomer's http://localhost:8080, or a same-host proxy that
// forwards to 127.0.0.1:8080), whatever port 0 turned into.
func localPort(r *http.Request) (string, bool) {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return "", false
	}
	ap, err := netip.ParseAddrPort(la.String())
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return "", false
	}
	return fmt.Sprint(ap.Port()), true
}

func (s site) hostAllowed(r *http.Request) bool {
	h := strings.ToLower(strings.TrimSuffix(r.Host, "."))
	if s.hosts[h] {
		return true
	}
	if port, ok := localPort(r); ok {
		for _, n := range loopbackNames {
			if h == n+":"+port {
				return true
			}
		}
	}
	return false
}

func (s site) originAllowed(r *http.Request, origin string) bool {
	o := normalizeOrigin(origin)
	if o == "" {
		return false // "null" (sandboxed frames, file://) and garbage
	}
	if s.origins[o] {
		return true
	}
	if port, ok := localPort(r); ok {
		for _, n := range loopbackNames {
			if o == "http://"+n+":"+port {
				return true
			}
		}
	}
	return false
}

// normalizeOrigin returns scheme://host[:port] in lower case, or "".
func normalizeOrigin(o string) string {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// checkHost answers 421 for a Host the server is not configured for.
func (s *server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.site.hostAllowed(r) {
			host := r.Host
			if len(host) > 100 {
				host = host[:100] + "..."
			}
			encode(w, http.StatusMisdirectedRequest, errorBody{Error: fmt.Sprintf("Host %q is not served here (see BETTER_AUTH_URL and ASTRA_ALLOWED_ORIGINS)", host)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkOrigin refuses (403) a request whose Origin is not on the
// allowlist: a cross-site page must not post messages or read the stream
// with the person's cookie. A request without Origin passes unless the
// browser says it is cross-site (Sec-Fetch-Site) and it changes state:
// browsers send Origin on cross-origin fetches, WebSocket handshakes and
// every POST, so a missing one is a non-browser client, which still needs
// a valid session.
func (s *server) checkOrigin(next http.Handler) http.Handler {
	return s.originCheck(next, true)
}

// checkOriginUnsafe is checkOrigin for state-changing methods only: GETs
// under /api/auth are navigations (the Google redirect and callback) that
// may arrive from another site.
func (s *server) checkOriginUnsafe(next http.Handler) http.Handler {
	return s.originCheck(next, false)
}

func (s *server) originCheck(next http.Handler, safeToo bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions
		if safe && !safeToo {
			next.ServeHTTP(w, r)
			return
		}
		o := r.Header.Get("Origin")
		if o != "" && !s.site.originAllowed(r, o) {
			encode(w, http.StatusForbidden, errorBody{Error: "Forbidden origin"})
			return
		}
		if o == "" && !safe && r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			encode(w, http.StatusForbidden, errorBody{Error: "Forbidden origin"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
