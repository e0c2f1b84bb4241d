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
	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/enginetest"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/server"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/stream"
	"github.com/astra-app/astra/internal/web/browsertest"
)

// consoleSite is the real API with the console over a real embedded engine;
// ops@example.com is an operator by ASTRA_ADMIN_EMAILS.
type consoleSite struct {
	store *sqlite.Store
	jc    *julep.Client
	srv   *httptest.Server
	tasks map[string]string // name -> id
}

func newConsoleSite(t *testing.T) *consoleSite {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const key = "console-browser-key"
	eng := enginetest.Start(t, engine.Options{Key: key, Concurrency: 4})
	jc, err := julep.New(eng.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	sessions := auth.New(st, auth.Options{Secret: browserSecret})
	sockets, closeSockets := context.WithCancel(context.Background())
	api := server.New(server.Deps{
		Store: st, Sessions: sessions, Hub: stream.NewHub(stream.Options{}), Context: sockets,
		AuthRoutes: auth.Routes(auth.RoutesDeps{Store: st, Sessions: sessions, DevLogin: true}),
		Dashboard:  Handler(),
		Console:    &server.Console{Julep: jc, AdminEmails: []string{"ops@example.com"}},
	})
	s := &consoleSite{store: st, jc: jc, srv: httptest.NewServer(api), tasks: map[string]string{}}
	t.Cleanup(s.srv.Close)
	t.Cleanup(closeSockets)
	a, err := jc.CreateAgent(t.Context(), julep.AgentInput{Name: "Jadugar", Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	for _, def := range []map[string]any{
		{"name": "echo", "main": []any{
			map[string]any{"label": "compute", "evaluate": map[string]any{"x": "$ _.message + '!'", "api_key": "$ 'sk-live-123'"}},
			map[string]any{"evaluate": map[string]any{"y": "$ 1 // (len(_.x) - len(_.x))"}},
		}},
		{"name": "ask", "main": []any{map[string]any{"label": "ask", "wait_for_input": map[string]any{"info": map[string]any{"q": "$ _.message"}}}}},
	} {
		task, err := jc.CreateTask(t.Context(), a.Id, def)
		if err != nil {
			t.Fatal(err)
		}
		s.tasks[def["name"].(string)] = task.Id
	}
	return s
}

// run stores a message of u and starts its execution as the dispatcher does.
func (s *consoleSite) run(t *testing.T, u *responder.User, task, content string, wait bool) string {
	t.Helper()
	ctx := t.Context()
	m := responder.Message{UserID: u.ID, JulepUserID: responder.JulepUserID(u.ID), Content: content}
	if err := s.store.Enqueue(ctx, &m); err != nil {
		t.Fatal(err)
	}
	x, err := s.jc.CreateExecution(ctx, s.tasks[task], map[string]any{"message": content},
		map[string]any{"outbox_id": m.ID, "user_id": u.ID, "source": "astra"})
	if err != nil {
		t.Fatal(err)
	}
	if wait {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := s.jc.StreamStatus(sctx, x.Id, func(julep.StatusEvent) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return x.Id
}

func TestBrowserConsole(t *testing.T) {
	s := newConsoleSite(t)
	ctx := t.Context()
	asha := &responder.User{Name: "Asha", Email: "asha@example.com"}
	if err := s.store.CreateUser(ctx, asha); err != nil {
		t.Fatal(err)
	}
	failed := s.run(t, asha, "echo", "hello", true)
	waiting := s.run(t, asha, "ask", "what next?", false)

	// A person sees no console, and the API refuses them.
	b := browsertest.New(t, 1280, 800)
	devLogin(t, b, s.srv.URL, "bo@example.com", "Bo")
	b.Do(t, "try the console", chromedp.Navigate(s.srv.URL+"/#console"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=composer]`)))
	time.Sleep(300 * time.Millisecond) // the access check is one request; nothing appears after it either
	if !browsertest.Eval[bool](t, b, `document.querySelector('[data-testid=console-link]').hidden && document.querySelector('[data-testid=console]').hidden`) {
		t.Error("a person sees the console")
	}
	if st := browsertest.Eval[int](t, b, `fetch('/api/console/executions').then(r => r.status)`, chromedp.EvalAwaitPromise); st != 403 {
		t.Errorf("a person's console request: %d", st)
	}
	b.Do(t, "sign out", chromedp.Click(chromedp.CSS(`[data-testid=sign-out]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)))

	// An operator: the list, filters, one execution's timeline.
	devLogin(t, b, s.srv.URL, "ops@example.com", "Ops")
	b.WaitFor(t, "the console link", `!document.querySelector('[data-testid=console-link]').hidden`)
	b.Do(t, "open the console", chromedp.Click(chromedp.CSS(`[data-testid=console-link]`)))
	b.WaitFor(t, "the echo execution listed", fmt.Sprintf(`(() => { const r = document.querySelector('[data-testid=console-row][data-execution-id=%q]');
		return r && r.dataset.status === 'failed' && r.textContent.includes('asha@example.com'); })()`, failed))
	b.Screenshot(t, "console-list")

	// Filter by someone with no executions, then by status.
	b.Do(t, "filter by user", chromedp.SendKeys(chromedp.CSS(`[data-testid=console-user]`), "nobody@example.com"),
		chromedp.Click(chromedp.CSS(`[data-testid=console-apply]`)))
	b.WaitFor(t, "nothing matches", `document.querySelector('[data-testid=console-list-note]').textContent === 'No executions match.'`)

	b.Do(t, "open the failed execution", chromedp.Navigate(s.srv.URL+"/#console/"+failed))
	b.WaitFor(t, "its timeline", `document.querySelectorAll('[data-testid=console-step]').length === 3`)
	names := browsertest.Eval[string](t, b, `[...document.querySelectorAll('[data-testid=console-step] [data-testid=step-name]')].map(n => n.textContent).join(',')`)
	if names != "start,compute,main[1] evaluate" {
		t.Errorf("step names %q", names)
	}
	if e := browsertest.Eval[string](t, b, `document.querySelector('[data-testid=console-error]').textContent`); !strings.Contains(e, "ZeroDivisionError") && !strings.Contains(strings.ToLower(e), "division") {
		t.Errorf("error shown %q", e)
	}
	if !browsertest.Eval[bool](t, b, `document.querySelector('[data-testid=console-task-version]').textContent.includes('echo') &&
		document.querySelector('[data-testid=console-agent-version]').textContent.includes('Jadugar') &&
		document.querySelector('[data-testid=console-message]').textContent.includes('hello')`) {
		t.Error("task, agent or message missing")
	}
	b.Do(t, "expand compute's output", chromedp.Click(chromedp.CSS(`[data-testid=console-step]:nth-child(2) [data-testid=step-output] summary`)))
	out := browsertest.Eval[string](t, b, `document.querySelector('[data-testid=console-step]:nth-child(2) [data-testid=step-output] pre').textContent`)
	if !strings.Contains(out, `"x": "hello!"`) || !strings.Contains(out, `"api_key": "[redacted]"`) || strings.Contains(out, "sk-live") {
		t.Errorf("compute's output %s", out)
	}
	b.Do(t, "re-run", chromedp.Click(chromedp.CSS(`[data-testid=console-rerun]`)))
	b.WaitFor(t, "re-run sent", `document.querySelector('[data-testid=console-notice]').textContent === 'Sent again as a new message.'`)
	if msgs, _ := s.store.UserMessages(ctx, asha.ID, 10); len(msgs) != 3 {
		t.Errorf("asha has %d messages after a re-run, want 3", len(msgs))
	}

	// A waiting execution is live: cancel it and watch the status change.
	b.Do(t, "open the waiting execution", chromedp.Navigate(s.srv.URL+"/#console/"+waiting))
	b.WaitFor(t, "awaiting input", `(() => { const s = document.querySelector('[data-testid=console-exec-status]');
		return s && s.textContent === 'awaiting_input' && !!document.querySelector('[data-testid=console-cancel]'); })()`)
	b.Do(t, "cancel", chromedp.Click(chromedp.CSS(`[data-testid=console-cancel]`)))
	b.WaitFor(t, "cancelled", `document.querySelector('[data-testid=console-exec-status]').textContent === 'cancelled' &&
		!document.querySelector('[data-testid=console-cancel]')`)
	b.Screenshot(t, "console-execution")

	// From an execution of the operator's own message back to the message.
	ops, err := s.store.UserByEmail(ctx, "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	own := s.run(t, ops, "echo", "my own question", true)
	b.Do(t, "open own execution", chromedp.Navigate(s.srv.URL+"/?reload=1#console/"+own)) // a new document, so its messages are read
	b.WaitFor(t, "the link to the message", `(() => { const a = document.querySelector('a[data-testid=console-message-link]');
		return a && a.getAttribute('href').startsWith('#msg-'); })()`)
	b.Do(t, "follow it", chromedp.Click(chromedp.CSS(`a[data-testid=console-message-link]`)))
	b.WaitFor(t, "the message in the conversation", `document.querySelector('[data-testid=console]').hidden &&
		!!document.querySelector(location.hash + '[data-testid=sent-message]') &&
		document.querySelector(location.hash).textContent.includes('my own question')`)
	if p := b.Problems(true); len(p) > 0 {
		t.Errorf("uncaught exceptions: %v", p)
	}
}
