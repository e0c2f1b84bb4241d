package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ardanlabs/jinja"

	"github.com/astra-app/astra/internal/llm"
)

// Kinds of the resources sessions and agent tools add (engine.State keeps
// any kind; no schema change).
const (
	KindSession = "session"
	KindEntry   = "entry" // a session's history entry; Parent is the session id
	KindTool    = "tool"  // an agent's tool; Parent is the agent id
)

// defaultSystemTemplate is Julep v1's Agent.default_system_template
// (agents_api/autogen/Agents.py), rendered as Julep renders it: Jinja2 with
// trim_blocks and lstrip_blocks, NEWLINE a global.
const defaultSystemTemplate = "{%- if agent.name -%}\nYou are {{agent.name}}.{{\" \"}}\n{%- endif -%}\n\n" +
	"{%- if agent.about -%}\nAbout you: {{agent.about}}.{{\" \"}}\n{%- endif -%}\n\n" +
	"{%- if user -%}\nYou are talking to a user\n  {%- if user.name -%}{{\" \"}} and their name is {{user.name}}\n" +
	"    {%- if user.about -%}. About the user: {{user.about}}.{%- else -%}.{%- endif -%}\n  {%- endif -%}\n{%- endif -%}\n\n" +
	"{{NEWLINE}}\n\n{%- if session.situation -%}\nSituation: {{session.situation}}\n{%- endif -%}\n\n{{NEWLINE+NEWLINE}}\n\n" +
	"{%- if agent.instructions -%}\nInstructions:{{NEWLINE}}\n  {%- if agent.instructions is string -%}\n    {{agent.instructions}}{{NEWLINE}}\n" +
	"  {%- else -%}\n    {%- for instruction in agent.instructions -%}\n      - {{instruction}}{{NEWLINE}}\n    {%- endfor -%}\n  {%- endif -%}\n  {{NEWLINE}}\n{%- endif -%}\n\n" +
	"{%- if docs -%}\nRelevant documents:{{NEWLINE}}\n  {%- for doc in docs -%}\n    {{doc.title}}{{NEWLINE}}\n    {%- if doc.content is string -%}\n      {{doc.content}}{{NEWLINE}}\n" +
	"    {%- else -%}\n      {%- for snippet in doc.content -%}\n        {{snippet}}{{NEWLINE}}\n      {%- endfor -%}\n    {%- endif -%}\n    {{\"---\"}}\n  {%- endfor -%}\n{%- endif -%}"

// templates caches compiled templates by source (a session's or agent's
// system template is rendered on every turn).
var templates sync.Map

// Template limits. Julep renders templates with Jinja2's sandbox, whose
// only bound is range() at 100,000 items; the Go renderer materialises
// ranges and repeats strings eagerly, so the engine bounds more: range()
// gives at most maxTemplateRange items and a template may call it once,
// tags may not use `*` (string and list repetition) or integer literals
// above maxTemplateRange, a render may take templateTimeout and write
// maxTemplateOutput bytes. Loops over the data (docs, instructions) are
// bounded by the data's size.
const (
	maxTemplateRange  = 10_000
	maxTemplateOutput = 1 << 20
	maxTemplateSource = 256 << 10
	templateTimeout   = 2 * time.Second
	// maxTemplateLoopDepth bounds nested {% for %} loops.
	maxTemplateLoopDepth = 2
)

var boundedRange = jinja.NewCallable("range", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	var n [3]int64
	for i, a := range args {
		if i > 2 || !a.IsInt() {
			return jinja.Undefined(), errors.New("range: expected 1 to 3 integers")
		}
		n[i] = a.AsInt()
	}
	start, stop, step := int64(0), n[0], int64(1)
	switch len(args) {
	case 0:
		return jinja.Undefined(), errors.New("range: expected 1 to 3 integers")
	case 2:
		start, stop = n[0], n[1]
	case 3:
		start, stop, step = n[0], n[1], n[2]
	}
	if step == 0 {
		return jinja.Undefined(), errors.New("range: step must not be zero")
	}
	count := (stop - start + step - sign(step)) / step
	if count > maxTemplateRange {
		return jinja.Undefined(), fmt.Errorf("range: more than %d items", maxTemplateRange)
	}
	var items []jinja.Value
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		items = append(items, jinja.NewInt(i))
	}
	return jinja.NewList(items), nil
})

func sign(x int64) int64 {
	if x < 0 {
		return -1
	}
	return 1
}

var bigInt = regexp.MustCompile(`\d{5,}`)

// checkTemplate refuses what the template limits forbid in a tag.
func checkTemplate(src string) error {
	if len(src) > maxTemplateSource {
		return fmt.Errorf("template is longer than %d bytes", maxTemplateSource)
	}
	rest, ranges, depth := src, 0, 0
	for {
		i := strings.IndexAny(rest, "{")
		if i < 0 || i+1 >= len(rest) {
			return nil
		}
		closer := ""
		switch rest[i+1] {
		case '{':
			closer = "}}"
		case '%':
			closer = "%}"
		default:
			rest = rest[i+1:]
			continue
		}
		end := strings.Index(rest[i+2:], closer)
		if end < 0 {
			return nil // the compiler reports it
		}
		tag := rest[i+2 : i+2+end]
		if closer == "%}" {
			// Loops over the data nest multiplicatively (docs x docs x
			// docs): Julep's default template needs two levels.
			w := firstWord(tag)
			if refusedTags[w] || w == "for" && strings.Contains(tag, " recursive") {
				return fmt.Errorf("{%% %s %%} is not allowed in a template (macros and includes can recurse without end)", w)
			}
			if w == "for" {
				if depth++; depth > maxTemplateLoopDepth {
					return fmt.Errorf("loops nest deeper than %d levels", maxTemplateLoopDepth)
				}
			} else if w == "endfor" {
				depth--
			}
		}
		if strings.Contains(tag, "range(") {
			ranges++
			if ranges > 1 {
				return errors.New("at most one range() per template (nested ranges multiply)")
			}
		}
		if strings.Contains(tag, "*") {
			return errors.New("`*` is not allowed in a template tag (string and list repetition are unbounded)")
		}
		for _, m := range bigInt.FindAllString(tag, -1) {
			if n, err := strconv.ParseInt(m, 10, 64); err != nil || n > maxTemplateRange {
				return fmt.Errorf("integer %s in a template tag is above %d", m, maxTemplateRange)
			}
		}
		rest = rest[i+2+end+len(closer):]
	}
}

// refusedTags could recurse without end (a macro calling itself grows the
// stack until the process dies) and Julep's templates do not use them.
var refusedTags = map[string]bool{"macro": true, "call": true, "include": true, "import": true, "from": true, "extends": true}

// firstWord is a tag's keyword ("for" in "{%- for x in xs -%}").
func firstWord(tag string) string {
	f := strings.Fields(strings.Trim(tag, "-+"))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// compileTemplate is jinja.Compile, with a panic of the parser reported
// as a syntax error.
func compileTemplate(src string) (t *jinja.Template, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("%v", p)
		}
	}()
	return jinja.Compile(src)
}

// renderTemplate renders a Jinja template as Julep does, within the
// template limits. A render past templateTimeout is answered as an error;
// its goroutine is left to finish (bounded by the limits above).
func renderTemplate(src string, env map[string]any) (string, error) {
	var t *jinja.Template
	if v, ok := templates.Load(src); ok {
		t = v.(*jinja.Template)
	} else {
		if err := checkTemplate(src); err != nil {
			return "", errorf(http.StatusBadRequest, "Template refused: %v", err)
		}
		c, err := compileTemplate(src)
		if err != nil {
			return "", errorf(http.StatusBadRequest, "Template syntax error: %v", err)
		}
		if len(src) <= 64<<10 {
			templates.Store(src, c)
		}
		t = c
	}
	vars := map[string]any{"NEWLINE": "\n", "true": true, "false": false, "null": nil}
	for k, v := range env {
		vars[k] = v
	}
	vals := make(map[string]jinja.Value, len(vars)+1)
	for k, v := range vars {
		vals[k] = jinja.FromGoValue(v)
	}
	vals["range"] = boundedRange
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("%v", p)}
			}
		}()
		out, err := t.RenderValues(vals)
		done <- result{out, err}
	}()
	timer := time.NewTimer(templateTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return "", errorf(http.StatusBadRequest, "Template rendering error: %v", r.err)
		}
		if len(r.out) > maxTemplateOutput {
			return "", errorf(http.StatusBadRequest, "Template rendering error: output is longer than %d bytes", maxTemplateOutput)
		}
		return r.out, nil
	case <-timer.C:
		return "", errorf(http.StatusBadRequest, "Template rendering error: took longer than %s", templateTimeout)
	}
}

var contextOverflows = map[string]bool{"truncate": true, "adaptive": true}

// putSession creates or replaces a session. Julep's sessions name one or
// more agents and zero or more users, which must exist.
func (e *Engine) putSession(ctx context.Context, id string, in map[string]any, old map[string]any) (map[string]any, error) {
	var details []any
	ids := func(one, many string) []string {
		var out []string
		if s, ok := in[one].(string); ok && s != "" {
			out = append(out, s)
		} else if in[one] != nil {
			details = append(details, fieldError(one, "must be a UUID"))
		}
		if xs, ok := in[many].([]any); ok {
			for _, x := range xs {
				s, _ := x.(string)
				out = append(out, s)
			}
		} else if in[many] != nil {
			details = append(details, fieldError(many, "must be a list of UUIDs"))
		}
		out = dedupe(out)
		for _, s := range out {
			if !validID(s) {
				details = append(details, fieldError(many, fmt.Sprintf("%q is not a valid UUID", s)))
			}
		}
		return out
	}
	agents, users := ids("agent", "agents"), ids("user", "users")
	if old != nil && in["agent"] == nil && in["agents"] == nil {
		agents = stringList(old["agents"])
	}
	if old != nil && in["user"] == nil && in["users"] == nil {
		users = stringList(old["users"])
	}
	if len(agents) == 0 && len(details) == 0 {
		details = append(details, fieldError("agent", "at least one agent must be provided"))
	}
	meta, err := asMetadata(in["metadata"])
	if err != nil {
		details = append(details, fieldError("metadata", err.Error()))
	}
	if co, ok := in["context_overflow"]; ok && co != nil {
		if s, _ := co.(string); !contextOverflows[s] {
			details = append(details, fieldError("context_overflow", "must be truncate, adaptive or null"))
		}
	}
	if tb, ok := in["token_budget"]; ok && tb != nil {
		if f, ok := toFloat(tb); !ok || f < 1 {
			details = append(details, fieldError("token_budget", "must be a positive integer or null"))
		}
	}
	ro, err := recallOptions(in["recall_options"], in["recall_options"] == nil && old == nil)
	if err != nil {
		details = append(details, fieldError("recall_options", err.Error()))
	}
	if len(details) > 0 {
		return nil, validationError(details)
	}
	for _, a := range agents {
		if _, err := e.getResource(ctx, KindAgent, a); err != nil {
			return nil, err
		}
	}
	for _, u := range users {
		if err := e.userExists(ctx, u); err != nil {
			return nil, err
		}
	}
	kind := "single_agent_no_user"
	switch {
	case len(agents) == 1 && len(users) == 1:
		kind = "single_agent_single_user"
	case len(agents) == 1 && len(users) > 1:
		kind = "single_agent_multi_user"
	case len(agents) > 1:
		kind = "multi_agent_multi_user"
	}
	body := map[string]any{"id": id, "situation": nil, "summary": nil, "render_templates": true,
		"token_budget": nil, "context_overflow": nil, "auto_run_tools": false, "forward_tool_calls": false,
		"recall_options": ro, "metadata": meta, "kind": kind, "agents": anyList(agents), "users": anyList(users)}
	for _, k := range []string{"situation", "system_template", "render_templates", "token_budget", "context_overflow", "auto_run_tools", "forward_tool_calls"} {
		if v, ok := in[k]; ok {
			body[k] = v
		}
	}
	if len(agents) == 1 {
		body["agent"] = agents[0]
	}
	if len(users) == 1 {
		body["user"] = users[0]
	}
	return e.putResource(ctx, KindSession, id, "", meta, body, nil)
}

func stringList(v any) []string {
	xs, _ := v.([]any)
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func anyList(xs []string) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// recallOptions checks a session's recall_options and fills Julep's
// defaults (Sessions.*DocSearch: mode vector, limit 10, confidence 0.5,
// mmr_strength 0.5, alpha 0.5, num_search_messages 4, max_query_length
// 1000, k_multiplier 5, lang en-US). null is no recall; absent at create
// is the defaults.
func recallOptions(v any, absent bool) (any, error) {
	if v == nil && !absent {
		return nil, nil
	}
	in, _ := v.(map[string]any)
	if v != nil && in == nil {
		return nil, errors.New("must be an object or null")
	}
	ro := map[string]any{"mode": "vector", "lang": "en-US", "limit": float64(10), "max_query_length": float64(1000),
		"metadata_filter": map[string]any{}, "num_search_messages": float64(4), "include_embeddings": true,
		"confidence": 0.5, "mmr_strength": 0.5}
	for k, x := range in {
		ro[k] = x
	}
	switch ro["mode"] {
	case "vector":
	case "hybrid":
		if _, ok := ro["alpha"]; !ok {
			ro["alpha"] = 0.5
		}
		if _, ok := ro["k_multiplier"]; !ok {
			ro["k_multiplier"] = float64(5)
		}
	case "text":
		delete(ro, "confidence")
		delete(ro, "mmr_strength")
	default:
		return nil, errors.New("mode must be text, vector or hybrid")
	}
	for name, r := range map[string][2]float64{"limit": {1, 50}, "num_search_messages": {1, 50}, "max_query_length": {1, 1000}, "confidence": {-1, 1}, "mmr_strength": {0, 1}, "alpha": {0, 1}, "k_multiplier": {1, 10}} {
		if x, ok := ro[name]; ok {
			if f, ok := toFloat(x); !ok || f < r[0] || f > r[1] {
				return nil, fmt.Errorf("%s must be between %g and %g", name, r[0], r[1])
			} else if integerRecallOptions[name] && f != math.Trunc(f) {
				return nil, fmt.Errorf("%s must be an integer", name)
			}
		}
	}
	return ro, nil
}

var integerRecallOptions = map[string]bool{"limit": true, "num_search_messages": true, "max_query_length": true, "k_multiplier": true}

// patchSession merges in over the stored session (metadata merged key by
// key, recall_options field by field).
func (e *Engine) patchSession(ctx context.Context, id string, in map[string]any) (map[string]any, error) {
	old, err := e.getResource(ctx, KindSession, id)
	if err != nil {
		return nil, err
	}
	merged := mergePatch(old, in)
	if ro, ok := in["recall_options"].(map[string]any); ok {
		if oro, ok := old["recall_options"].(map[string]any); ok {
			merged["recall_options"] = mergePatch(oro, ro)
		}
	}
	return e.putSession(ctx, id, merged, old)
}

// mergePatch is old with in's keys set over it; metadata is merged.
func mergePatch(old, in map[string]any) map[string]any {
	out := make(map[string]any, len(old)+len(in))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range in {
		if k == "metadata" {
			m := map[string]any{}
			if om, ok := old["metadata"].(map[string]any); ok {
				for mk, mv := range om {
					m[mk] = mv
				}
			}
			if nm, ok := v.(map[string]any); ok {
				for mk, mv := range nm {
					m[mk] = mv
				}
				v = m
			}
		}
		out[k] = v
	}
	return out
}

// deleteSession removes a session and its history.
func (e *Engine) deleteSession(ctx context.Context, id string) (map[string]any, error) {
	if _, err := e.getResource(ctx, KindSession, id); err != nil {
		return nil, err
	}
	if err := e.clearHistory(ctx, id); err != nil {
		return nil, err
	}
	if err := e.state.DeleteResource(ctx, KindSession, id); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return map[string]any{"id": id, "deleted_at": ts(e.now()), "jobs": []any{}}, nil
}

func (e *Engine) clearHistory(ctx context.Context, sessionID string) error {
	rs, err := e.state.ListResources(ctx, ListQuery{Kind: KindEntry, Parent: sessionID})
	if err != nil {
		return err
	}
	for _, r := range rs {
		if err := e.state.DeleteResource(ctx, KindEntry, r.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// history is a session's entries, oldest first, as Julep's History.
func (e *Engine) history(ctx context.Context, sessionID string) (map[string]any, error) {
	s, err := e.getResource(ctx, KindSession, sessionID)
	if err != nil {
		return nil, err
	}
	rs, err := e.state.ListResources(ctx, ListQuery{Kind: KindEntry, Parent: sessionID, SortBy: "created_at"})
	if err != nil {
		return nil, err
	}
	entries := make([]any, len(rs))
	for i, r := range rs {
		entries[i] = decodeBody(r.Body)
	}
	return map[string]any{"entries": entries, "relations": []any{}, "session_id": sessionID, "created_at": s["created_at"]}, nil
}

// addEntries appends messages to a session's history.
func (e *Engine) addEntries(ctx context.Context, sessionID, model, source string, msgs []map[string]any) error {
	for _, m := range msgs {
		id := newID()
		content := contentParts(m["content"])
		text := contentText(content)
		body := map[string]any{"id": id, "session_id": sessionID, "role": m["role"], "name": m["name"],
			"content": content, "source": source, "tokenizer": "character_count", "token_count": float64(estimateTokens(text)),
			"model": model, "tool_calls": m["tool_calls"], "tool_call_id": m["tool_call_id"], "timestamp": ts(e.now())}
		if _, err := e.putResource(ctx, KindEntry, id, sessionID, map[string]any{}, body, nil); err != nil {
			return fmt.Errorf("save history of session %s: %w", sessionID, err)
		}
	}
	return nil
}

// contentParts is Julep's content_to_json: history keeps content as a list
// of parts; a string is one text part, an object one text part of its
// indented JSON.
func contentParts(c any) any {
	switch v := c.(type) {
	case string:
		return []any{map[string]any{"type": "text", "text": v}}
	case []any:
		return v
	case map[string]any:
		b, _ := json.MarshalIndent(v, "", "    ")
		return []any{map[string]any{"type": "text", "text": string(b)}}
	case nil:
		return []any{}
	}
	return c
}

// collapseContent is gather_messages' collapse: a history entry of one
// text part is sent as that text, stripped.
func collapseContent(c any) any {
	if parts, ok := c.([]any); ok && len(parts) == 1 {
		if p, ok := parts[0].(map[string]any); ok && p["type"] == "text" {
			if t, ok := p["text"].(string); ok {
				return strings.TrimSpace(t)
			}
		}
	}
	return c
}

// estimateTokens is the engine's token count: about four characters a
// token (the engine has no tokenizer for every model).
func estimateTokens(s string) int { return (len(s) + 3) / 4 }

// chatTurn is a rendered chat request: what render answers and chat sends.
type chatTurn struct {
	session  map[string]any
	messages []map[string]any
	newMsgs  []map[string]any
	docs     []any
	tools    []any
	settings map[string]any
	input    map[string]any
}

// renderChat is Julep's render_chat_input: the session's context, the
// recalled docs, the system template rendered over them, the history and
// the new messages.
func (e *Engine) renderChat(ctx context.Context, sessionID string, in map[string]any) (*chatTurn, error) {
	s, err := e.getResource(ctx, KindSession, sessionID)
	if err != nil {
		return nil, err
	}
	raw, ok := in["messages"].([]any)
	var details []any
	if !ok || len(raw) == 0 {
		details = append(details, fieldError("messages", "must be a non-empty list of messages"))
	}
	newMsgs := make([]map[string]any, 0, len(raw))
	for i, m := range raw {
		mm, ok := m.(map[string]any)
		role, _ := mm["role"].(string)
		if !ok || !validRoles[role] {
			details = append(details, map[string]any{"loc": []any{"body", "messages", i, "role"}, "msg": "must be one of user, assistant, system, tool, developer", "type": "value_error"})
			continue
		}
		switch mm["content"].(type) {
		case string, []any, nil:
		default:
			details = append(details, map[string]any{"loc": []any{"body", "messages", i, "content"}, "msg": "must be a string or a list of parts", "type": "value_error"})
		}
		newMsgs = append(newMsgs, mm)
	}
	for _, k := range []string{"stream", "save", "recall", "remember", "recall_tools", "auto_run_tools"} {
		if v, ok := in[k]; ok && v != nil {
			if _, ok := v.(bool); !ok {
				details = append(details, fieldError(k, "must be a boolean"))
			}
		}
	}
	if len(details) > 0 {
		return nil, validationError(details)
	}

	agentIDs, userIDs := stringList(s["agents"]), stringList(s["users"])
	agents := make([]any, 0, len(agentIDs))
	for _, id := range agentIDs {
		a, err := e.getResource(ctx, KindAgent, id)
		if err != nil {
			return nil, err
		}
		if _, ok := a["default_system_template"]; !ok {
			a["default_system_template"] = defaultSystemTemplate
		}
		agents = append(agents, a)
	}
	if len(agents) == 0 {
		return nil, errorf(http.StatusBadRequest, "session %s has no agent", sessionID)
	}
	active := agents[0].(map[string]any)
	if want, ok := in["agent"].(string); ok && want != "" {
		found := false
		for _, a := range agents {
			if a.(map[string]any)["id"] == want {
				active, found = a.(map[string]any), true
			}
		}
		if !found {
			return nil, errorf(http.StatusBadRequest, "agent %s is not in session %s", want, sessionID)
		}
	}
	users := make([]any, 0, len(userIDs))
	for _, id := range userIDs {
		u, err := e.getResource(ctx, KindUser, id)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	toolRes, err := e.state.ListResources(ctx, ListQuery{Kind: KindTool, Parent: active["id"].(string), SortBy: "created_at"})
	if err != nil {
		return nil, err
	}
	tools := make([]any, len(toolRes))
	for i, r := range toolRes {
		tools[i] = decodeBody(r.Body)
	}

	// Settings: the agent's model and default settings, then the request's.
	settings := map[string]any{"model": active["model"]}
	if ds, ok := active["default_settings"].(map[string]any); ok {
		for k, v := range ds {
			settings[k] = v
		}
	}
	for k, v := range in {
		if k != "messages" && k != "tools" && k != "tool_choice" {
			settings[k] = v
		}
	}

	// History: api_request/api_response entries (and tool entries when
	// recall_tools, the default).
	recallTools := true
	if b, ok := in["recall_tools"].(bool); ok {
		recallTools = b
	}
	hist, err := e.state.ListResources(ctx, ListQuery{Kind: KindEntry, Parent: sessionID, SortBy: "created_at"})
	if err != nil {
		return nil, err
	}
	var past []map[string]any
	for _, r := range hist {
		en := decodeBody(r.Body)
		switch en["source"] {
		case "api_request", "api_response":
		case "tool_request", "tool_response", "summarizer":
			if !recallTools {
				continue
			}
		default:
			continue
		}
		m := map[string]any{"role": en["role"], "content": collapseContent(en["content"])}
		if en["name"] != nil {
			m["name"] = en["name"]
		}
		past = append(past, m)
	}

	recall := true
	if b, ok := in["recall"].(bool); ok {
		recall = b
	}
	var docRefs []any
	if ro, ok := s["recall_options"].(map[string]any); ok && recall {
		docRefs, err = e.recallDocs(ctx, ro, past, newMsgs, active, users)
		if err != nil {
			return nil, err
		}
	}
	if docRefs == nil {
		docRefs = []any{}
	}
	envDocs := make([]any, len(docRefs))
	for i, d := range docRefs {
		dm := d.(map[string]any)
		sn, _ := dm["snippet"].(map[string]any)
		envDocs[i] = map[string]any{"title": dm["title"], "content": []any{sn["content"]}, "metadata": dm["metadata"]}
	}
	var user any
	if len(users) > 0 {
		user = users[0]
	}
	env := map[string]any{"session": s, "agents": agents, "current_agent": active, "agent": active,
		"user": user, "users": users, "settings": settings, "tools": tools, "docs": envDocs}
	if md, ok := in["metadata"].(map[string]any); ok && len(md) > 0 {
		env["metadata"] = md
	}
	tmpl, _ := s["system_template"].(string)
	if tmpl == "" {
		tmpl, _ = active["default_system_template"].(string)
	}
	var msgs []map[string]any
	if tmpl != "" {
		sys, err := renderTemplate(tmpl, env)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, map[string]any{"role": "system", "content": sys})
	}
	msgs = append(msgs, past...)
	rendered := newMsgs
	if rt, _ := s["render_templates"].(bool); rt {
		rendered = make([]map[string]any, len(newMsgs))
		for i, m := range newMsgs {
			c := map[string]any{}
			for k, v := range m {
				c[k] = v
			}
			if str, ok := m["content"].(string); ok && hasTemplateTags(str) {
				if c["content"], err = renderTemplate(str, env); err != nil {
					return nil, err
				}
			}
			rendered[i] = c
		}
	}
	msgs = append(msgs, rendered...)
	msgs = fitContext(s, msgs, len(rendered))
	for i, m := range msgs {
		out := map[string]any{}
		for _, k := range []string{"role", "content", "tool_calls", "tool_call_id", "name"} {
			if v, ok := m[k]; ok && v != nil {
				out[k] = v
			}
		}
		msgs[i] = out
	}
	return &chatTurn{session: s, messages: msgs, newMsgs: rendered, docs: docRefs, tools: tools, settings: settings, input: in}, nil
}

var validRoles = map[string]bool{"user": true, "assistant": true, "system": true, "tool": true, "developer": true}

// fitContext applies the session's context_overflow. Julep v1 declares
// `truncate` and `adaptive` but answers both with "not yet implemented";
// the engine implements them as one: when the turn's estimated tokens pass
// the session's token_budget, the oldest history messages (never the
// system message nor the new ones) are dropped until it fits. With no
// context_overflow or no token_budget everything is sent, as Julep does.
func fitContext(s map[string]any, msgs []map[string]any, newCount int) []map[string]any {
	co, _ := s["context_overflow"].(string)
	budget, ok := toFloat(s["token_budget"])
	if co == "" || !ok || budget <= 0 {
		return msgs
	}
	total := 0
	for _, m := range msgs {
		total += estimateTokens(contentText(m["content"]))
	}
	first := 0
	if len(msgs) > 0 && msgs[0]["role"] == "system" {
		first = 1
	}
	for total > int(budget) && len(msgs)-newCount > first {
		total -= estimateTokens(contentText(msgs[first]["content"]))
		msgs = append(msgs[:first], msgs[first+1:]...)
	}
	return msgs
}

// recallDocs is gather_messages' recall: the last num_search_messages
// user/assistant messages make the query, searched over the users' and the
// active agent's docs in the session's mode.
func (e *Engine) recallDocs(ctx context.Context, ro map[string]any, past, newMsgs []map[string]any, agent map[string]any, users []any) ([]any, error) {
	all := append(append([]map[string]any{}, past...), newMsgs...)
	n := 4
	if f, ok := toFloat(ro["num_search_messages"]); ok {
		n = int(f)
	}
	if len(all) > n {
		all = all[len(all)-n:]
	}
	var search []map[string]any
	for _, m := range all {
		if _, ok := m["content"].(string); ok && (m["role"] == "user" || m["role"] == "assistant") {
			search = append(search, m)
		}
	}
	if len(search) == 0 {
		return nil, nil
	}
	maxLen := 1000
	if f, ok := toFloat(ro["max_query_length"]); ok {
		maxLen = int(f)
	}
	lines := make([]string, len(search))
	for i, m := range search {
		who, _ := m["name"].(string)
		if who == "" {
			who, _ = m["role"].(string)
		}
		lines[i] = who + ": " + m["content"].(string)
	}
	embedText := lastRunes(strings.TrimSpace(strings.Join(lines, "\n\n")), maxLen)
	queryText := firstRunes(strings.TrimSpace(search[len(search)-1]["content"].(string)), maxLen)
	req := map[string]any{}
	for _, k := range []string{"limit", "metadata_filter", "confidence", "mmr_strength", "alpha", "k_multiplier", "include_embeddings"} {
		if v, ok := ro[k]; ok {
			req[k] = v
		}
	}
	mode, _ := ro["mode"].(string)
	if mode != "text" {
		vecs, err := e.embed.Embed(ctx, []string{embedText})
		if err != nil {
			return nil, errorf(http.StatusBadGateway, "embed recall query: %v", err)
		}
		vec := make([]any, len(vecs[0]))
		for i, x := range vecs[0] {
			vec[i] = x
		}
		req["vector"] = vec
	}
	if mode != "vector" {
		req["text"] = queryText
	}
	owners := make([]docOwner, 0, len(users)+1)
	for _, u := range users {
		owners = append(owners, docOwner{Role: "user", ID: u.(map[string]any)["id"].(string)})
	}
	owners = append(owners, docOwner{Role: "agent", ID: agent["id"].(string)})
	res, err := e.searchOwnedDocs(ctx, owners, req)
	if err != nil {
		return nil, err
	}
	docs, _ := res["docs"].([]any)
	return docs, nil
}

func lastRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[len(r)-n:])
	}
	return s
}

func firstRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}

// modelRequest is the chat turn as the engine's model client takes it.
func (t *chatTurn) modelRequest() llm.Request {
	req := llm.Request{}
	if m, ok := t.settings["model"].(string); ok {
		req.Model = m
	}
	if f, ok := toFloat(t.settings["temperature"]); ok {
		req.Temperature = &f
	}
	if f, ok := toFloat(t.settings["max_tokens"]); ok && f > 0 {
		req.MaxTokens = int(f)
	}
	if rf, ok := t.settings["response_format"].(map[string]any); ok {
		typ, _ := rf["type"].(string)
		f := &llm.ResponseFormat{Type: typ}
		if js, ok := rf["json_schema"].(map[string]any); ok {
			f.Name, _ = js["name"].(string)
			f.Schema, _ = js["schema"].(map[string]any)
			f.Strict, _ = js["strict"].(bool)
		}
		if typ == "json_object" || typ == "json_schema" {
			req.ResponseFormat = f
		}
	}
	for _, m := range t.messages {
		role, _ := m["role"].(string)
		req.Messages = append(req.Messages, llm.Message{Role: role, Content: contentText(m["content"])})
	}
	return req
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// hasTemplateTags says whether s has anything Jinja would change; a string
// without renders as itself.
func hasTemplateTags(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}
