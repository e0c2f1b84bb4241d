// Package integrations runs Julep v1's integration tools (type:
// integration) against each provider's documented HTTP API, with the setup
// and arguments Julep's integration definitions name
// (integrations-service/integrations/models and utils/integrations), and
// answers in the shape Julep's integration service returns.
//
// Each provider's base URL can be replaced (tests point it at a local fake)
// through the engine's options or ASTRA_INTEGRATION_<PROVIDER>_URL. Calls
// go through the HTTP client they are given: the engine passes its egress-
// policed client, so an internal address is refused unless allowed.
package integrations

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
)

// maxBody bounds what one provider answer may be read into memory.
const maxBody = 8 << 20

type provider struct {
	base    string // documented API base URL
	methods map[string]func(ctx context.Context, c *client, setup, args map[string]any) (any, error)
	// defaultMethod is used when the tool names none.
	defaultMethod string
}

var providers = map[string]provider{
	"brave":      {base: "https://api.search.brave.com", defaultMethod: "search", methods: map[string]func(context.Context, *client, map[string]any, map[string]any) (any, error){"search": braveSearch}},
	"weather":    {base: "https://api.openweathermap.org", defaultMethod: "get", methods: map[string]func(context.Context, *client, map[string]any, map[string]any) (any, error){"get": weatherGet}},
	"wikipedia":  {base: "https://en.wikipedia.org", defaultMethod: "search", methods: map[string]func(context.Context, *client, map[string]any, map[string]any) (any, error){"search": wikipediaSearch}},
	"arxiv":      {base: "https://export.arxiv.org", defaultMethod: "search", methods: map[string]func(context.Context, *client, map[string]any, map[string]any) (any, error){"search": arxivSearch}},
	"cloudinary": {base: "https://api.cloudinary.com", defaultMethod: "media_upload", methods: map[string]func(context.Context, *client, map[string]any, map[string]any) (any, error){"media_upload": cloudinaryUpload}},
	"email":      {defaultMethod: "send", methods: map[string]func(context.Context, *client, map[string]any, map[string]any) (any, error){"send": emailSend}},
	// dummy answers its arguments, as Julep's execute_integration does.
	"dummy": {defaultMethod: "run", methods: map[string]func(context.Context, *client, map[string]any, map[string]any) (any, error){
		"run": func(_ context.Context, _ *client, _, args map[string]any) (any, error) { return args, nil }}},
	"spider": {base: "https://api.spider.cloud", defaultMethod: "crawl", methods: map[string]func(context.Context, *client, map[string]any, map[string]any) (any, error){
		"crawl": spiderMethod("crawl"), "links": spiderMethod("links"), "screenshot": spiderMethod("screenshot"), "search": spiderMethod("search"),
	}},
}

// Providers lists the providers the engine has, sorted.
func Providers() []string {
	out := make([]string, 0, len(providers))
	for p := range providers {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Check reports whether provider and method (empty for the provider's
// default) exist: the error names what does not, for a refusal at create.
func Check(provider, method string) error {
	p, ok := providers[provider]
	if !ok {
		return fmt.Errorf("integration provider %q is not available in the embedded engine (available: %s)", provider, strings.Join(Providers(), ", "))
	}
	if method != "" && provider != "dummy" {
		if _, ok := p.methods[method]; !ok {
			names := make([]string, 0, len(p.methods))
			for m := range p.methods {
				names = append(names, m)
			}
			sort.Strings(names)
			return fmt.Errorf("integration provider %q has no method %q (methods: %s)", provider, method, strings.Join(names, ", "))
		}
	}
	return nil
}

// EnvVar is the variable that overrides a provider's base URL.
func EnvVar(provider string) string {
	return "ASTRA_INTEGRATION_" + strings.ToUpper(provider) + "_URL"
}

// Run calls provider's method with the tool's setup and the step's
// arguments. overrides maps providers to base URLs; without one, the
// provider's environment variable, then its documented URL, is used.
func Run(ctx context.Context, hc *http.Client, overrides map[string]string, provider, method string, setup, args map[string]any) (any, error) {
	if err := Check(provider, method); err != nil {
		return nil, err
	}
	p := providers[provider]
	if method == "" || provider == "dummy" {
		method = p.defaultMethod
	}
	base := overrides[provider]
	if base == "" {
		base = os.Getenv(EnvVar(provider))
	}
	if base == "" {
		base = p.base
	}
	if setup == nil {
		setup = map[string]any{}
	}
	if args == nil {
		args = map[string]any{}
	}
	c := &client{hc: hc, base: strings.TrimRight(base, "/"), provider: provider}
	out, err := p.methods[method](ctx, c, setup, args)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", provider, method, err)
	}
	return out, nil
}

type client struct {
	hc       *http.Client
	base     string
	provider string
}

// do sends a request to base+path and returns the body of a 2xx answer.
func (c *client) do(ctx context.Context, method, path string, q url.Values, header map[string]string, body any) ([]byte, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("the answer is larger than %d MB", maxBody>>20)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return nil, fmt.Errorf("%s answered %d: %s", c.provider, resp.StatusCode, msg)
	}
	return b, nil
}

func str(m map[string]any, k, def string) string {
	if s, ok := m[k].(string); ok && s != "" {
		return s
	}
	return def
}

func num(m map[string]any, k string, def int) int {
	switch v := m[k].(type) {
	case float64:
		return int(v)
	case int:
		return v
	case int64:
		return int(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return int(i)
		}
	}
	return def
}

func need(m map[string]any, what, k string) (string, error) {
	v := m[k]
	if l, ok := v.([]any); ok && len(l) == 1 {
		// Julep's library templates write setup as "$ {secrets.KEY}", a set
		// of the one secret; its element is meant.
		v = l[0]
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return "", fmt.Errorf("%s.%s is required", what, k)
	}
	return s, nil
}
