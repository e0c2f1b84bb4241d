package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestIndexIsNeverCached(t *testing.T) {
	t.Parallel()
	h := Handler()
	for _, p := range []string{"/", "/index.html"} {
		res, body := get(t, h, "GET", p, nil)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", p, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: Content-Type %q", p, ct)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q", p, cc)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if strings.Contains(body, "__VERSION__") {
			t.Errorf("%s: version placeholder left in the page", p)
		}
		for _, id := range []string{"login-email", "login-submit", "composer", "send", "conn-state", "counter"} {
			if !strings.Contains(body, `data-testid="`+id+`"`) {
				t.Errorf("%s: no data-testid=%q", p, id)
			}
		}
	}
}

// TestLinkedAssetsAreServedImmutable follows every asset index.html links
// and checks it is served with a long cache under its versioned URL, and is
// revalidated under any other.
func TestLinkedAssetsAreServedImmutable(t *testing.T) {
	t.Parallel()
	h := Handler()
	_, body := get(t, h, "GET", "/", nil)
	links := regexp.MustCompile(`(?:src|href)="(/[^"]+\?v=[0-9a-f]+)"`).FindAllStringSubmatch(body, -1)
	if len(links) < 3 {
		t.Fatalf("expected the css, js and icon links, found %v", links)
	}
	wantType := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
	for _, l := range links {
		u := l[1]
		res, b := get(t, h, "GET", u, nil)
		if res.StatusCode != 200 || len(b) == 0 {
			t.Errorf("%s: %d (%d bytes)", u, res.StatusCode, len(b))
			continue
		}
		if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", u, cc)
		}
		path := u[:strings.IndexByte(u, '?')]
		for ext, ct := range wantType {
			if strings.HasSuffix(path, ext) && !strings.HasPrefix(res.Header.Get("Content-Type"), ct) {
				t.Errorf("%s: Content-Type %q, want %s", u, res.Header.Get("Content-Type"), ct)
			}
		}
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("%s: no ETag", u)
		}
		if res, _ := get(t, h, "GET", path, map[string]string{"If-None-Match": etag}); res.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-None-Match: %d, want 304", path, res.StatusCode)
		}
		if res, _ := get(t, h, "GET", path+"?v=old", nil); res.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s?v=old: Cache-Control %q, want no-cache", path, res.Header.Get("Cache-Control"))
		}
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	t.Parallel()
	h := Handler()
	for _, p := range []string{"/nope", "/static/app.js", "/../go.mod", "/index.htm"} {
		if res, _ := get(t, h, "GET", p, nil); res.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}
	if res, _ := get(t, h, "POST", "/", nil); res.StatusCode != 405 || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	res, body := get(t, h, "HEAD", "/app.js", nil)
	if res.StatusCode != 200 || body != "" || res.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD /app.js: %d, body %d bytes, Content-Length %q", res.StatusCode, len(body), res.Header.Get("Content-Length"))
	}
}

// TestSelectorsDocumented keeps the selector list at the top of app.js in
// step with the testids the page and script actually use.
func TestSelectorsDocumented(t *testing.T) {
	t.Parallel()
	js, err := static.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	html, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	header := string(js[:strings.Index(string(js), `"use strict"`)])
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`data-testid="([a-z-]+)"`).FindAllStringSubmatch(string(html), -1) {
		used[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`(?:testid: |"data-testid": )"([a-z-]+)"`).FindAllStringSubmatch(string(js), -1) {
		used[m[1]] = true
	}
	for id := range used {
		if !strings.Contains(header, "[data-testid="+id+"]") {
			t.Errorf("data-testid=%q is used but not documented at the top of app.js", id)
		}
	}
}

// TestConsoleSelectorsDocumented does the same for console.js, whose
// selectors are listed at its own top.
func TestConsoleSelectorsDocumented(t *testing.T) {
	t.Parallel()
	js, err := static.ReadFile("static/console.js")
	if err != nil {
		t.Fatal(err)
	}
	header := string(js[:strings.Index(string(js), `"use strict"`)])
	for _, m := range regexp.MustCompile(`"data-testid": (?:"([a-z-]+)"|`+"`"+`([a-z-]+)-\$\{k\}`+"`"+`)`).FindAllStringSubmatch(string(js), -1) {
		id := m[1]
		if id == "" {
			continue // step-${k}: step-input and step-output, listed by name
		}
		if !strings.Contains(header, "[data-testid="+id+"]") {
			t.Errorf("data-testid=%q is used in console.js but not documented at its top", id)
		}
	}
	for _, id := range []string{"step-input", "step-output"} {
		if !strings.Contains(header, "[data-testid="+id+"]") {
			t.Errorf("%s not documented", id)
		}
	}
}

// TestScriptFindsItsElements checks that every element app.js looks up by id
// exists in index.html, since a missing one only fails at run time.
func TestScriptFindsItsElements(t *testing.T) {
	t.Parallel()
	js, _ := static.ReadFile("static/app.js")
	html, _ := static.ReadFile("static/index.html")
	ids := regexp.MustCompile(`\$\("([A-Za-z0-9-]+)"\)`).FindAllStringSubmatch(string(js), -1)
	if len(ids) == 0 {
		t.Fatal("no lookups found in app.js")
	}
	for _, m := range ids {
		if !regexp.MustCompile(`\sid="` + regexp.QuoteMeta(m[1]) + `"`).Match(html) {
			t.Errorf("app.js looks up #%s, which index.html does not have", m[1])
		}
	}
}
