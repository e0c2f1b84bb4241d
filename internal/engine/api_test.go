package engine_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/llm"
)

func TestAuthAndErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if s, v := e.do("GET", "/users", nil, "X-Auth-Key", ""); s != 403 || jsonString(v) != `{"error":{"code":"http_403","message":"Invalid API key","type":"http_error"}}` {
		t.Fatalf("no key: %d %v", s, v)
	}
	if s, _ := e.do("GET", "/users", nil, "X-Auth-Key", "", "Authorization", "Bearer "+testKey); s != 200 {
		t.Fatalf("bearer: %d", s)
	}
	if s, _ := e.do("GET", "/users", nil, "X-Auth-Key", "wrong"); s != 403 {
		t.Fatalf("wrong key: %d", s)
	}
	if s, v := e.do("GET", "/users/0b0e8a52-6c0e-4d3a-9a57-2a1f1d1f0001", nil); s != 404 || !strings.Contains(jsonString(v), "http_404") {
		t.Fatalf("unknown user: %d %v", s, v)
	}
	if s, v := e.do("GET", "/executions/not-a-uuid", nil); s != 422 || !strings.Contains(jsonString(v), "validation_error") {
		t.Fatalf("bad id: %d %v", s, v)
	}
	if s, v := e.do("POST", "/agents", map[string]any{"about": "no name"}); s != 422 || !strings.Contains(jsonString(v), "name") {
		t.Fatalf("agent without name: %d %v", s, v)
	}
	if s, _ := e.do("GET", "/users?limit=0", nil); s != 422 {
		t.Fatalf("limit 0: %d", s)
	}
}

// Doc routes and doc tools answer 404 for a user that does not exist, also
// once other users' existence is remembered.
func TestDocsOfUnknownUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const known, unknown = "6f1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0abd", "6f1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0abe"
	e.must(201, "POST", "/users/"+known, map[string]any{"name": "Known"})
	for range 2 {
		e.must(200, "GET", "/users/"+known+"/docs", nil)
		if s, v := e.do("GET", "/users/"+unknown+"/docs", nil); s != 404 || !strings.Contains(jsonString(v), unknown) {
			t.Fatalf("list docs of an unknown user: %d %v", s, v)
		}
		if s, _ := e.do("POST", "/users/"+unknown+"/docs", map[string]any{"title": "t", "content": "c"}); s != 404 {
			t.Fatalf("create a doc for an unknown user: %d", s)
		}
	}
	task := e.task(e.agent(nil), map[string]any{"name": "docs",
		"tools": []any{map[string]any{"name": "ls", "type": "system", "system": map[string]any{"resource": "user", "subresource": "doc", "operation": "list"}}},
		"main":  []any{map[string]any{"tool": "ls", "arguments": map[string]any{"user_id": "$ _.who"}}}})
	if x := e.run(task, map[string]any{"who": unknown}); x["status"] != "failed" || !strings.Contains(jsonString(x["error"]), unknown) {
		t.Fatalf("doc tool on an unknown user: %v %v", x["status"], x["error"])
	}
}

func TestUsersDocsAndSearch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	const uid = "6f1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0abc"
	meta := julep.Metadata{"ppid": "p-1", "tier": 2}
	u, err := e.client.CreateOrUpdateUser(ctx, uid, julep.UserInput{Name: "Ada", Metadata: meta})
	if err != nil || u.Id != uid {
		t.Fatalf("user %v %v", u, err)
	}
	e.must(201, "POST", "/users", map[string]any{"name": "Other", "metadata": map[string]any{"ppid": "p-2"}})
	users, err := e.client.ListUsers(ctx, map[string]string{"ppid": "p-1"})
	if err != nil || len(users) != 1 || users[0].Id != uid {
		t.Fatalf("filtered users %v %v", users, err)
	}
	if l := e.must(200, "GET", "/users?metadata_filter.tier=2", nil)["items"].([]any); len(l) != 1 {
		t.Fatalf("number metadata compared as text: %v", l)
	}
	if s, _ := e.do("POST", "/users/"+uid, map[string]any{"name": "Ada L"}); s != 201 {
		t.Fatalf("create-or-update: %d", s)
	}
	if l := e.must(200, "GET", "/users?metadata_filter.tier=2", nil)["items"].([]any); len(l) != 0 {
		// create-or-update replaced the metadata
		t.Fatalf("stale metadata filter matched %v", l)
	}

	docs := []map[string]any{
		{"title": "Favourite food", "content": "Ada loves spicy ramen and dumplings.", "metadata": map[string]any{"scope": "frontline", "type": "preferences"}},
		{"title": "Work", "content": []any{"Ada is a mathematician.", "She writes programs for the analytical engine."}, "metadata": map[string]any{"scope": "frontline", "type": "profile"}},
		{"title": "Old", "content": "Nothing about food here.", "metadata": map[string]any{"scope": "archive"}},
	}
	var ids []string
	for _, d := range docs {
		ids = append(ids, e.must(201, "POST", "/users/"+uid+"/docs", d)["id"].(string))
	}
	list, err := e.client.ListUserDocs(ctx, uid, map[string]string{"scope": "frontline"})
	if err != nil || len(list) != 2 {
		t.Fatalf("frontline docs %d %v", len(list), err)
	}
	res, err := e.client.SearchUserDocs(ctx, uid, julep.DocSearchRequest{Text: "analytical engine programs", Limit: 5})
	if err != nil || len(res.Docs) == 0 || res.Docs[0].Id != ids[1] || res.Docs[0].Snippet.Index != 1 {
		t.Fatalf("search %+v %v", res, err)
	}
	s, v := e.do("POST", "/users/"+uid+"/search", map[string]any{"text": "food", "metadata_filter": map[string]any{"scope": "frontline"}})
	hits := v.(map[string]any)["docs"].([]any)
	if s != 200 || len(hits) != 1 || hits[0].(map[string]any)["id"] != ids[0] {
		t.Fatalf("filtered search %d %v", s, v)
	}
	if s, _ := e.do("DELETE", "/users/"+uid+"/docs/"+ids[0], nil); s != 202 {
		t.Fatalf("delete %d", s)
	}
	if s, _ := e.do("DELETE", "/users/"+uid+"/docs/"+ids[0], nil); s != 404 {
		t.Fatalf("delete again %d", s)
	}
	page := e.must(200, "GET", "/users/"+uid+"/docs?limit=1&direction=asc", nil)["items"].([]any)
	if len(page) != 1 || page[0].(map[string]any)["id"] != ids[1] {
		t.Fatalf("page %v", page)
	}
}

func TestTaskVersionsArePinned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := e.agent(nil)
	const tid = "0d3c9b1e-2f4a-4b6c-8d0e-1f2a3b4c5d6e"
	v1 := map[string]any{"name": "v", "main": []any{
		map[string]any{"wait_for_input": map[string]any{"info": map[string]any{"q": "go?"}}},
		map[string]any{"return": map[string]any{"version": "$ 1"}}}}
	e.must(201, "POST", "/agents/"+agent+"/tasks/"+tid, v1)
	first := e.start(tid, map[string]any{})
	e.wait(first, "awaiting_input")
	yaml := "name: v\nmain:\n  - return:\n      version: $ 2\n"
	if s, v := e.do("POST", "/agents/"+agent+"/tasks/"+tid, yaml); s != 201 {
		t.Fatalf("yaml update %d %v", s, v)
	}
	if got := e.must(200, "GET", "/tasks/"+tid, nil)["main"]; !strings.Contains(jsonString(got), "$ 2") {
		t.Fatalf("latest task %v", got)
	}
	if out := succeeded(t, e.run(tid, map[string]any{})); out["version"] != float64(2) {
		t.Fatalf("new execution %v", out)
	}
	if err := e.client.ResumeExecution(t.Context(), first, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if out := succeeded(t, e.wait(first)); out["version"] != float64(1) {
		t.Fatalf("pinned execution %v", out)
	}
	tasks := e.must(200, "GET", "/agents/"+agent+"/tasks", nil)["items"].([]any)
	if len(tasks) != 1 {
		t.Fatalf("tasks %v", tasks)
	}
	// Executions list per task with their metadata (filters ignored, as Julep).
	e.must(201, "POST", "/tasks/"+tid+"/executions", map[string]any{"input": map[string]any{}, "metadata": map[string]any{"outbox_id": "o-1"}})
	xs, err := e.client.ListAllTaskExecutions(t.Context(), tid)
	if err != nil || len(xs) != 3 {
		t.Fatalf("executions %d %v", len(xs), err)
	}
	found := false
	for _, x := range xs {
		if x.Metadata["outbox_id"] == "o-1" {
			found = true
		}
	}
	if !found {
		t.Fatal("execution metadata not listed")
	}
}

// TestResponderTask runs the project's own responder task over the wire.
func TestResponderTask(t *testing.T) {
	t.Parallel()
	def, err := os.ReadFile(filepath.Join("..", "..", "tasks", "responder.yaml"))
	if err != nil {
		t.Skipf("tasks/responder.yaml: %v", err)
	}
	e := newEnv(t)
	ctx := t.Context()
	agent := e.agent(map[string]any{"name": "Mira", "about": "a warm companion", "instructions": []any{"Be kind.", "Be brief."}})
	task, err := e.client.CreateTask(ctx, agent, julep.YAML(def))
	if err != nil {
		t.Fatal(err)
	}
	const uid = "7a1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0abc"
	if _, err := e.client.CreateOrUpdateUser(ctx, uid, julep.UserInput{Name: "Ada"}); err != nil {
		t.Fatal(err)
	}
	e.must(201, "POST", "/users/"+uid+"/docs", map[string]any{"title": "Likes", "content": "ramen",
		"metadata": map[string]any{"scope": "frontline", "type": "preferences"}})
	x := e.run(task.Id, map[string]any{"user_id": uid, "message": "What do I like?", "outbox_id": "ob-1",
		"history": []any{map[string]any{"role": "user", "content": "hi"}}})
	out := succeeded(t, x)
	if !strings.Contains(out["reply"].(string), "What do I like?") || out["summary"] == "" {
		t.Fatalf("output %v", out)
	}
	notes, err := e.client.ListUserDocs(ctx, uid, map[string]string{"type": "notes"})
	if err != nil || len(notes) != 1 || notes[0].Title != "Chat note ob-1" {
		t.Fatalf("notes %v %v", notes, err)
	}
}

// TestPromptRequest checks the exact request a prompt step sends.
func TestPromptRequest(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		reqs []map[string]any
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		reqs = append(reqs, m)
		mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		writeCompletion(w, r, `{"ok": true}`)
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, withModel(llm.NewOpenAI(srv.URL, "k", "default-model", nil)))
	agent := e.agent(map[string]any{"name": "Mira", "about": "a companion", "model": "agent-model", "instructions": "Be brief."})
	task := e.task(agent, map[string]any{"name": "p", "main": []any{
		map[string]any{"prompt": []any{
			map[string]any{"role": "system", "content": "You answer in JSON."},
			map[string]any{"role": "user", "content": "Topic: {_.topic}"},
		}, "settings": map[string]any{"model": "step-model", "temperature": 0.2, "max_tokens": 50,
			"response_format": map[string]any{"type": "json_object"}}},
		map[string]any{"prompt": "$ 'plain ' + steps[0].input.topic", "unwrap": true},
	}})
	x := e.run(task, map[string]any{"topic": "tea"})
	if x["status"] != "succeeded" || x["output"] != `{"ok": true}` {
		t.Fatalf("execution %v", x)
	}
	first := e.transitions(x["id"].(string))[1]["output"].(map[string]any)
	if got := first["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"]; got != `{"ok": true}` {
		t.Fatalf("completion output %v", first)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	sys := "You are Mira. About you: a companion.\n\nInstructions:\nBe brief."
	want := `{"max_tokens":50,"messages":[{"content":` + jsonString(sys) + `,"role":"system"},{"content":"You answer in JSON.","role":"system"},{"content":"Topic: tea","role":"user"}],"model":"step-model","response_format":{"type":"json_object"},"stream":true,"temperature":0.2}`
	if got := jsonString(reqs[0]); got != want {
		t.Fatalf("request\n got %s\nwant %s", got, want)
	}
	if reqs[1]["model"] != "agent-model" || jsonString(reqs[1]["messages"]) != `[{"content":`+jsonString(sys)+`,"role":"system"},{"content":"plain tea","role":"user"}]` {
		t.Fatalf("second request %v", reqs[1])
	}
}

func TestAPICallTool(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Seen-Auth", r.Header.Get("Authorization"))
		b, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "q": r.URL.Query().Get("q"), "body": string(b)})
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, withSecrets(map[string]string{"TOKEN": "tok-123456"}))
	task := e.task(e.agent(nil), map[string]any{"name": "api",
		"tools": []any{map[string]any{"name": "echo", "type": "api_call", "api_call": map[string]any{
			"method": "POST", "url": srv.URL + "/x", "headers": map[string]any{"Authorization": "$ 'Bearer ' + secrets.TOKEN"}}}},
		"main": []any{
			map[string]any{"tool": "echo", "arguments": map[string]any{"params": map[string]any{"q": "$ _.q"}, "json": map[string]any{"n": "$ 1"}}},
			map[string]any{"return": map[string]any{"status": "$ _.status_code", "json": "$ _.json", "auth": "$ _.headers['x-seen-auth']"}},
		}})
	out := succeeded(t, e.run(task, map[string]any{"q": "hi"}))
	if out["status"] != float64(200) || jsonString(out["json"]) != `{"body":"{\"n\":1}","method":"POST","q":"hi"}` {
		t.Fatalf("output %v", out)
	}
	if out["auth"] != "Bearer [redacted]" { // the output is stored, so the secret is redacted
		t.Fatalf("auth %v", out["auth"])
	}
}

// A binary body (speech audio) comes back base64-encoded, byte for byte.
func TestAPICallBinaryResponse(t *testing.T) {
	t.Parallel()
	audio := []byte{0xff, 0xfb, 0x90, 0x00, 0x80, 0xfe, 0x01}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Write(audio)
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t)
	task := e.task(e.agent(nil), map[string]any{"name": "bin",
		"tools": []any{map[string]any{"name": "speak", "type": "api_call", "api_call": map[string]any{"method": "POST", "url": srv.URL}}},
		"main": []any{
			map[string]any{"tool": "speak", "arguments": map[string]any{"json": map[string]any{"input": "hi"}}},
			map[string]any{"return": map[string]any{"encoding": "$ _.encoding", "b64": "$ _.content", "type": "$ _.headers['content-type']"}},
		}})
	out := succeeded(t, e.run(task, map[string]any{}))
	got, err := base64.StdEncoding.DecodeString(fmt.Sprint(out["b64"]))
	if err != nil || !bytes.Equal(got, audio) || out["encoding"] != "base64" || out["type"] != "audio/mpeg" {
		t.Fatalf("output %v (decoded %x, %v)", out, got, err)
	}
}

func TestDeltaStream(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	e := newEnv(t, withModel(gatedModel{release: release}))
	task := e.task(e.agent(nil), map[string]any{"name": "d", "main": []any{
		map[string]any{"prompt": "one two three", "unwrap": true}}})
	id := e.start(task, map[string]any{})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.base+"/executions/"+id+"/deltas.stream", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	close(release) // the stream is open: now let the prompt run
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	events := 0
	for _, block := range strings.Split(string(body), "\n\n") {
		if strings.HasPrefix(block, "event: delta\ndata: ") {
			var d julep.Delta
			if err := json.Unmarshal([]byte(strings.TrimPrefix(block, "event: delta\ndata: ")), &d); err != nil || d.Index != events {
				t.Fatalf("delta %q: %v", block, err)
			}
			text.WriteString(d.Delta)
			events++
		}
	}
	if !strings.Contains(text.String(), "one two three") || !strings.Contains(string(body), "event: done") {
		t.Fatalf("stream %q", body)
	}
	succeeded(t, e.wait(id))
	// A late joiner of a finished execution gets an empty, closed stream.
	if err := e.client.StreamDeltas(t.Context(), id, func(julep.Delta) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// gatedModel is the offline model, held until release is closed so a
// stream can join while the prompt step runs.
type gatedModel struct{ release chan struct{} }

func (g gatedModel) Chat(ctx context.Context, req llm.Request, onDelta func(string)) (*llm.Response, error) {
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return llm.Offline().Chat(ctx, req, onDelta)
}
