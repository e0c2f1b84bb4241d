package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/server"
	"github.com/astra-app/astra/internal/stream"
)

// firstTokenDelay is the streaming test model's own time to first token:
// it answers every chat request this long after reading it.
const firstTokenDelay = 50 * time.Millisecond

const deltaBenchSecret = "delta-bench-secret-0123456789abcdef0123"

// product is the whole message path as astra serve assembles it: the HTTP
// API (real SQLite store, sessions, hub) with the dispatcher behind it and
// the embedded engine asking a streaming OpenAI-compatible model.
type product struct {
	srv    *httptest.Server
	st     responder.Store
	cookie string
	userID string
}

// person signs in another user and returns their session cookie.
func (p *product) person(b testing.TB, name string) string {
	b.Helper()
	u := newUser(b, p.st, name)
	s := &responder.Session{Token: "tok" + responder.NewID(), UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}
	if err := p.st.CreateSession(context.Background(), s); err != nil {
		b.Fatal(err)
	}
	return "better-auth.session_token=" + auth.Sign(deltaBenchSecret, s.Token)
}

func startProduct(b testing.TB, model *modelServer) *product {
	return startProductWith(b, model, server.Deps{})
}

// startProductWith is startProduct with the API's settings taken from deps
// (Store, Sessions, Hub and OnEnqueue are filled in).
func startProductWith(b testing.TB, model *modelServer, deps server.Deps) *product {
	b.Helper()
	st := openStore(b)
	je := startEngine(b, model.Model())
	hub := stream.NewHub(stream.Options{})
	r := runDispatcher(b, dispatch.Options{Store: st, Julep: je.Client, Hub: hub, TaskID: je.TaskID, Sweep: time.Second})
	sessions := auth.New(st, auth.Options{Secret: deltaBenchSecret})
	deps.Store, deps.Sessions, deps.Hub = st, sessions, hub
	deps.OnEnqueue = func(responder.Message) { r.d.Wake() }
	srv := httptest.NewServer(server.New(deps))
	b.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	u := newUser(b, st, "Delta Bench")
	s := &responder.Session{Token: "tok" + responder.NewID(), UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.CreateSession(context.Background(), s); err != nil {
		b.Fatal(err)
	}
	return &product{srv: srv, st: st, cookie: "better-auth.session_token=" + auth.Sign(deltaBenchSecret, s.Token), userID: u.ID}
}

// post sends a message as the dashboard does and returns its outbox id.
func (p *product) post(b testing.TB, content string) string {
	return p.postAs(b, p.cookie, content)
}

// postAs sends a message with the given session cookie.
func (p *product) postAs(b testing.TB, cookie, content string) string {
	body, _ := json.Marshal(map[string]any{"content": content})
	req, _ := http.NewRequest(http.MethodPost, p.srv.URL+"/api/responder/messages", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cookie", cookie)
	res, err := p.srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out struct {
		ID string `json:"id"`
	}
	if res.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &out) != nil || out.ID == "" {
		b.Fatalf("POST message: %d %s", res.StatusCode, raw)
	}
	return out.ID
}

// socketWatch reads a socket and notes when each outbox id's first delta
// and its assistant event arrived.
type socketWatch struct {
	mu     sync.Mutex
	delta  map[string]time.Time
	answer map[string]chan struct{}
	err    error
}

func (w *socketWatch) expect(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.answer[id]
	if !ok {
		ch = make(chan struct{})
		w.answer[id] = ch
	}
	return ch
}

func (w *socketWatch) firstDelta(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.delta[id]
	return t, ok
}

func (w *socketWatch) read(ctx context.Context, c *websocket.Conn) {
	for {
		_, raw, err := c.Read(ctx)
		at := time.Now()
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		var f struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if json.Unmarshal(raw, &f) != nil {
			continue
		}
		switch f.Type {
		case "messages:delta":
			var d struct {
				OutboxID string `json:"outboxId"`
			}
			_ = json.Unmarshal(f.Data, &d)
			w.mu.Lock()
			if _, seen := w.delta[d.OutboxID]; !seen {
				w.delta[d.OutboxID] = at
			}
			w.mu.Unlock()
		case "messages:append":
			var e struct {
				Role     string         `json:"role"`
				Metadata map[string]any `json:"metadata"`
			}
			_ = json.Unmarshal(f.Data, &e)
			id, _ := e.Metadata["outboxId"].(string)
			if e.Role != string(responder.RoleAssistant) || id == "" {
				continue
			}
			w.mu.Lock()
			ch, ok := w.answer[id]
			if !ok {
				ch = make(chan struct{})
				w.answer[id] = ch
			}
			select {
			case <-ch:
			default:
				close(ch)
			}
			w.mu.Unlock()
		}
	}
}

// BenchmarkTimeToFirstDelta: POST /api/responder/messages through the real
// server, to the first messages:delta frame of that message on the
// person's websocket, less the model's own time to first token
// (firstTokenDelay). Each message is answered before the next is sent.
// Reports p50/p99 of that overhead ("over-model") and the raw figures.
func BenchmarkTimeToFirstDelta(b *testing.B) {
	model := newModelServer(b,
		func(user string) string { return "Here is a streamed answer to " + user + ", word by word." },
		func(string) string { return "They asked; the answer streamed." })
	model.delay = firstTokenDelay
	p := startProduct(b, model)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := "ws" + strings.TrimPrefix(p.srv.URL, "http") + "/api/responder/socket"
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {p.cookie}}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 24)
	w := &socketWatch{delta: map[string]time.Time{}, answer: map[string]chan struct{}{}}
	go w.read(ctx, c)

	send := func() (time.Duration, bool) {
		start := time.Now()
		id := p.post(b, "what do the stars say?")
		select {
		case <-w.expect(id):
		case <-time.After(20 * time.Second):
			w.mu.Lock()
			err := w.err
			w.mu.Unlock()
			b.Fatalf("no answer on the socket within 20s (socket: %v)", err)
		}
		at, ok := w.firstDelta(id)
		return at.Sub(start), ok
	}
	// Warm up: the Julep user is ensured, connections are open.
	for range 3 {
		if _, ok := send(); !ok {
			b.Fatal("the answer arrived without deltas")
		}
	}

	over := make([]time.Duration, 0, b.N)
	raw := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, ok := send()
		if !ok {
			b.Fatal("the answer arrived without deltas")
		}
		raw = append(raw, d)
		over = append(over, d-firstTokenDelay)
	}
	b.StopTimer()
	reportPercentilesAs(b, over, "over-model")
	reportPercentilesAs(b, raw, "raw")
	b.ReportMetric(float64(firstTokenDelay.Milliseconds()), "model-first-token-ms")
}
