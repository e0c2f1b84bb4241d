package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/astra-app/astra/internal/egress"
	"github.com/astra-app/astra/internal/engine/integrations"
	"github.com/astra-app/astra/internal/expr"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/retry"
)

// apiCallTimeout is the default timeout of an api_call tool.
const apiCallTimeout = 10 * time.Second

// prompt runs a prompt step: it renders the messages, asks the model
// (streaming deltas to the execution's delta log) and shapes the output as
// Julep does: the content when unwrap is true, else a chat completion.
func (f *frame) prompt(ctx context.Context, s map[string]any, input any) (any, error) {
	rendered, err := f.eval(ctx, s["prompt"], input)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	msgs, err := toMessages(rendered)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	if sys := agentSystemMessage(f.x.agent); sys != "" {
		msgs = append([]llm.Message{{Role: "system", Content: sys}}, msgs...)
	}
	req := llm.Request{Messages: msgs}
	defaults, _ := f.x.agent["default_settings"].(map[string]any)
	settings, _ := s["settings"].(map[string]any)
	pick := func(k string) any {
		if v, ok := settings[k]; ok && v != nil {
			return v
		}
		if v, ok := s[k]; ok && v != nil { // Julep also accepts settings beside the prompt
			return v
		}
		return defaults[k]
	}
	if m, _ := pick("model").(string); m != "" {
		req.Model = m
	} else if m, _ := f.x.agent["model"].(string); m != "" {
		req.Model = m
	}
	if t, ok := toFloat(pick("temperature")); ok {
		req.Temperature = &t
	}
	if n, ok := toFloat(pick("max_tokens")); ok && n > 0 {
		req.MaxTokens = int(n)
	}
	if rf, ok := pick("response_format").(map[string]any); ok {
		req.ResponseFormat = toResponseFormat(rf)
	}
	var (
		onDelta  func(string)
		streamed atomic.Bool
	)
	if d := f.x.r.deltas; d != nil {
		onDelta = func(s string) {
			streamed.Store(true)
			d.add(s)
		}
		defer d.endStep()
	}
	var resp *llm.Response
	err = f.x.e.retry.do(ctx, retryModel, f.x, func(ctx context.Context) error {
		r, err := f.x.e.model.Chat(ctx, req, onDelta)
		if err != nil && streamed.Load() {
			// Part of the answer has reached the person: another attempt
			// would say it twice.
			return retry.Permanent(fmt.Errorf("%w (not retried: the reply had begun streaming)", err))
		}
		resp = r
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prompt: model: %w", err)
	}
	if unwrap, _ := s["unwrap"].(bool); unwrap {
		return resp.Content, nil
	}
	return map[string]any{
		"id":      resp.ID,
		"object":  "chat.completion",
		"created": float64(f.x.e.now().Unix()),
		"model":   resp.Model,
		"choices": []any{map[string]any{
			"index": float64(0), "finish_reason": resp.FinishReason,
			"message": map[string]any{"role": "assistant", "content": resp.Content},
		}},
		"usage": map[string]any{"prompt_tokens": float64(resp.Usage.PromptTokens),
			"completion_tokens": float64(resp.Usage.CompletionTokens), "total_tokens": float64(resp.Usage.TotalTokens)},
	}, nil
}

// agentSystemMessage renders the agent as Julep's default system template
// does: who it is, about it, and its instructions.
func agentSystemMessage(agent map[string]any) string {
	about, _ := agent["about"].(string)
	var instructions []string
	switch v := agent["instructions"].(type) {
	case string:
		if strings.TrimSpace(v) != "" {
			instructions = []string{v}
		}
	case []any:
		for _, i := range v {
			if s, ok := i.(string); ok && strings.TrimSpace(s) != "" {
				instructions = append(instructions, s)
			}
		}
	}
	if strings.TrimSpace(about) == "" && len(instructions) == 0 {
		return ""
	}
	var b strings.Builder
	if name, _ := agent["name"].(string); name != "" {
		fmt.Fprintf(&b, "You are %s.", name)
	}
	if about != "" {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "About you: %s.", strings.TrimRight(about, ". \n"))
	}
	if len(instructions) > 0 {
		b.WriteString("\n\nInstructions:\n")
		if len(instructions) == 1 {
			b.WriteString(instructions[0])
		} else {
			for _, i := range instructions {
				b.WriteString("- " + i + "\n")
			}
		}
	}
	return strings.TrimSpace(b.String())
}

func toResponseFormat(rf map[string]any) *llm.ResponseFormat {
	out := &llm.ResponseFormat{}
	out.Type, _ = rf["type"].(string)
	js, _ := rf["json_schema"].(map[string]any)
	if js == nil {
		js = rf
	}
	out.Name, _ = js["name"].(string)
	out.Schema, _ = js["schema"].(map[string]any)
	out.Strict, _ = js["strict"].(bool)
	return out
}

// toMessages accepts a string (one user message), a list of {role,
// content} or a single such mapping. Content lists (text and image parts)
// are flattened to text because the model port carries text only.
func toMessages(v any) ([]llm.Message, error) {
	switch v := v.(type) {
	case string:
		return []llm.Message{{Role: "user", Content: v}}, nil
	case map[string]any:
		return toMessages([]any{v})
	case []any:
		out := make([]llm.Message, 0, len(v))
		for i, m := range v {
			mm, ok := m.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("message %d: expected {role, content}, got %s", i, typeName(m))
			}
			role, _ := mm["role"].(string)
			if role == "" {
				role = "user"
			}
			out = append(out, llm.Message{Role: role, Content: contentText(mm["content"])})
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected a string or a list of messages, got %s", typeName(v))
}

func contentText(c any) string {
	switch c := c.(type) {
	case string:
		return c
	case nil:
		return ""
	case []any:
		parts := make([]string, 0, len(c))
		for _, p := range c {
			if t := contentText(p); t != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, "\n")
	case map[string]any:
		if t, ok := c["text"].(string); ok {
			return t
		}
		if img, ok := c["image_url"].(map[string]any); ok {
			u, _ := img["url"].(string)
			if strings.HasPrefix(u, "data:") {
				u = "(inline data)"
			}
			return "[image: " + u + "]"
		}
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// findTool looks a tool up by name among the task's tools.
func (x *executor) findTool(name string) (map[string]any, bool) {
	tools, _ := x.def["tools"].([]any)
	for _, t := range tools {
		tm, ok := t.(map[string]any)
		if !ok {
			continue
		}
		n, _ := tm["name"].(string)
		if n == "" {
			if fn, ok := tm["function"].(map[string]any); ok {
				n, _ = fn["name"].(string)
			}
		}
		if n == name {
			return tm, true
		}
	}
	return nil, false
}

func (f *frame) tool(ctx context.Context, s map[string]any, input any, path string) (any, error) {
	name, _ := s["tool"].(string)
	if tm, ok := s["tool"].(map[string]any); ok {
		name, _ = tm["name"].(string)
	}
	t, ok := f.x.findTool(name)
	if !ok {
		return nil, fmt.Errorf("tool %q is not defined in the task's tools", name)
	}
	ctx, span := traceToolCall(ctx, t, name)
	defer span.End()
	var args map[string]any
	if a, ok := s["arguments"]; ok && a != nil {
		v, err := f.eval(ctx, a, input)
		if err != nil {
			return nil, fmt.Errorf("tool %q arguments: %w", name, err)
		}
		if args, ok = v.(map[string]any); !ok && v != nil {
			return nil, fmt.Errorf("tool %q arguments: expected a mapping, got %s", name, typeName(v))
		}
	}
	if args == nil {
		args = map[string]any{}
	}
	typ, _ := t["type"].(string)
	if typ == "" {
		for _, k := range []string{"system", "api_call", "function", "integration"} {
			if _, ok := t[k]; ok {
				typ = k
				break
			}
		}
	}
	var (
		out any
		err error
	)
	switch typ {
	case "system":
		sys, _ := t["system"].(map[string]any)
		out, err = f.x.e.systemTool(ctx, sys, args, f.x.scope(path))
	case "api_call":
		spec, _ := t["api_call"].(map[string]any)
		out, err = f.apiCall(ctx, spec, args, input)
	case "function":
		if v, ok := f.x.ck.Resumes[path]; ok {
			return v, nil
		}
		return nil, &pause{Path: path, Info: map[string]any{"tool_call": map[string]any{
			"type": "function", "function": map[string]any{"name": name, "arguments": args}}}}
	case "integration":
		in, _ := t["integration"].(map[string]any)
		prov, _ := in["provider"].(string)
		method, _ := in["method"].(string)
		var setup map[string]any
		if sm, ok := in["setup"].(map[string]any); ok {
			// Setup values may name secrets ("$ secrets.BRAVE_KEY").
			v, err := f.evalExpressions(ctx, sm, input)
			if err != nil {
				return nil, fmt.Errorf("tool %q setup: %w", name, err)
			}
			setup = v
		}
		// The tool's own arguments win over the step's
		// (execute_integration.py: arguments | integration.arguments).
		if ta, ok := in["arguments"].(map[string]any); ok {
			merged := make(map[string]any, len(args)+len(ta))
			maps.Copy(merged, args)
			maps.Copy(merged, ta)
			args = merged
		}
		out, err = integrations.Run(ctx, f.x.e.hc, f.x.e.intURLs, prov, method, setup, args)
	default:
		err = fmt.Errorf("tool type %q is not supported by the embedded engine", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("tool %q: %w", name, err)
	}
	return out, nil
}

// apiCall performs an api_call tool: the tool's definition with the step's
// arguments merged over it (headers and params merged, the rest replaced).
func (f *frame) apiCall(ctx context.Context, spec, args map[string]any, input any) (any, error) {
	merged := map[string]any{}
	for k, v := range spec {
		if s, ok := v.(string); ok && expr.IsExpression(s) {
			ev, err := f.eval(ctx, s, input)
			if err != nil {
				return nil, fmt.Errorf("api_call %s: %w", k, err)
			}
			v = ev
		} else if m, ok := v.(map[string]any); ok && (k == "headers" || k == "params") {
			ev, err := f.evalExpressions(ctx, m, input)
			if err != nil {
				return nil, fmt.Errorf("api_call %s: %w", k, err)
			}
			v = ev
		}
		merged[k] = v
	}
	for k, v := range args {
		if old, ok := merged[k].(map[string]any); ok && (k == "headers" || k == "params") {
			if nv, ok := v.(map[string]any); ok {
				m := map[string]any{}
				for kk, vv := range old {
					m[kk] = vv
				}
				for kk, vv := range nv {
					m[kk] = vv
				}
				merged[k] = m
				continue
			}
		}
		merged[k] = v
	}
	method, _ := merged["method"].(string)
	if method == "" {
		method = http.MethodGet
	}
	rawURL, _ := merged["url"].(string)
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("api_call: url %q is not an http(s) URL", rawURL)
	}
	if params, ok := merged["params"].(map[string]any); ok {
		q := u.Query()
		for k, v := range params {
			q.Set(k, fmt.Sprint(v))
		}
		u.RawQuery = q.Encode()
	}
	var body []byte
	contentType := ""
	switch {
	case merged["json"] != nil:
		b, err := json.Marshal(merged["json"])
		if err != nil {
			return nil, fmt.Errorf("api_call json: %w", err)
		}
		body, contentType = b, "application/json"
	case merged["data"] != nil:
		form := url.Values{}
		if m, ok := merged["data"].(map[string]any); ok {
			for k, v := range m {
				form.Set(k, fmt.Sprint(v))
			}
		}
		body, contentType = []byte(form.Encode()), "application/x-www-form-urlencoded"
	case merged["content"] != nil:
		body = []byte(fmt.Sprint(merged["content"]))
	}
	timeout := apiCallTimeout
	if t, ok := toFloat(merged["timeout"]); ok && t > 0 {
		timeout = time.Duration(t * float64(time.Second))
	}
	method = strings.ToUpper(method)
	hc := *f.x.e.hc
	if fr, ok := merged["follow_redirects"].(bool); ok && !fr {
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	// One attempt: the timeout is per attempt, and the body is read in
	// full inside it so a connection dropped mid-body is retried too.
	var (
		resp *http.Response
		b    []byte
	)
	attempt := func(ctx context.Context) error {
		resp, b = nil, nil
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
		if err != nil {
			return retry.Permanent(fmt.Errorf("api_call: %w", err))
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if h, ok := merged["headers"].(map[string]any); ok {
			for k, v := range h {
				req.Header.Set(k, fmt.Sprint(v))
			}
		}
		r, err := hc.Do(req)
		if err != nil {
			// The egress policy's refusal says all there is to say, and
			// asking again cannot change it.
			if re, ok := errors.AsType[*egress.RefusedError](err); ok {
				return retry.Permanent(fmt.Errorf("api_call to %s: %w", u.Redacted(), re))
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("api_call %s %s: timed out after %s: %w", method, u.Redacted(), timeout, context.DeadlineExceeded)
			}
			return fmt.Errorf("api_call %s %s: %w", method, u.Redacted(), err)
		}
		defer r.Body.Close()
		rb, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("timed out after %s: %w", timeout, context.DeadlineExceeded)
			}
			return fmt.Errorf("api_call %s %s: read response: %w", method, u.Redacted(), err)
		}
		resp, b = r, rb
		if _, transient := retry.Classify(&retry.StatusError{Code: r.StatusCode}); transient {
			return &retry.StatusError{Code: r.StatusCode, Header: r.Header,
				Err: fmt.Errorf("api_call %s %s: %s", method, u.Redacted(), r.Status)}
		}
		return nil
	}
	if err := f.x.e.retry.do(ctx, retryAPICall, f.x, attempt); err != nil {
		// A server that still answers 408/429/5xx after every attempt gave
		// an answer all the same: as for any other status, it is the
		// step's output and the task decides (the responder's speech step
		// falls back to text). Only a call that got no answer fails.
		var (
			ex *retry.Exhausted
			se *retry.StatusError
		)
		if ctx.Err() != nil || !errors.As(err, &ex) || !errors.As(ex.Err, &se) || resp == nil {
			return nil, err
		}
	}
	headers := map[string]any{}
	for k := range resp.Header {
		headers[strings.ToLower(k)] = resp.Header.Get(k)
	}
	out := map[string]any{"status_code": float64(resp.StatusCode), "headers": headers}
	if !utf8.Valid(b) {
		// Binary bodies (audio, images) cannot travel as JSON text: an astra
		// extension gives them base64-encoded, marked by "encoding".
		out["content"], out["text"], out["encoding"] = base64.StdEncoding.EncodeToString(b), "", "base64"
		return out, nil
	}
	out["content"], out["text"] = string(b), string(b)
	var j any
	if json.Unmarshal(b, &j) == nil {
		out["json"] = j
	}
	return out, nil
}

func (f *frame) evalExpressions(ctx context.Context, m map[string]any, input any) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok && expr.IsExpression(s) {
			ev, err := f.eval(ctx, s, input)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			v = ev
		}
		out[k] = v
	}
	return out, nil
}
