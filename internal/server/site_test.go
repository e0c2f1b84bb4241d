package server

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestDNSRebinding replays the attack: a page on attacker.example, its name
// re-pointed at this loopback server, sends the attacker's Host and an
// Origin equal to it. Nothing answers it but health.
func TestDNSRebinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.devLogin = true })
	alice := e.newUser("Alice")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.srv.URL, "http://"))
	evilHost := "attacker.example:" + port
	evil := []string{"Host", evilHost, "Origin", "http://" + evilHost}

	for _, c := range []struct {
		name, method, path, cookie string
		body                       []byte
	}{
		{"dev login", http.MethodPost, "/api/auth/dev-login", "", []byte(`{"email":"alice@example.com"}`)},
		{"read messages", http.MethodGet, "/api/responder/messages", alice.withCookie(), nil},
		{"post message", http.MethodPost, "/api/responder/messages", alice.withCookie(), []byte(`{"content":"hi"}`)},
		{"session", http.MethodGet, "/api/auth/session", alice.withCookie(), nil},
	} {
		r := e.do(c.method, c.path, c.cookie, c.body, evil...)
		if r.status != http.StatusMisdirectedRequest || !strings.Contains(string(r.body), `Host \"`+evilHost+`\" is not served here`) {
			t.Errorf("%s with Host %s: %d %s, want 421 naming the host", c.name, evilHost, r.status, r.body)
		}
		if strings.Contains(string(r.body), alice.ID) || len(r.header.Values("Set-Cookie")) > 0 {
			t.Errorf("%s leaked a session or data: %v %s", c.name, r.header, r.body)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{"Cookie": {alice.withCookie()}, "Origin": {"http://" + evilHost}}
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/api/responder/socket",
		&websocket.DialOptions{HTTPHeader: h, Host: evilHost})
	if err == nil {
		c.CloseNow()
		t.Fatal("the socket opened for a rebound Host")
	}
	if res == nil || res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("socket with Host %s: %v, want 421", evilHost, err)
	}

	// Health answers whatever the Host: probes use IPs.
	if r := e.do(http.MethodGet, "/healthz", "", nil, "Host", "10.1.2.3:8080"); r.status != http.StatusOK {
		t.Errorf("/healthz with an IP Host: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/readyz", "", nil, "Host", evilHost); r.status != http.StatusOK {
		t.Errorf("/readyz with another Host: %d %s", r.status, r.body)
	}

	// The right Host with the attacker's Origin is a cross-site request.
	if r := e.do(http.MethodPost, "/api/auth/dev-login", "", []byte(`{"email":"alice@example.com"}`), "Origin", "http://"+evilHost); r.status != http.StatusForbidden {
		t.Errorf("dev login from a foreign Origin: %d %s, want 403", r.status, r.body)
	}
	// This machine's own page may sign in.
	if r := e.do(http.MethodPost, "/api/auth/dev-login", "", []byte(`{"email":"alice@example.com"}`), "Origin", "http://localhost:"+port, "Host", "localhost:"+port); r.status != http.StatusOK {
		t.Errorf("dev login from http://localhost:%s: %d %s", port, r.status, r.body)
	}
}

// TestCrossSiteSignOut: a form or text/plain fetch from another site must
// not end the person's session.
func TestCrossSiteSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.devLogin = true })
	alice := e.newUser("Alice")
	post := func(header ...string) response {
		req := []string{"Content-Type", "text/plain"}
		return e.do(http.MethodPost, "/api/auth/sign-out", alice.withCookie(), []byte("x"), append(req, header...)...)
	}
	if r := post("Origin", "https://evil.example"); r.status != http.StatusForbidden {
		t.Errorf("cross-site sign-out: %d %s, want 403", r.status, r.body)
	}
	if r := post("Sec-Fetch-Site", "cross-site"); r.status != http.StatusForbidden {
		t.Errorf("cross-site sign-out without Origin: %d %s, want 403", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/api/responder/messages", alice.withCookie(), nil); r.status != http.StatusOK {
		t.Fatalf("the session did not survive: %d %s", r.status, r.body)
	}
	if r := post("Origin", testOrigin); r.status != http.StatusOK {
		t.Errorf("sign-out from the dashboard: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/api/responder/messages", alice.withCookie(), nil); r.status != http.StatusUnauthorized {
		t.Errorf("after sign-out: %d %s", r.status, r.body)
	}
}

// TestHostsOnAPublicListener: off loopback, only the configured origins'
// hosts are served; loopback names are not.
func TestHostsOnAPublicListener(t *testing.T) {
	t.Parallel()
	h := New(Deps{AllowedOrigins: []string{"https://app.example.com", "http://other.example:8080"}, Ready: func(context.Context) error { return nil },
		Dashboard: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("dash")) })})
	for host, want := range map[string]int{
		"app.example.com":     http.StatusOK,
		"APP.example.com:443": http.StatusOK,
		"other.example:8080":  http.StatusOK,
		"other.example":       http.StatusMisdirectedRequest,
		"localhost:8080":      http.StatusMisdirectedRequest,
		"10.0.0.5:8080":       http.StatusMisdirectedRequest,
		"attacker.example":    http.StatusMisdirectedRequest,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 8080}))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %s: %d %s, want %d", host, w.Code, w.Body, want)
		}
	}
}
