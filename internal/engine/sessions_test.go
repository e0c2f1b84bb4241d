package engine_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/llm"
)

// The system message is Julep's default system template rendered over the
// agent, user, situation and recalled docs. Expected text: Julep's template
// (agents_api/autogen/Agents.py at 5371a620) rendered by Jinja2 3.1.6 with
// trim_blocks and lstrip_blocks, as Julep's template.py configures it.
func TestChatRendersJulepSystemTemplate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := e.agent(map[string]any{"name": "Ada", "about": "", "instructions": "one rule"})
	s := e.must(201, "POST", "/sessions", map[string]any{"agent": agent, "recall_options": nil})
	r := e.must(200, "POST", "/sessions/"+s["id"].(string)+"/render", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi {{agent.name}}"}}})
	msgs := r["messages"].([]any)
	if got := msgs[0].(map[string]any)["content"]; got != "You are Ada. \n\n\nInstructions:\none rule\n\n" {
		t.Fatalf("system message %q", got)
	}
	if got := msgs[1].(map[string]any)["content"]; got != "hi Ada" { // render_templates defaults to true
		t.Fatalf("user message %q", got)
	}
	for body, want := range map[string]string{
		`{"messages":[]}`: "messages",
		`{"messages":[{"role":"wizard","content":"x"}]}`:              "messages.0.role",
		`{"messages":[{"role":"user","content":5}]}`:                  "messages.0.content",
		`{"messages":[{"role":"user","content":"x"}],"stream":"yes"}`: "stream",
		`{"messages":[{"role":"user","content":"{{ 'a' * 3 }}"}]}`:    "not allowed",
	} {
		var in map[string]any
		_ = json.Unmarshal([]byte(body), &in)
		code := 422
		if want == "not allowed" {
			code = 400
		}
		if st, v := e.do("POST", "/sessions/"+s["id"].(string)+"/chat", in); st != code || !strings.Contains(jsonString(v), want) {
			t.Errorf("%s: %d %v", body, st, v)
		}
	}
}

func TestSessionsChatHistoryAndRecall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := e.agent(map[string]any{"name": "Ada", "instructions": []any{"be kind"}})
	const uid = "6f1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0c01"
	e.must(201, "POST", "/users/"+uid, map[string]any{"name": "Bob", "about": "a tester"})
	e.must(201, "POST", "/users/"+uid+"/docs", map[string]any{"title": "Pets", "content": "Bob has a cat named Tom"})
	e.must(201, "POST", "/agents/"+agent+"/docs", map[string]any{"title": "Weather", "content": "It rains in Oslo"})
	s := e.must(201, "POST", "/sessions", map[string]any{"agent": agent, "user": uid, "situation": "testing",
		"recall_options": map[string]any{"mode": "hybrid", "confidence": -1}})
	sid := s["id"].(string)
	if s["kind"] != "single_agent_single_user" || s["recall_options"].(map[string]any)["alpha"] != 0.5 {
		t.Fatalf("session %v", s)
	}
	c := e.must(200, "POST", "/sessions/"+sid+"/chat", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "what is my cat called?"}}})
	choice := c["choices"].([]any)[0].(map[string]any)
	answer := choice["message"].(map[string]any)["content"].(string)
	if answer == "" || choice["finish_reason"] != "stop" {
		t.Fatalf("chat %v", c)
	}
	docs := c["docs"].([]any)
	if len(docs) == 0 || docs[0].(map[string]any)["title"] != "Pets" {
		t.Fatalf("recalled docs %v", jsonString(docs))
	}
	r := e.must(200, "POST", "/sessions/"+sid+"/render", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "cat?"}}})
	sys := r["messages"].([]any)[0].(map[string]any)["content"].(string)
	for _, want := range []string{"You are Ada.", "their name is Bob", "Situation: testing", "- be kind", "Relevant documents:\nPets\nBob has a cat named Tom\n---"} {
		if !strings.Contains(sys, want) {
			t.Fatalf("system message lacks %q: %q", want, sys)
		}
	}
	if n := len(r["messages"].([]any)); n != 4 { // system, saved user + answer, the new message
		t.Fatalf("render has %d messages: %v", n, jsonString(r["messages"]))
	}
	h := e.must(200, "GET", "/sessions/"+sid+"/history", nil)
	entries := h["entries"].([]any)
	if len(entries) != 2 || entries[0].(map[string]any)["source"] != "api_request" ||
		jsonString(entries[1].(map[string]any)["content"]) != jsonString([]any{map[string]any{"type": "text", "text": answer}}) {
		t.Fatalf("history %v", jsonString(h))
	}
	// save: false keeps the history as it is; streaming saves once done.
	e.must(200, "POST", "/sessions/"+sid+"/chat", map[string]any{"save": false, "messages": []any{map[string]any{"role": "user", "content": "x"}}})
	if n := len(e.must(200, "GET", "/sessions/"+sid+"/history", nil)["entries"].([]any)); n != 2 {
		t.Fatalf("save false wrote history: %d entries", n)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", e.base+"/sessions/"+sid+"/chat", strings.NewReader(`{"stream":true,"messages":[{"role":"user","content":"stream please"}]}`))
	req.Header.Set("X-Auth-Key", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, ct)
	}
	var streamed strings.Builder
	chunks := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ch map[string]any
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		chunks++
		streamed.WriteString(ch["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)["content"].(string))
	}
	if chunks < 2 || streamed.Len() == 0 {
		t.Fatalf("stream: %d chunks %q", chunks, streamed.String())
	}
	var hist []any
	for range 100 { // the save follows the last chunk
		hist = e.must(200, "GET", "/sessions/"+sid+"/history", nil)["entries"].([]any)
		if len(hist) == 4 {
			break
		}
	}
	if len(hist) != 4 || hist[3].(map[string]any)["content"].([]any)[0].(map[string]any)["text"] != streamed.String() {
		t.Fatalf("history after stream: %v", jsonString(hist))
	}
	// reset, patch, delete
	e.must(202, "DELETE", "/sessions/"+sid+"/history", nil)
	if n := len(e.must(200, "GET", "/sessions/"+sid+"/history", nil)["entries"].([]any)); n != 0 {
		t.Fatalf("reset left %d entries", n)
	}
	p := e.must(200, "PATCH", "/sessions/"+sid, map[string]any{"situation": "patched", "metadata": map[string]any{"a": 1}})
	if p["situation"] != "patched" || p["user"] != uid {
		t.Fatalf("patch %v", p)
	}
	e.must(202, "DELETE", "/sessions/"+sid, nil)
	if s, _ := e.do("GET", "/sessions/"+sid, nil); s != 404 {
		t.Fatalf("deleted session: %d", s)
	}
	if s, v := e.do("POST", "/sessions", map[string]any{"user": uid}); s != 422 || !strings.Contains(jsonString(v), "agent") {
		t.Fatalf("session without agent: %d %v", s, v)
	}
	for _, ro := range []map[string]any{{"limit": 2.5}, {"mode": "fuzzy"}, {"confidence": 3}} {
		if s, v := e.do("POST", "/sessions", map[string]any{"agent": agent, "recall_options": ro}); s != 422 || !strings.Contains(jsonString(v), "recall_options") {
			t.Fatalf("recall options %v: %d %v", ro, s, v)
		}
	}
	if s, v := e.do("POST", "/sessions/"+sid+"/chat", map[string]any{"messages": []any{}}); s != 404 {
		t.Fatalf("chat in a deleted session: %d %v", s, v)
	}
}

// truncate drops the oldest history until the turn fits token_budget.
func TestContextOverflowTruncate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := e.agent(map[string]any{"name": "A"})
	sid := e.must(201, "POST", "/sessions", map[string]any{"agent": agent, "recall_options": nil, "system_template": "sys",
		"token_budget": 30, "context_overflow": "truncate"})["id"].(string)
	for range 3 {
		e.must(200, "POST", "/sessions/"+sid+"/chat", map[string]any{"messages": []any{map[string]any{"role": "user", "content": strings.Repeat("word ", 10)}}})
	}
	r := e.must(200, "POST", "/sessions/"+sid+"/render", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "last"}}})
	msgs := r["messages"].([]any)
	if msgs[0].(map[string]any)["content"] != "sys" || msgs[len(msgs)-1].(map[string]any)["content"] != "last" || len(msgs) >= 8 {
		t.Fatalf("truncated turn: %v", jsonString(msgs))
	}
}

func TestAgentToolsUpdatesAndDeletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := e.agent(map[string]any{"name": "A", "about": "x"})
	tool := e.must(201, "POST", "/agents/"+agent+"/tools", map[string]any{"name": "lookup", "type": "function", "function": map[string]any{"parameters": map[string]any{"type": "object"}}})
	tid := tool["id"].(string)
	e.must(201, "POST", "/agents/"+agent+"/tools", map[string]any{"name": "docs", "type": "system", "system": map[string]any{"resource": "agent", "subresource": "doc", "operation": "list"}})
	if s, v := e.do("POST", "/agents/"+agent+"/tools", map[string]any{"name": "bad name", "type": "api_call", "api_call": map[string]any{}}); s != 422 || !strings.Contains(jsonString(v), "name") || !strings.Contains(jsonString(v), "method") {
		t.Fatalf("bad tool: %d %v", s, v)
	}
	if items := e.must(200, "GET", "/agents/"+agent+"/tools", nil)["items"].([]any); len(items) != 2 {
		t.Fatalf("tools %v", items)
	}
	p := e.must(200, "PATCH", "/agents/"+agent+"/tools/"+tid, map[string]any{"description": "finds"})
	if p["description"] != "finds" || p["name"] != "lookup" {
		t.Fatalf("patched tool %v", p)
	}
	e.must(202, "DELETE", "/agents/"+agent+"/tools/"+tid, nil)
	if s, _ := e.do("DELETE", "/agents/"+agent+"/tools/"+tid, nil); s != 404 {
		t.Fatalf("deleted tool again: %d", s)
	}
	a := e.must(200, "PUT", "/agents/"+agent, map[string]any{"name": "B"})
	if a["name"] != "B" || a["about"] != "" {
		t.Fatalf("put agent %v", a)
	}
	a = e.must(200, "PATCH", "/agents/"+agent, map[string]any{"about": "y", "metadata": map[string]any{"k": "v"}})
	if a["name"] != "B" || a["about"] != "y" {
		t.Fatalf("patch agent %v", a)
	}
	const uid = "6f1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0c02"
	e.must(201, "POST", "/users/"+uid, map[string]any{"name": "U", "metadata": map[string]any{"a": 1}})
	u := e.must(200, "PATCH", "/users/"+uid, map[string]any{"metadata": map[string]any{"b": 2}})
	if jsonString(u["metadata"]) != `{"a":1,"b":2}` || u["name"] != "U" {
		t.Fatalf("patch user %v", u)
	}
	e.must(201, "POST", "/users/"+uid+"/docs", map[string]any{"title": "t", "content": "c", "metadata": map[string]any{"x": 1}})
	e.must(201, "POST", "/users/"+uid+"/docs", map[string]any{"title": "t2", "content": "c", "metadata": map[string]any{"x": 2}})
	var del []any
	s, v := e.do("DELETE", "/users/"+uid+"/docs", map[string]any{"metadata_filter": map[string]any{"x": 1}})
	if del, _ = v.([]any); s != 202 || len(del) != 1 {
		t.Fatalf("bulk delete %d %v", s, v)
	}
	e.must(202, "DELETE", "/users/"+uid, nil)
	if s, _ := e.do("GET", "/users/"+uid+"/docs", nil); s != 404 {
		t.Fatalf("docs of a deleted user: %d", s)
	}
	e.must(202, "DELETE", "/agents/"+agent, nil)
	if s, _ := e.do("GET", "/agents/"+agent, nil); s != 404 {
		t.Fatalf("deleted agent: %d", s)
	}
	if h := e.must(200, "GET", "/healthz", nil); h["status"] != "ok" {
		t.Fatalf("healthz %v", h)
	}
	em := e.must(200, "POST", "/embed", map[string]any{"text": []any{"a b", "c"}})
	if vs := em["vectors"].([]any); len(vs) != 2 || len(vs[0].([]any)) != 1024 {
		t.Fatalf("embed %d vectors", len(vs))
	}
}

// Coverage: every operation of the spec is served or answered 501 naming
// it; the list in engine.Operations is checked against the spec file when
// it is present (TestOperationsMatchSpec).
func TestEveryOperationServedOr501(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const id = "6f1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0c03"
	served, notBuilt := 0, 0
	for _, op := range engine.Operations {
		path := op.Path
		for _, p := range []string{"{id}", "{child_id}", "{parent_id}"} {
			path = strings.ReplaceAll(path, p, id)
		}
		var body any
		if op.Method != "GET" {
			body = map[string]any{}
		}
		s, v := e.do(op.Method, path, body)
		msg := jsonString(v)
		switch {
		case op.NotBuilt:
			notBuilt++
			if s != 501 || !strings.Contains(msg, op.ID) {
				t.Errorf("%s %s (%s) is listed as not built: want 501 naming it, got %d %s", op.Method, op.Path, op.ID, s, msg)
			}
		default:
			served++
			if s == 501 || s == 405 || (s == 404 && strings.Contains(msg, `"Not Found"`)) {
				t.Errorf("%s %s (%s) is listed as served but has no route: %d %s", op.Method, op.Path, op.ID, s, msg)
			}
		}
	}
	if served+notBuilt != 78 || served != 57 {
		t.Errorf("%d served + %d not built; the README says 57 of 78", served, notBuilt)
	}
}

// slowModel answers after the server's read timeout has passed.
type slowModel struct{ wait time.Duration }

func (m slowModel) Chat(ctx context.Context, req llm.Request, onDelta func(string)) (*llm.Response, error) {
	select {
	case <-time.After(m.wait):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if onDelta != nil {
		onDelta("late")
	}
	return &llm.Response{Content: "late", FinishReason: "stop"}, nil
}

// A chat whose model answers after the server's ReadTimeout still answers:
// the timeout bounds reading the request, not the model.
func TestChatOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withModel(slowModel{wait: 600 * time.Millisecond}))
	srv := httptest.NewUnstartedServer(e.srv.Config.Handler)
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	agent := e.agent(map[string]any{"name": "A"})
	sid := e.must(201, "POST", "/sessions", map[string]any{"agent": agent, "recall_options": nil})["id"].(string)
	for _, stream := range []bool{false, true} {
		body := strings.NewReader(`{"stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"hi"}]}`)
		req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/julep/sessions/"+sid+"/chat", body)
		req.Header.Set("X-Auth-Key", testKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(raw), `"late"`) {
			t.Fatalf("stream %v: %d %s", stream, resp.StatusCode, raw)
		}
	}
}
