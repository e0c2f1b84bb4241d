package web

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/server"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/stream"
)

const browserSecret = "browser-test-secret-0123456789abcdef"

// chromiumPath finds a Chromium to drive. Without one the browser tests
// skip, except on CI (CI=true), where a missing browser is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ASTRA_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found (looked for /usr/bin/chromium, chromium, chromium-browser, google-chrome; set ASTRA_CHROMIUM) and CI=true")
	}
	t.Skip("no Chromium found: install chromium or set ASTRA_CHROMIUM to run the browser tests")
	return ""
}

// browser is one headless Chromium tab and everything it wrote to its console.
type browser struct {
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{ctx: ctx}
	messages := chromedp.Console(ctx) // starts the browser; subscribes before any page loads
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// problems returns console errors and uncaught exceptions so far; with
// onlyExceptions, browser log entries (such as a refused socket) are left out.
func (b *browser) problems(onlyExceptions bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if m.IsException() || (!onlyExceptions && m.Type == chromedp.ConsoleError) {
			out = append(out, m.String())
		}
	}
	return out
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\nconsole: %v", what, err, b.problems(false))
	}
}

// waitFor polls a JavaScript predicate until it is truthy.
func (b *browser) waitFor(t *testing.T, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("waiting for %s (%s): %v\nconsole: %v", what, expr, err, b.problems(false))
	}
}

// screenshot saves the viewport as <ASTRA_SCREENSHOT_DIR>/<name>.png when
// that variable is set, for a person to look at the layout.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("ASTRA_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}

func evalJS[T any](t *testing.T, b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

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
	s := &site{store: st, hub: stream.NewHub(stream.Options{}), sessions: auth.New(st, auth.Options{Secret: browserSecret})}
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
	b := newBrowser(t, 375, 740) // closed before the site
	b.do(t, "open the dashboard", chromedp.Navigate(s.srv.URL), chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)))
	b.waitFor(t, "the sign-in screen", `!document.querySelector('[data-testid=signin]').hidden &&
		document.querySelector('[data-testid=boot]').hidden &&
		!document.querySelector('[data-testid=devlogin-form]').hidden &&
		document.querySelector('[data-testid=login-google]').hidden`)
	b.screenshot(t, "signin-375")
	if w := evalJS[int](t, b, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("page is %d px wide at a 375 px viewport", w)
	}
	if label := evalJS[string](t, b, `document.querySelector('label[for=login-email]').textContent`); label != "Email" {
		t.Errorf("email label %q", label)
	}
	// The anonymous session probe answers 401, which the browser logs as a
	// failed resource load; anything else is a defect.
	var bad []string
	for _, p := range b.problems(false) {
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
	b := newBrowser(t, 375, 740) // closed before the site
	ctx := t.Context()

	b.do(t, "dev login",
		chromedp.Navigate(s.srv.URL),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-email]`), "Ada@Example.com"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-name]`), "Ada"),
		chromedp.Click(chromedp.CSS(`[data-testid=login-submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=composer]`)),
	)
	b.waitFor(t, "a live socket", `document.querySelector('[data-testid=conn-state]').dataset.state === 'live'`)
	u, err := s.store.UserByEmail(ctx, "ada@example.com")
	if err != nil {
		t.Fatalf("dev login stored no user: %v", err)
	}

	// The counter and the limit.
	evalJS[chromedp.Void](t, b, `(() => { const c = document.querySelector('[data-testid=composer]');
		c.value = 'x'.repeat(2001); c.dispatchEvent(new Event('input')); })()`)
	if !evalJS[bool](t, b, `document.querySelector('[data-testid=send]').disabled &&
		document.querySelector('[data-testid=counter]').classList.contains('over') &&
		document.querySelector('[data-testid=counter]').textContent === '2001 / 2000'`) {
		t.Error("a 2001-character message is not blocked by the counter and send button")
	}
	evalJS[chromedp.Void](t, b, `(() => { const c = document.querySelector('[data-testid=composer]');
		c.value = ''; c.dispatchEvent(new Event('input')); })()`)

	// Send with Enter: the message shows as pending.
	b.do(t, "type and send", chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), "Hello Astra\r"))
	b.waitFor(t, "the sent message, pending", `(() => { const m = document.querySelector('[data-testid=sent-message]');
		return m && m.querySelector('.body').textContent === 'Hello Astra' &&
			m.querySelector('[data-testid=outbox-status]').dataset.status === 'pending'; })()`)
	if v := evalJS[string](t, b, `document.querySelector('[data-testid=composer]').value`); v != "" {
		t.Errorf("composer not cleared after sending: %q", v)
	}
	msgs, err := s.store.UserMessages(ctx, u.ID, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Content != "Hello Astra" {
		t.Fatalf("outbox after send: %+v, %v", msgs, err)
	}
	m := msgs[0]

	// The dispatcher claims it: processing.
	if c, err := s.store.Claim(ctx, "w1", time.Minute); err != nil || c == nil || c.ID != m.ID {
		t.Fatalf("claim: %+v, %v", c, err)
	}
	if err := s.store.SetExecution(ctx, m.ID, "w1", "exec-1"); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, "processing", `document.querySelector('[data-testid=sent-message] [data-testid=outbox-status]').dataset.status === 'processing'`)

	// Token deltas grow a reply bubble; a repeated index does not duplicate text.
	for i, d := range []string{"Namaste", ", Ada", ", Ada"} {
		idx := min(i, 1)
		s.hub.PublishTransient(u.ID, map[string]any{"type": "messages:delta",
			"data": map[string]any{"outboxId": m.ID, "executionId": "exec-1", "delta": d, "index": idx}})
	}
	b.waitFor(t, "the streaming bubble", `(() => { const n = document.querySelector('[data-testid=message-streaming]');
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
	b.waitFor(t, "the final reply", fmt.Sprintf(`(() => {
		const n = document.querySelector('[data-testid=message][data-event-id=%q]');
		return n && n.dataset.role === 'assistant' && n.querySelector('.body').textContent === %q &&
			!document.querySelector('[data-testid=message-streaming]') &&
			n.querySelector('[data-testid=audio]') && n.querySelector('[data-testid=audio]').getAttribute('src').endsWith('/audio/reply.mp3');
	})()`, reply.ID, reply.Content))
	b.waitFor(t, "delivered", `document.querySelector('[data-testid=sent-message] [data-testid=outbox-status]').dataset.status === 'delivered'`)
	if got := evalJS[string](t, b, `document.getElementById('announcer').textContent`); !strings.Contains(got, reply.Content) {
		t.Errorf("the reply was not announced to screen readers: %q", got)
	}
	// A late delta for a finished reply is ignored.
	s.hub.PublishTransient(u.ID, map[string]any{"type": "messages:delta",
		"data": map[string]any{"outboxId": m.ID, "executionId": "exec-1", "delta": "late", "index": 9}})

	// Drop the connection; an event stored meanwhile arrives after the
	// reconnect (resume with ?after=), and nothing is shown twice.
	evalJS[chromedp.Void](t, b, `window.dispatchEvent(new Event('offline'))`)
	b.waitFor(t, "offline", `document.querySelector('[data-testid=conn-state]').dataset.state === 'offline'`)
	missed := &responder.Event{UserID: u.ID, Role: responder.RoleSystem, Content: "Your chart was updated.", DedupeKey: "missed-1"}
	if _, err := s.store.AppendEvent(ctx, missed); err != nil {
		t.Fatal(err)
	}
	evalJS[chromedp.Void](t, b, `window.dispatchEvent(new Event('online'))`)
	b.waitFor(t, "live again", `document.querySelector('[data-testid=conn-state]').dataset.state === 'live'`)
	b.waitFor(t, "the missed event", fmt.Sprintf(`!!document.querySelector('[data-testid=message][data-event-id=%q]')`, missed.ID))
	if n := evalJS[int](t, b, `document.querySelectorAll('[data-testid=message]').length`); n != 2 {
		t.Errorf("%d messages after the reconnect, want 2 (reply + missed event)", n)
	}
	if n := evalJS[int](t, b, `document.querySelectorAll('[data-testid=message-streaming]').length`); n != 0 {
		t.Errorf("a late delta re-opened a streaming bubble")
	}

	// The execution panel.
	b.do(t, "open the execution panel", chromedp.Click(chromedp.CSS(`[data-testid=sent-message] [data-testid=show-execution]`)))
	b.waitFor(t, "the execution panel", `(() => { const p = document.querySelector('[data-testid=execution-panel]');
		return p && p.querySelector('[data-testid=execution-id]') &&
			p.querySelector('[data-testid=execution-id]').textContent === 'exec-1' &&
			p.querySelector('[data-testid=execution-status]').textContent === 'succeeded' &&
			[...p.querySelectorAll('[data-testid=transition]')].map(r => r.dataset.type).join(',') === 'init,step,finish'; })()`)

	b.screenshot(t, "conversation-375")
	if w := evalJS[int](t, b, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("conversation is %d px wide at a 375 px viewport", w)
	}

	// Sign out: back to the sign-in screen, the session gone.
	b.do(t, "sign out", chromedp.Click(chromedp.CSS(`[data-testid=sign-out]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)))
	if st := evalJS[int](t, b, `fetch('/api/auth/session').then(r => r.status)`, chromedp.EvalAwaitPromise); st != 401 {
		t.Errorf("session after sign-out: %d, want 401", st)
	}
	if p := b.problems(true); len(p) > 0 {
		t.Errorf("uncaught exceptions: %v", p)
	}
}
