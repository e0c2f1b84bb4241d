package web

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/web/browsertest"
)

// TestBrowserSecondTabInStep: a message sent from one tab shows at once in
// the person's other tab, and so does each change of its state, down to
// the error with its reason, pushed over the socket (messages:outbox): the
// second tab never polls GET /api/responder/messages while it is live.
func TestBrowserSecondTabInStep(t *testing.T) {
	s := newSite(t)
	b := browsertest.New(t, 800, 740) // closed before the site
	ctx := t.Context()

	b.Do(t, "dev login",
		chromedp.Navigate(s.srv.URL),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-email]`), "grace@example.com"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-name]`), "Grace"),
		chromedp.Click(chromedp.CSS(`[data-testid=login-submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=composer]`)),
	)
	b.WaitFor(t, "a live socket in tab one", `document.querySelector('[data-testid=conn-state]').dataset.state === 'live'`)
	u, err := s.store.UserByEmail(ctx, "grace@example.com")
	if err != nil {
		t.Fatal(err)
	}

	// A second tab of the same browser (same session cookie).
	tabCtx, closeTab := chromedp.NewContext(b.Ctx)
	defer closeTab()
	// The first action on a context opens its tab, which lives as long as
	// that action's context: so not one with a timeout.
	if err := chromedp.Do(tabCtx, chromedp.EmulateViewport(800, 740)); err != nil {
		t.Fatalf("open a second tab: %v", err)
	}
	tab2 := &browsertest.Browser{Ctx: tabCtx}
	tab2.Do(t, "open the second tab", chromedp.Navigate(s.srv.URL), chromedp.WaitVisible(chromedp.CSS(`[data-testid=composer]`)))
	tab2.WaitFor(t, "a live socket in tab two", `document.querySelector('[data-testid=conn-state]').dataset.state === 'live'`)
	// Count the second tab's reads of the message list from here on.
	browsertest.Eval[chromedp.Void](t, tab2, `(() => { window.__listReads = 0; const f = window.fetch;
		window.fetch = (u, ...rest) => { if (String(u).includes('/api/responder/messages') && !(rest[0] && rest[0].method === 'POST')) window.__listReads++;
			return f(u, ...rest); }; })()`)

	b.Do(t, "send from tab one", chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), "Sent from tab one\r"))
	tab2.WaitFor(t, "the message in tab two, pending", `(() => { const m = document.querySelector('[data-testid=sent-message]');
		return m && m.querySelector('.body').textContent === 'Sent from tab one' &&
			m.querySelector('[data-testid=outbox-status]').dataset.status === 'pending'; })()`)

	// The dispatcher's part: claim (processing), then fail with a reason;
	// the failure reaches the hub as its event, the state from the store.
	c, err := s.store.Claim(ctx, "w1", time.Minute, 0)
	if err != nil || c == nil {
		t.Fatalf("claim: %+v, %v", c, err)
	}
	s.hub.PublishOutbox(*c)
	tab2.WaitFor(t, "processing in tab two", `document.querySelector('[data-testid=sent-message] [data-testid=outbox-status]').dataset.status === 'processing'`)
	sorry := &responder.Event{UserID: u.ID, OutboxID: c.ID, Role: responder.RoleSystem,
		Content: "Sorry, something went wrong.", DedupeKey: "outbox:" + c.ID + ":error",
		Metadata: map[string]any{"outboxId": c.ID, "error": true}}
	if _, err := s.store.AppendEvent(ctx, sorry); err != nil {
		t.Fatal(err)
	}
	const reason = "execution exec-9 failed: the model is unreachable"
	// The dashboard says it in a person's words; the raw reason is for operators.
	const readable = "Astra couldn't reach its language model, so this message got no answer. Please try again."
	if err := s.store.Fail(ctx, c.ID, "w1", reason); err != nil {
		t.Fatal(err)
	}
	s.hub.PublishEvent(*sorry)
	for _, tab := range []*browsertest.Browser{tab2, b} {
		tab.WaitFor(t, "the error and its reason", fmt.Sprintf(`(() => {
			const m = document.querySelector('[data-testid=sent-message]');
			const e = m && m.parentElement.querySelector('[data-testid=last-error]');
			return m.querySelector('[data-testid=outbox-status]').dataset.status === 'error' && e && e.textContent === %q; })()`, readable))
	}
	if n := browsertest.Eval[int](t, tab2, `window.__listReads`); n != 0 {
		t.Errorf("the second tab read the message list %d times while its socket was live", n)
	}
	if p := tab2.Problems(true); len(p) > 0 {
		t.Errorf("uncaught exceptions: %v", p)
	}
}
