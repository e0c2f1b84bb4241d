package web

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/web/browsertest"
)

// devLogin signs in through the dev login form and waits for a live socket.
func devLogin(t *testing.T, b *browsertest.Browser, url, email, name string) {
	t.Helper()
	b.Do(t, "dev login",
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-email]`), email),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-name]`), name),
		chromedp.Click(chromedp.CSS(`[data-testid=login-submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=composer]`)),
	)
	b.WaitFor(t, "a live socket", `document.querySelector('[data-testid=conn-state]').dataset.state === 'live'`)
}

// A long conversation at 375 px: wheel scrolling moves the conversation,
// never the page, and the composer stays on screen.
func TestBrowserLongConversationKeepsTheComposer(t *testing.T) {
	s := newSite(t)
	b := browsertest.New(t, 375, 740)
	devLogin(t, b, s.srv.URL, "long@example.com", "Long")
	u, err := s.store.UserByEmail(t.Context(), "long@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		ev := &responder.Event{UserID: u.ID, Role: responder.RoleAssistant, DedupeKey: fmt.Sprintf("long-%d", i),
			Content: fmt.Sprintf("Reply %d: %s", i, strings.Repeat("the stars are kind today ", 8))}
		if _, err := s.store.AppendEvent(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		s.hub.PublishEvent(*ev)
	}
	b.WaitFor(t, "60 messages", `document.querySelectorAll('[data-testid=message]').length === 60`)
	composerOnScreen := `(() => { const r = document.querySelector('[data-testid=composer]').getBoundingClientRect();
		return r.top >= 0 && r.bottom <= window.innerHeight && window.scrollY === 0 &&
			document.scrollingElement.scrollTop === 0 && document.scrollingElement.scrollHeight <= window.innerHeight; })()`
	if !browsertest.Eval[bool](t, b, composerOnScreen) {
		t.Error("the composer is off screen before scrolling")
	}
	wheel := func(dy float64) chromedp.MouseOption {
		// Chromium wants both deltas; 0 is dropped from the JSON, so a tiny X.
		return func(p *input.DispatchMouseEventParams) { p.DeltaX, p.DeltaY = 0.01, dy }
	}
	// Down first: the conversation starts at its end, so a page that can
	// scroll at all scrolls now (scroll chaining).
	for _, dy := range []float64{600, -600, 600} {
		for range 10 {
			b.Do(t, "wheel", chromedp.MouseEvent(chromedp.MouseWheel, 180, 300, wheel(dy)))
		}
		time.Sleep(100 * time.Millisecond) // let smooth scrolling settle; the check below does not depend on speed
		if !browsertest.Eval[bool](t, b, composerOnScreen) {
			t.Errorf("after ten wheel scrolls of %v px: page scrollY %v, composer top %v bottom %v, viewport %v", dy,
				browsertest.Eval[float64](t, b, `window.scrollY`),
				browsertest.Eval[float64](t, b, `document.querySelector('[data-testid=composer]').getBoundingClientRect().top`),
				browsertest.Eval[float64](t, b, `document.querySelector('[data-testid=composer]').getBoundingClientRect().bottom`),
				browsertest.Eval[float64](t, b, `window.innerHeight`))
		}
	}
	if browsertest.Eval[float64](t, b, `document.querySelector('.conversation').scrollTop`) <= 0 {
		t.Error("the conversation itself did not scroll")
	}
	b.Screenshot(t, "long-conversation-375")
}

// At 1280 px the signed-in name is shown whole.
func TestBrowserNameNotCutAtDesktopWidth(t *testing.T) {
	s := newSite(t)
	b := browsertest.New(t, 1280, 800)
	devLogin(t, b, s.srv.URL, "ada.lovelace@example.com", "Augusta Ada King-Noel")
	if !browsertest.Eval[bool](t, b, `(() => { const w = document.querySelector('[data-testid=who]');
		return w.textContent.includes('Augusta Ada King-Noel (ada.lovelace@example.com)') && w.scrollWidth <= w.clientWidth; })()`) {
		t.Errorf("name cut: scrollWidth %v clientWidth %v", browsertest.Eval[float64](t, b, `document.querySelector('[data-testid=who]').scrollWidth`),
			browsertest.Eval[float64](t, b, `document.querySelector('[data-testid=who]').clientWidth`))
	}
	b.Screenshot(t, "header-1280")
}

// A failed message says so in a person's words and offers Retry, which
// sends the same text again; the failed one stays, both linked. Escape
// closes the execution panel.
func TestBrowserFailedMessageRetry(t *testing.T) {
	s := newSite(t)
	b := browsertest.New(t, 375, 740)
	ctx := t.Context()
	devLogin(t, b, s.srv.URL, "retry@example.com", "Retry")
	u, err := s.store.UserByEmail(ctx, "retry@example.com")
	if err != nil {
		t.Fatal(err)
	}
	b.Do(t, "send", chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), "Will it rain?\r"))
	b.WaitFor(t, "the sent message", `!!document.querySelector('[data-testid=sent-message]')`)
	msgs, err := s.store.UserMessages(ctx, u.ID, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("outbox: %+v %v", msgs, err)
	}
	failed := msgs[0]
	if c, err := s.store.Claim(ctx, "w1", time.Minute, 0); err != nil || c == nil || c.ID != failed.ID {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := s.store.SetExecution(ctx, failed.ID, "w1", "exec-9"); err != nil {
		t.Fatal(err)
	}
	const raw = `execution 7f3c failed: workflow "main", step 2 ("reply"): prompt: model: chat completion stream: 500 Internal Server Error`
	if err := s.store.Fail(ctx, failed.ID, "w1", raw); err != nil {
		t.Fatal(err)
	}
	// The dispatcher's part: the failed row's state reaches the live socket.
	row, err := s.store.Message(ctx, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	s.hub.PublishOutbox(*row)
	b.WaitFor(t, "the error state", `(() => { const m = document.querySelector('[data-testid=sent-message]');
		const e = m && m.querySelector('[data-testid=last-error]');
		return e && !e.hidden && m.querySelector('[data-testid=outbox-status]').dataset.status === 'error'; })()`)
	text := browsertest.Eval[string](t, b, `document.querySelector('[data-testid=last-error]').textContent`)
	if strings.Contains(text, "chat completion") || strings.Contains(text, "workflow") || !strings.Contains(text, "try again") {
		t.Errorf("a person sees %q", text)
	}
	if strings.Contains(browsertest.Eval[string](t, b, `document.body.innerText`), "chat completion") {
		t.Error("the raw engine error is on the page")
	}

	b.Do(t, "retry", chromedp.Click(chromedp.CSS(`[data-testid=retry]`)))
	b.WaitFor(t, "the retried message", `document.querySelectorAll('[data-testid=sent-message]').length === 2`)
	msgs, err = s.store.UserMessages(ctx, u.ID, 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("outbox after retry: %+v %v", msgs, err)
	}
	var again responder.Message
	for _, m := range msgs {
		if m.ID != failed.ID {
			again = m
		}
	}
	if again.Content != failed.Content || again.Metadata["retryOf"] != failed.ID {
		t.Errorf("retry stored %+v", again)
	}
	b.WaitFor(t, "the links", fmt.Sprintf(`(() => {
		const f = document.getElementById('msg-%s'), a = document.getElementById('msg-%s');
		return f && a && !f.querySelector('[data-testid=retry]') &&
			f.querySelector('[data-testid=retried-as]').getAttribute('href') === '#msg-%s' &&
			a.querySelector('[data-testid=retry-of]').getAttribute('href') === '#msg-%s' &&
			f.compareDocumentPosition(a) & Node.DOCUMENT_POSITION_FOLLOWING; })()`, failed.ID, again.ID, again.ID, failed.ID))

	// Escape closes the execution panel and gives focus back to its button.
	sel := fmt.Sprintf(`#msg-%s [data-testid=show-execution]`, failed.ID)
	b.Do(t, "open the panel", chromedp.Click(chromedp.CSS(sel)))
	b.WaitFor(t, "the panel", `!!document.querySelector('[data-testid=execution-panel]')`)
	b.WaitFor(t, "step names", `[...document.querySelectorAll('[data-testid=step-name]')].map(n => n.textContent).join(',') === 'Started,Step 2,Finished'`)
	if d := browsertest.Eval[string](t, b, `[...document.querySelectorAll('[data-testid=step-duration]')].map(n => n.textContent).join(',')`); d != "0 ms,1.00 s,500 ms" {
		t.Errorf("step durations %q", d)
	}
	b.Do(t, "Escape", chromedp.KeyEvent("\u001b"))
	b.WaitFor(t, "the panel closed", `!document.querySelector('[data-testid=execution-panel]') &&
		document.activeElement.dataset.testid === 'show-execution'`)
	if p := b.Problems(true); len(p) > 0 {
		t.Errorf("uncaught exceptions: %v", p)
	}
}
