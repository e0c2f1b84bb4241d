package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/astra-app/astra/internal/web/browsertest"
)

// socketControl wraps the page's WebSocket so the test can drop the live
// socket and hold reconnects off (they go to a path that does not exist)
// while messages are answered, then let the dashboard resume.
const socketControl = `(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__blockSocket = false;
  function Tracked(url, protocols) {
    if (window.__blockSocket) url = String(url).replace('/api/responder/socket', '/api/responder/socket-blocked');
    const ws = new Native(url, protocols);
    window.__sockets.push(ws);
    return ws;
  }
  Tracked.prototype = Native.prototype;
  Object.assign(Tracked, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Tracked;
})();`

// TestBrowser is the product in a real headless Chromium: dev login, send a
// message and see the reply, reload and see the history, lose the socket
// while replies arrive and see each of them exactly once after it resumes.
func TestBrowser(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	const reply, summary = "Namaste Ada! The stars say: rest today.", "Ada asked about her day."
	model := modelServer(t, reply, summary)
	in := startAstra(t, map[string]string{"ASTRA_LLM_BASE_URL": model.URL + "/v1", "ASTRA_LLM_MODEL": "test-model"})
	b := browsertest.New(t, 900, 900)
	if _, err := chromedp.Call(b.Ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: socketControl}); err != nil {
		t.Fatal(err)
	}

	b.Do(t, "sign in with the dev login",
		chromedp.Navigate(in.url),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-email]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-email]`), "ada@example.com"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-name]`), "Ada"),
		chromedp.Click(chromedp.CSS(`[data-testid=login-submit]`)),
	)
	live := `document.querySelector('[data-testid=conn-state]')?.dataset.state === 'live'`
	b.WaitFor(t, "the socket to be live", live)

	b.Do(t, "send a message", chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), "What do the stars say?\r"))
	replies := `[...document.querySelectorAll('[data-testid=message][data-role=assistant]')]`
	b.WaitFor(t, "the reply", replies+`.some(e => e.textContent.includes(`+jsString(reply)+`))`)
	b.WaitFor(t, "the message delivered", `[...document.querySelectorAll('[data-testid=outbox-status]')].some(e => e.dataset.status === 'delivered')`)
	saveScreenshot(t, b, "conversation")

	b.Do(t, "reload", chromedp.Navigate(in.url))
	b.WaitFor(t, "the socket to be live after reload", live)
	b.WaitFor(t, "the history after reload", replies+`.length === 1 && `+replies+`[0].textContent.includes(`+jsString(reply)+`)`)
	b.WaitFor(t, "the sent message after reload, before its reply",
		`(() => { const items = [...document.querySelectorAll('[data-testid=messages] > li')];
		  const asked = items.findIndex(e => e.dataset.role === 'user' && e.textContent.includes('What do the stars say?'));
		  const answered = items.findIndex(e => e.dataset.role === 'assistant');
		  return asked >= 0 && asked < answered; })()`)

	// Drop the socket and keep it down while two more messages are answered.
	browsertest.Eval[chromedp.Void](t, b, `window.__blockSocket = true; window.__sockets.forEach(s => s.close())`)
	b.WaitFor(t, "the socket to be down", `document.querySelector('[data-testid=conn-state]')?.dataset.state !== 'live'`)
	other := signIn(t, in, "ada@example.com")
	for i := range 2 {
		postMessage(t, in, other, fmt.Sprintf("While you were away %d", i))
	}
	waitDelivered(t, in, other, 3)
	browsertest.Eval[chromedp.Void](t, b, `window.__blockSocket = false`)
	b.WaitFor(t, "the socket to resume", live)
	b.WaitFor(t, "all three replies", replies+`.length === 3`)
	ids := browsertest.Eval[[]string](t, b, `[...document.querySelectorAll('[data-testid=message]')].map(e => e.dataset.eventId)`)
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("event %s shown twice: %v", id, ids)
		}
		seen[id] = true
	}
	if n := len(browsertest.Eval[[]string](t, b, replies+`.map(e => e.dataset.eventId)`)); n != 3 {
		t.Fatalf("%d replies shown, want 3", n)
	}
	saveScreenshot(t, b, "after-resume")
	if p := b.Problems(true); len(p) > 0 {
		t.Errorf("uncaught exceptions in the page: %v", p)
	}
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

// saveScreenshot writes the page to ASTRA_SCREENSHOT_DIR, or to a temporary
// directory named in the test log, for a person to look at.
func saveScreenshot(t *testing.T, b *browsertest.Browser, name string) {
	dir := os.Getenv("ASTRA_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "astra-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// signIn returns a client signed in (dev login) as email.
func signIn(t *testing.T, in *instance, email string) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, _ := http.NewRequest("POST", in.url+"/api/auth/dev-login", strings.NewReader(`{"email":`+jsString(email)+`,"name":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("dev login: %v %v", resp, err)
	}
	resp.Body.Close()
	return c
}

func postMessage(t *testing.T, in *instance, c *http.Client, content string) {
	req, _ := http.NewRequest("POST", in.url+"/api/responder/messages", strings.NewReader(`{"content":`+jsString(content)+`}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST message: %v %v", resp, err)
	}
	resp.Body.Close()
}

func waitDelivered(t *testing.T, in *instance, c *http.Client, n int) {
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := c.Get(in.url + "/api/responder/messages")
		if err != nil {
			t.Fatal(err)
		}
		var list struct{ Messages []struct{ Status string } }
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		done := 0
		for _, m := range list.Messages {
			if m.Status == "delivered" {
				done++
			}
		}
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages delivered", done, n)
		}
	}
}
