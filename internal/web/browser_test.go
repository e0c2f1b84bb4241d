package web

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/server"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/stream"
	"github.com/astra-app/astra/internal/web/browsertest"
)

const browserSecret = "browser-test-secret-0123456789abcdef"

// site is the real API (server.New) with the real auth routes, dev login on,
// a SQLite store and a hub, serving this package's dashboard.
type site struct {
	store    *sqlite.Store
	hub      *stream.Hub
	sessions *auth.Sessions
	srv      *httptest.Server
}

func newSite(t *testing.T) *site {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &site{store: st, hub: stream.NewHub(stream.Options{Rows: st}), sessions: auth.New(st, auth.Options{Secret: browserSecret})}
	// Open sockets are requests httptest.Server.Close waits for: end them
	// first (cleanups run last-registered first).
	sockets, closeSockets := context.WithCancel(context.Background())
	api := server.New(server.Deps{
		Store: st, Sessions: s.sessions, Hub: s.hub, Context: sockets,
		AuthRoutes: auth.Routes(auth.RoutesDeps{Store: st, Sessions: s.sessions, DevLogin: true}),
		Dashboard:  Handler(),
		Execution: func(_ context.Context, id string) (any, error) {
			t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
			return map[string]any{
				"id": id, "status": "succeeded", "created_at": t0, "updated_at": t0.Add(1500 * time.Millisecond),
				"transitions": map[string]any{"items": []map[string]any{
					{"type": "init", "current": map[string]any{"workflow": "main", "step": 0}, "created_at": t0},
					{"type": "step", "current": map[string]any{"workflow": "main", "step": 1}, "created_at": t0.Add(time.Second)},
					{"type": "finish", "current": map[string]any{"workflow": "main", "step": 2}, "created_at": t0.Add(1500 * time.Millisecond)},
				}},
			}, nil
		},
	})
	s.srv = httptest.NewServer(api)
	t.Cleanup(s.srv.Close)
	t.Cleanup(closeSockets)
	return s
}

// TestBrowserSignInScreen loads the dashboard at phone width: the dev login
// form shows (Google is not configured), nothing overflows sideways, and the
// console stays clean.
func TestBrowserSignInScreen(t *testing.T) {
	s := newSite(t)
	b := browsertest.New(t, 375, 740) // closed before the site
	b.Do(t, "open the dashboard", chromedp.Navigate(s.srv.URL), chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)))
	b.WaitFor(t, "the sign-in screen", `!document.querySelector('[data-testid=signin]').hidden &&
		document.querySelector('[data-testid=boot]').hidden &&
		!document.querySelector('[data-testid=devlogin-form]').hidden &&
		document.querySelector('[data-testid=login-google]').hidden`)
	b.Screenshot(t, "signin-375")
	if w := browsertest.Eval[int](t, b, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("page is %d px wide at a 375 px viewport", w)
	}
	if label := browsertest.Eval[string](t, b, `document.querySelector('label[for=login-email]').textContent`); label != "Email" {
		t.Errorf("email label %q", label)
	}
	// The anonymous session probe answers 401, which the browser logs as a
	// failed resource load; anything else is a defect.
	var bad []string
	for _, p := range b.Problems(false) {
		if !strings.Contains(p, "401") {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("console problems: %v", bad)
	}
}

// TestBrowserConversation drives the dashboard through a whole exchange,
// playing the dispatcher's part with the store and the hub: dev login, the
// live socket, sending with Enter, the character limit, each state of the
// message, streamed deltas replaced by the final reply, audio, reconnect and
// resume without duplicates, the execution panel, and sign-out.
func TestBrowserConversation(t *testing.T) {
	s := newSite(t)
	b := browsertest.New(t, 375, 740) // closed before the site
	ctx := t.Context()

	b.Do(t, "dev login",
		chromedp.Navigate(s.srv.URL),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-email]`), "Ada@Example.com"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-name]`), "Ada"),
		chromedp.Click(chromedp.CSS(`[data-testid=login-submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=composer]`)),
	)
	b.WaitFor(t, "a live socket", `document.querySelector('[data-testid=conn-state]').dataset.state === 'live'`)
	u, err := s.store.UserByEmail(ctx, "ada@example.com")
	if err != nil {
		t.Fatalf("dev login stored no user: %v", err)
	}

	// The counter and the limit.
	browsertest.Eval[chromedp.Void](t, b, `(() => { const c = document.querySelector('[data-testid=composer]');
		c.value = 'x'.repeat(2001); c.dispatchEvent(new Event('input')); })()`)
	if !browsertest.Eval[bool](t, b, `document.querySelector('[data-testid=send]').disabled &&
		document.querySelector('[data-testid=counter]').classList.contains('over') &&
		document.querySelector('[data-testid=counter]').textContent === '2001 / 2000'`) {
		t.Error("a 2001-character message is not blocked by the counter and send button")
	}
	browsertest.Eval[chromedp.Void](t, b, `(() => { const c = document.querySelector('[data-testid=composer]');
		c.value = ''; c.dispatchEvent(new Event('input')); })()`)

	// Send with Enter: the message shows as pending.
	b.Do(t, "type and send", chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), "Hello Astra\r"))
	b.WaitFor(t, "the sent message, pending", `(() => { const m = document.querySelector('[data-testid=sent-message]');
		return m && m.querySelector('.body').textContent === 'Hello Astra' &&
			m.querySelector('[data-testid=outbox-status]').dataset.status === 'pending'; })()`)
	// (The row can arrive over the socket before the POST's answer clears the composer.)
	b.WaitFor(t, "the composer cleared after sending", `document.querySelector('[data-testid=composer]').value === ''`)
	msgs, err := s.store.UserMessages(ctx, u.ID, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Content != "Hello Astra" {
		t.Fatalf("outbox after send: %+v, %v", msgs, err)
	}
	m := msgs[0]

	// The dispatcher claims it: processing.
	if c, err := s.store.Claim(ctx, "w1", time.Minute, 0); err != nil || c == nil || c.ID != m.ID {
		t.Fatalf("claim: %+v, %v", c, err)
	}
	if err := s.store.SetExecution(ctx, m.ID, "w1", "exec-1"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.store.Message(ctx, m.ID); err == nil {
		s.hub.PublishOutbox(*c) // as the dispatcher does at the claim
	}
	b.WaitFor(t, "processing", `document.querySelector('[data-testid=sent-message] [data-testid=outbox-status]').dataset.status === 'processing'`)

	// Token deltas grow a reply bubble; a repeated index does not duplicate text.
	for i, d := range []string{"Namaste", ", Ada", ", Ada"} {
		idx := min(i, 1)
		s.hub.PublishTransient(u.ID, map[string]any{"type": "messages:delta",
			"data": map[string]any{"outboxId": m.ID, "executionId": "exec-1", "delta": d, "index": idx}})
	}
	b.WaitFor(t, "the streaming bubble", `(() => { const n = document.querySelector('[data-testid=message-streaming]');
		return n && n.querySelector('.body').textContent === 'Namaste, Ada'; })()`)

	// The final reply replaces the bubble; the message is delivered.
	reply := &responder.Event{UserID: u.ID, OutboxID: m.ID, ExecutionID: "exec-1", Role: responder.RoleAssistant,
		Content: "Namaste, Ada! The stars are kind today.", DedupeKey: m.ID + ":reply",
		Metadata: map[string]any{"outboxId": m.ID, "audioUrl": "/audio/reply.mp3"}}
	if _, err := s.store.AppendEvent(ctx, reply); err != nil {
		t.Fatal(err)
	}
	if err := s.store.Deliver(ctx, m.ID, "w1"); err != nil {
		t.Fatal(err)
	}
	s.hub.PublishEvent(*reply)
	b.WaitFor(t, "the final reply", fmt.Sprintf(`(() => {
		const n = document.querySelector('[data-testid=message][data-event-id=%q]');
		return n && n.dataset.role === 'assistant' && n.querySelector('.body').textContent === %q &&
			!document.querySelector('[data-testid=message-streaming]') &&
			n.querySelector('[data-testid=audio]') && n.querySelector('[data-testid=audio]').getAttribute('src').endsWith('/audio/reply.mp3');
	})()`, reply.ID, reply.Content))
	b.WaitFor(t, "delivered", `document.querySelector('[data-testid=sent-message] [data-testid=outbox-status]').dataset.status === 'delivered'`)
	if got := browsertest.Eval[string](t, b, `document.getElementById('announcer').textContent`); !strings.Contains(got, reply.Content) {
		t.Errorf("the reply was not announced to screen readers: %q", got)
	}
	// A late delta for a finished reply is ignored.
	s.hub.PublishTransient(u.ID, map[string]any{"type": "messages:delta",
		"data": map[string]any{"outboxId": m.ID, "executionId": "exec-1", "delta": "late", "index": 9}})

	// Drop the connection; an event stored meanwhile arrives after the
	// reconnect (resume with ?after=), and nothing is shown twice.
	browsertest.Eval[chromedp.Void](t, b, `window.dispatchEvent(new Event('offline'))`)
	b.WaitFor(t, "offline", `document.querySelector('[data-testid=conn-state]').dataset.state === 'offline'`)
	missed := &responder.Event{UserID: u.ID, Role: responder.RoleSystem, Content: "Your chart was updated.", DedupeKey: "missed-1"}
	if _, err := s.store.AppendEvent(ctx, missed); err != nil {
		t.Fatal(err)
	}
	browsertest.Eval[chromedp.Void](t, b, `window.dispatchEvent(new Event('online'))`)
	b.WaitFor(t, "live again", `document.querySelector('[data-testid=conn-state]').dataset.state === 'live'`)
	b.WaitFor(t, "the missed event", fmt.Sprintf(`!!document.querySelector('[data-testid=message][data-event-id=%q]')`, missed.ID))
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll('[data-testid=message]').length`); n != 2 {
		t.Errorf("%d messages after the reconnect, want 2 (reply + missed event)", n)
	}
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll('[data-testid=message-streaming]').length`); n != 0 {
		t.Errorf("a late delta re-opened a streaming bubble")
	}

	// The execution panel.
	b.Do(t, "open the execution panel", chromedp.Click(chromedp.CSS(`[data-testid=sent-message] [data-testid=show-execution]`)))
	b.WaitFor(t, "the execution panel", `(() => { const p = document.querySelector('[data-testid=execution-panel]');
		return p && p.querySelector('[data-testid=execution-id]') &&
			p.querySelector('[data-testid=execution-id]').textContent === 'exec-1' &&
			p.querySelector('[data-testid=execution-status]').textContent === 'succeeded' &&
			[...p.querySelectorAll('[data-testid=transition]')].map(r => r.dataset.type).join(',') === 'init,step,finish'; })()`)

	b.Screenshot(t, "conversation-375")
	if w := browsertest.Eval[int](t, b, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("conversation is %d px wide at a 375 px viewport", w)
	}

	// Sign out: back to the sign-in screen, the session gone.
	b.Do(t, "sign out", chromedp.Click(chromedp.CSS(`[data-testid=sign-out]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)))
	if st := browsertest.Eval[int](t, b, `fetch('/api/auth/session').then(r => r.status)`, chromedp.EvalAwaitPromise); st != 401 {
		t.Errorf("session after sign-out: %d, want 401", st)
	}
	if p := b.Problems(true); len(p) > 0 {
		t.Errorf("uncaught exceptions: %v", p)
	}
}
