// Package browsertest drives a real headless Chromium (Debian's chromium)
// for browser tests with chromedp. Only tests import it, so chromedp is
// never linked into the astra binary.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath finds a Chromium to drive. Without one the browser tests
// skip, except on CI (CI=true), where a missing browser is a failure.
func ChromiumPath(t *testing.T) string {
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

// Browser is one headless Chromium tab and everything it wrote to its console.
type Browser struct {
	Ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// New starts a headless Chromium tab of the given size; it closes when the test ends.
func New(t *testing.T, width, height int) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath(t)),
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
	b := &Browser{Ctx: ctx}
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

// Problems returns console errors and uncaught exceptions so far; with
// onlyExceptions, browser log entries (such as a refused socket) are left out.
func (b *Browser) Problems(onlyExceptions bool) []string {
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

// Do runs actions with a 20 s limit, failing the test with the console on error.
func (b *Browser) Do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\nconsole: %v", what, err, b.Problems(false))
	}
}

// WaitFor polls a JavaScript predicate until it is truthy.
func (b *Browser) WaitFor(t *testing.T, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("waiting for %s (%s): %v\nconsole: %v", what, expr, err, b.Problems(false))
	}
}

// Screenshot saves the viewport as <ASTRA_SCREENSHOT_DIR>/<name>.png when
// that variable is set, for a person to look at the layout.
func (b *Browser) Screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("ASTRA_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.Ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t *testing.T, b *Browser, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}
