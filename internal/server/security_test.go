package server

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/responder"
)

const (
	aliceMarker = "ALICE-SECRET-7f3a"
	bobMarker   = "BOB-NOTE-91c2"
)

// TestSecurity drives every route and the socket with every kind of bad
// credential and checks the status and that none of Alice's data leaks to
// anyone but Alice.
func TestSecurity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	alice, bob := e.newUser("Alice"), e.newUser("Bob")

	aliceMsg := responder.Message{UserID: alice.ID, JulepUserID: responder.JulepUserID(alice.ID), Content: "message " + aliceMarker,
		Metadata: map[string]any{"note": aliceMarker}}
	if err := e.store.Enqueue(ctx, &aliceMsg); err != nil {
		t.Fatal(err)
	}
	bobMsg := responder.Message{UserID: bob.ID, JulepUserID: responder.JulepUserID(bob.ID), Content: "message " + bobMarker}
	if err := e.store.Enqueue(ctx, &bobMsg); err != nil {
		t.Fatal(err)
	}
	e.event(alice.ID, "event "+aliceMarker)
	e.event(bob.ID, "event "+bobMarker)
	aliceAudio := responder.Blob{UserID: alice.ID, ContentType: "audio/mpeg", Data: []byte("audio " + aliceMarker)}
	if err := e.store.PutBlob(ctx, &aliceAudio); err != nil {
		t.Fatal(err)
	}

	expired := e.newSession(alice.ID, time.Now().Add(-time.Minute))
	deleted := e.newSession(alice.ID, time.Now().Add(time.Hour))
	if err := e.store.DeleteSession(ctx, deleted.Token); err != nil {
		t.Fatal(err)
	}

	creds := []struct {
		name   string
		cookie string
		origin string
		// status by route; 0 means the route's success status
		want func(route string) int
		// owner: the data the caller may see is Alice's
		owner bool
	}{
		{name: "no cookie", want: unauthorized},
		{name: "malformed cookie", cookie: "better-auth.session_token=%%%garbage", want: unauthorized},
		{name: "unsigned token", cookie: "better-auth.session_token=" + alice.session.Token, want: unauthorized},
		{name: "wrong signature", cookie: "better-auth.session_token=" + auth.Sign("another-secret", alice.session.Token), want: unauthorized},
		{name: "expired session", cookie: cookieFor(expired.Token), want: unauthorized},
		{name: "deleted session", cookie: cookieFor(deleted.Token), want: unauthorized},
		{name: "unknown token", cookie: cookieFor("no-such-token"), want: unauthorized},
		{name: "another user's session", cookie: bob.withCookie(), want: func(route string) int {
			if route == "execution" || route == "audio" {
				return http.StatusNotFound // never reveal that Alice's message or audio exists
			}
			return 0
		}},
		{name: "wrong origin", cookie: alice.withCookie(), origin: "https://evil.example", want: func(string) int { return http.StatusForbidden }},
		{name: "null origin", cookie: alice.withCookie(), origin: "null", want: func(string) int { return http.StatusForbidden }},
		{name: "owner from the dashboard origin", cookie: alice.withCookie(), origin: testOrigin, want: func(string) int { return 0 }, owner: true},
	}
	routes := []struct {
		name, method, path string
		body               []byte
		ok                 int
	}{
		{"post", http.MethodPost, "/api/responder/messages", []byte(`{"content":"hi"}`), http.StatusAccepted},
		{"list", http.MethodGet, "/api/responder/messages", nil, http.StatusOK},
		{"execution", http.MethodGet, "/api/responder/messages/" + aliceMsg.ID + "/execution", nil, http.StatusOK},
		{"audio", http.MethodGet, responder.AudioPath(aliceAudio.ID), nil, http.StatusOK},
		{"socket", "", "", nil, http.StatusSwitchingProtocols},
	}
	for _, c := range creds {
		for _, rt := range routes {
			t.Run(c.name+"/"+rt.name, func(t *testing.T) {
				t.Parallel()
				want := c.want(rt.name)
				if want == 0 {
					want = rt.ok
				}
				var status int
				var body []byte
				if rt.name == "socket" {
					status, body = socketAttempt(t, e, c.cookie, c.origin)
				} else {
					res := e.do(rt.method, rt.path, c.cookie, rt.body, "Origin", c.origin)
					status, body = res.status, res.body
					if ct := res.header.Get("Content-Type"); status != rt.ok && !bytes.HasPrefix([]byte(ct), []byte("application/json")) {
						t.Errorf("error answered with Content-Type %q, want JSON", ct)
					}
				}
				if status != want {
					t.Errorf("status %d, want %d (body %s)", status, want, body)
				}
				if !c.owner && (bytes.Contains(body, []byte(aliceMarker)) || bytes.Contains(body, []byte(aliceMsg.ID))) {
					t.Errorf("Alice's data leaked: %s", body)
				}
				if !c.owner && bytes.Contains(body, []byte(aliceAudio.ID)) {
					t.Errorf("Alice's audio id leaked: %s", body)
				}
				if c.owner && rt.name != "post" && !bytes.Contains(body, []byte(aliceMarker)) && !bytes.Contains(body, []byte(aliceMsg.ID)) {
					t.Errorf("the owner does not see her own data: %s", body)
				}
				if want == http.StatusUnauthorized && string(body) != `{"error":"Unauthorized"}`+"\n" && string(body) != `{"error":"Unauthorized"}` {
					t.Errorf("401 body %q, want {\"error\":\"Unauthorized\"}", body)
				}
			})
		}
	}

	// Bob's post went to Bob, whatever he sees.
	msgs, err := e.store.UserMessages(ctx, alice.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.ID != aliceMsg.ID && m.Content == "hi" && m.UserID != alice.ID {
			t.Errorf("a post landed in Alice's outbox from another user: %+v", m)
		}
	}
}

func unauthorized(string) int { return http.StatusUnauthorized }

// socketAttempt dials and returns the handshake status and everything the
// server sent: the refusal body, or the frames until a quiet moment.
func socketAttempt(t *testing.T, e *env, cookie, origin string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var hdr []string
	if origin != "" {
		hdr = []string{"Origin", origin}
	}
	c, res, err := e.dial(ctx, cookie, "", hdr...)
	if err != nil {
		if res == nil {
			t.Fatalf("dial: %v", err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		return res.StatusCode, b.Bytes()
	}
	defer c.CloseNow()
	// The first frame is init; ask for a heartbeat so the server has had
	// every chance to send anything more before we stop reading.
	f := readFrame(ctx, t, c)
	if f.Type != "messages:init" {
		t.Fatalf("first frame %s, want messages:init", f.raw)
	}
	out := append([]byte(nil), f.raw...)
	writeJSON(ctx, t, c, map[string]string{"type": "heartbeat"})
	for {
		f := readFrame(ctx, t, c)
		out = append(out, f.raw...)
		if f.Type == "heartbeat" {
			return http.StatusSwitchingProtocols, out
		}
	}
}

func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.deps.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("astra_up 1\n")) })
	})
	if r := e.do(http.MethodGet, "/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("/healthz %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/readyz", "", nil); r.status != http.StatusOK {
		t.Errorf("/readyz %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/metrics", "", nil); r.status != http.StatusOK || string(r.body) != "astra_up 1\n" {
		t.Errorf("/metrics %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/api/nope", "", nil); r.status != http.StatusNotFound || string(r.body) != "{\"error\":\"Not found\"}\n" {
		t.Errorf("unknown route %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodDelete, "/api/responder/messages", "", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE messages %d %s", r.status, r.body)
	}

	// A store that is gone makes the instance unready, with the reason.
	e.store.Close()
	r := e.do(http.MethodGet, "/readyz", "", nil)
	var body errorBody
	r.json(t, &body)
	if r.status != http.StatusServiceUnavailable || body.Error == "" {
		t.Errorf("/readyz with a closed store: %d %s", r.status, r.body)
	}
}
