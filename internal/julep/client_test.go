package julep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

func TestNewRejectsBadSettings(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"", "localhost:8080", "ftp://x", "http://", "://x"} {
		if _, err := New(base, "k"); err == nil {
			t.Errorf("New(%q) accepted a bad base URL", base)
		}
	}
	if _, err := New("http://localhost:8080", "k", WithAuthHeader("X Auth: Key")); err == nil {
		t.Error("an invalid header name was accepted")
	}
}

func TestAuthHeaders(t *testing.T) {
	t.Parallel()
	t.Run("bearer by default", func(t *testing.T) {
		t.Parallel()
		s := newScripted(t, exchange{method: "GET", path: "/users/" + userID, status: 200, reply: userReply})
		c, _ := s.client()
		if _, err := c.GetUser(context.Background(), userID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("raw key in a named header", func(t *testing.T) {
		t.Parallel()
		s := newScripted(t, exchange{method: "GET", path: "/users/" + userID, status: 200, reply: userReply})
		s.auth = func(h http.Header) bool { return h.Get("X-Auth-Key") == testKey && h.Get("Authorization") == "" }
		c, _ := s.client(WithAuthHeader("X-Auth-Key"))
		if _, err := c.GetUser(context.Background(), userID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong key: 403 with the server's message and no key in the error", func(t *testing.T) {
		t.Parallel()
		s := newScripted(t, exchange{method: "GET", path: "/users/" + userID, status: 403,
			reply: `{"error":{"message":"Invalid API key","code":"http_403","type":"http_error"}}`})
		c, waits := s.client()
		_, err := c.GetUser(context.Background(), userID)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 403 || ae.Message != "Invalid API key" || ae.Code != "http_403" || ae.Type != "http_error" {
			t.Fatalf("err = %#v", err)
		}
		if IsTransient(err) || len(*waits) != 0 {
			t.Errorf("403 was treated as transient (waits %v)", *waits)
		}
		if strings.Contains(err.Error(), testKey) {
			t.Errorf("error leaks the key: %v", err)
		}
		mustContain(t, err.Error(), "get user "+userID)
	})
}

func TestBaseURLWithPathPrefix(t *testing.T) {
	t.Parallel()
	s := newScripted(t, exchange{method: "GET", path: "/api/users/" + userID, status: 200, reply: userReply})
	c, err := New(s.srv.URL+"/api", testKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetUser(context.Background(), userID); err != nil {
		t.Fatal(err)
	}
}

func TestCreateOrUpdateUser(t *testing.T) {
	t.Parallel()
	s := newScripted(t, exchange{
		method: "POST", path: "/users/" + userID, contentType: "application/json",
		body:   `{"name":"Ada","about":"Astra user","metadata":{"auth_user_id":"665f1c2e9b1e8a0012345678"}}`,
		status: 201, reply: userReply,
	})
	c, _ := s.client()
	u, err := c.CreateOrUpdateUser(context.Background(), userID, UserInput{
		Name: "Ada", About: "Astra user", Metadata: Metadata{"auth_user_id": "665f1c2e9b1e8a0012345678"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.Id != userID || u.Name != "Ada" || u.Metadata["auth_user_id"] != "665f1c2e9b1e8a0012345678" || u.CreatedAt.IsZero() {
		t.Errorf("user = %+v", u)
	}
}

func TestEmptyIDIsInvalidAndSendsNothing(t *testing.T) {
	t.Parallel()
	s := newScripted(t)
	c, _ := s.client()
	_, err := c.GetUser(context.Background(), "")
	if responder.ErrorCode(err) != responder.EINVALID {
		t.Fatalf("err = %v, want EINVALID", err)
	}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	s := newScripted(t,
		exchange{method: "GET", path: "/executions/" + execID, status: 503, header: map[string]string{"Retry-After": "3"},
			reply: `{"error":{"message":"Service unavailable","code":"http_503","type":"http_error"}}`},
		exchange{method: "GET", path: "/executions/" + execID, status: 429,
			reply: `{"error":{"message":"database unreachable","code":"http_429","type":"http_error"}}`},
		exchange{method: "GET", path: "/executions/" + execID, status: 200, reply: execReply},
	)
	c, waits := s.client(WithRetry(RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}))
	e, err := c.GetExecution(context.Background(), execID)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != StatusQueued || e.TaskId != taskID {
		t.Errorf("execution = %+v", e)
	}
	if len(*waits) != 2 {
		t.Fatalf("waits = %v, want 2", *waits)
	}
	if (*waits)[0] < 3*time.Second {
		t.Errorf("first wait %v ignores Retry-After: 3", (*waits)[0])
	}
	if (*waits)[1] > 10*time.Millisecond {
		t.Errorf("second wait %v exceeds MaxDelay", (*waits)[1])
	}
}

func TestRetryAfterBeyondLimitEndsTheCall(t *testing.T) {
	t.Parallel()
	s := newScripted(t, exchange{method: "GET", path: "/tasks/" + taskID, status: 503, header: map[string]string{"Retry-After": "600"},
		reply: `{"error":{"message":"maintenance","code":"http_503","type":"http_error"}}`})
	c, waits := s.client()
	_, err := c.GetTask(context.Background(), taskID)
	var ae *APIError
	if !errors.As(err, &ae) || ae.RetryAfter != 600*time.Second || !IsTransient(err) {
		t.Fatalf("err = %v", err)
	}
	if len(*waits) != 0 {
		t.Errorf("waited %v in-line for a 10-minute Retry-After", *waits)
	}
}

func TestRetriesStopAtMaxAttempts(t *testing.T) {
	t.Parallel()
	fail := exchange{method: "GET", path: "/agents/" + agentID, status: 502, reply: `upstream down`}
	s := newScripted(t, fail, fail, fail)
	c, _ := s.client(WithRetry(RetryPolicy{MaxAttempts: 3}))
	_, err := c.GetAgent(context.Background(), agentID)
	if !IsTransient(err) || StatusCode(err) != 502 {
		t.Fatalf("err = %v", err)
	}
	mustContain(t, err.Error(), "upstream down")
}

func TestNoRetryOnValidationErrors(t *testing.T) {
	t.Parallel()
	t.Run("400 task validation", func(t *testing.T) {
		t.Parallel()
		s := newScripted(t, exchange{method: "POST", path: "/agents/" + agentID + "/tasks/" + taskID, status: 400,
			reply: `{"error":{"message":"Invalid task: main[0].evaluate.x: undefined name 'foo'","code":"http_400","type":"http_error",
				"details":[{"location":"main[0].evaluate.x","message":"undefined name 'foo'","severity":"error","type":"expression"}]}}`})
		c, waits := s.client()
		_, err := c.CreateOrUpdateTask(context.Background(), agentID, taskID, json.RawMessage(`{"name":"t","main":[{"evaluate":{"x":"$ foo"}}]}`))
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 400 || IsTransient(err) || len(*waits) != 0 {
			t.Fatalf("err = %v, waits = %v", err, *waits)
		}
		mustContain(t, ae.Message, "undefined name 'foo'")
		mustContain(t, string(ae.Details), "main[0].evaluate.x")
	})
	t.Run("422 request validation, FastAPI shape", func(t *testing.T) {
		t.Parallel()
		s := newScripted(t, exchange{method: "POST", path: "/tasks/" + taskID + "/executions", status: 422,
			reply: `{"detail":[{"loc":["body","input"],"msg":"Field required","type":"missing"}]}`,
			body:  `{"input":{}}`})
		c, waits := s.client()
		_, err := c.CreateExecution(context.Background(), taskID, nil, nil)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 422 || IsTransient(err) || len(*waits) != 0 {
			t.Fatalf("err = %v", err)
		}
		if ae.Message != "body.input: Field required" || ae.Code != "http_422" {
			t.Errorf("message %q code %q", ae.Message, ae.Code)
		}
	})
}

func TestCreateExecution(t *testing.T) {
	t.Parallel()
	s := newScripted(t, exchange{method: "POST", path: "/tasks/" + taskID + "/executions", contentType: "application/json",
		body:   `{"input":{"prompt":"hi"},"metadata":{"outbox_id":"665f1c2e9b1e8a0012345678"}}`,
		status: 201, reply: execReply})
	c, _ := s.client()
	e, err := c.CreateExecution(context.Background(), taskID, map[string]any{"prompt": "hi"}, map[string]any{"outbox_id": "665f1c2e9b1e8a0012345678"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Id != execID || e.Status != StatusQueued || e.Input["prompt"] != "hi" {
		t.Errorf("execution = %+v", e)
	}
}

func TestCreateExecutionIsNotRepeatedAfterAmbiguousFailures(t *testing.T) {
	t.Parallel()
	for _, ex := range []exchange{
		{method: "POST", path: "/tasks/" + taskID + "/executions", hangup: true},
		{method: "POST", path: "/tasks/" + taskID + "/executions", status: 503, reply: `{"error":{"message":"busy","code":"http_503","type":"http_error"}}`},
		{method: "POST", path: "/tasks/" + taskID + "/executions", status: 409, reply: `{"error":{"message":"conflict","code":"http_409","type":"http_error"}}`},
	} {
		s := newScripted(t, ex) // exactly one request is allowed
		c, waits := s.client()
		_, err := c.CreateExecution(context.Background(), taskID, map[string]any{}, nil)
		if err == nil || !IsTransient(err) {
			t.Errorf("hangup=%v status=%d: err = %v, want a transient error", ex.hangup, ex.status, err)
		}
		if len(*waits) != 0 {
			t.Errorf("hangup=%v status=%d: retried (waits %v)", ex.hangup, ex.status, *waits)
		}
	}
}

func TestCreateExecutionRetriesWhenNothingWasSent(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: every dial is refused, so the request never left.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := New("http://"+addr, testKey, WithRetry(RetryPolicy{MaxAttempts: 3}))
	if err != nil {
		t.Fatal(err)
	}
	var waits int
	c.sleep = func(ctx context.Context, d time.Duration) error { waits++; return nil }
	_, err = c.CreateExecution(context.Background(), taskID, map[string]any{}, nil)
	if !IsTransient(err) || waits != 2 {
		t.Fatalf("err = %v after %d waits, want a transient error after 2", err, waits)
	}
}

func TestCancelAndResumeExecution(t *testing.T) {
	t.Parallel()
	s := newScripted(t,
		exchange{method: "PUT", path: "/executions/" + execID, body: `{"status":"cancelled","reason":"user left"}`, status: 200, reply: `null`},
		exchange{method: "PUT", path: "/executions/" + execID, body: `{"status":"running","input":{"answer":"yes"}}`, status: 200, reply: `null`},
	)
	c, _ := s.client()
	if err := c.CancelExecution(context.Background(), execID, "user left"); err != nil {
		t.Fatal(err)
	}
	if err := c.ResumeExecution(context.Background(), execID, map[string]any{"answer": "yes"}); err != nil {
		t.Fatal(err)
	}
}

func transitionsPage(from, n int) string {
	items := make([]string, n)
	for i := range items {
		k := from + i
		items[i] = fmt.Sprintf(`{"id":"00000000-0000-4000-8000-%012d","execution_id":"%s","type":"step","output":{"n":%d},
			"current":{"workflow":"main","step":%d,"scope_id":"5c0be5c0-0000-4000-8000-000000000000"},"next":null,
			"step_label":null,"metadata":{},"created_at":"2025-03-01T10:00:02Z"}`, k, execID, k, k)
	}
	return `{"items":[` + strings.Join(items, ",") + `]}`
}

func TestListTransitionsPagesUntilShortPage(t *testing.T) {
	t.Parallel()
	q := func(offset string) map[string]string {
		return map[string]string{"limit": "100", "offset": offset, "sort_by": "created_at", "direction": "asc"}
	}
	s := newScripted(t,
		exchange{method: "GET", path: "/executions/" + execID + "/transitions", query: q("0"), status: 200, reply: transitionsPage(0, 100)},
		exchange{method: "GET", path: "/executions/" + execID + "/transitions", query: q("100"), status: 200, reply: transitionsPage(100, 100)},
		exchange{method: "GET", path: "/executions/" + execID + "/transitions", query: q("200"), status: 200, reply: transitionsPage(200, 7)},
	)
	c, _ := s.client()
	trs, err := c.ListTransitions(context.Background(), execID)
	if err != nil {
		t.Fatal(err)
	}
	if len(trs) != 207 {
		t.Fatalf("got %d transitions, want 207", len(trs))
	}
	last := trs[206]
	if last.Current.Step != 206 || last.Next != nil || last.Type != "step" || StatusOfTransition(last.Type) != StatusRunning {
		t.Errorf("last transition = %+v", last)
	}
}

func TestPagingStopsWhenTheServerIgnoresOffset(t *testing.T) {
	t.Parallel()
	page := exchange{method: "GET", path: "/executions/" + execID + "/transitions", status: 200, reply: transitionsPage(0, 100)}
	first, second := page, page
	first.query = map[string]string{"limit": "100", "offset": "0", "sort_by": "created_at", "direction": "asc"}
	second.query = map[string]string{"limit": "100", "offset": "100", "sort_by": "created_at", "direction": "asc"}
	s := newScripted(t, first, second)
	c, _ := s.client()
	trs, err := c.ListTransitions(context.Background(), execID)
	if err != nil || len(trs) != 100 {
		t.Fatalf("got %d transitions, err %v; want the 100 distinct ones", len(trs), err)
	}
}

func docsPage(from, n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"id":"00000000-0000-4000-9000-%012d","title":"summary %d","content":["chunk a","chunk b"],
			"metadata":{"scope":"frontline","type":"summary"},"created_at":"2025-03-01T10:00:00Z","embeddings":null,
			"modality":"text","language":"english","embedding_model":"voyage-3","embedding_dimensions":1024}`, from+i, from+i)
	}
	return `{"items":[` + strings.Join(items, ",") + `]}`
}

func TestListUserDocsSendsMetadataFilterKeys(t *testing.T) {
	t.Parallel()
	q := func(offset string) map[string]string {
		return map[string]string{"limit": "100", "offset": offset, "sort_by": "created_at", "direction": "asc",
			"include_embeddings": "false", "metadata_filter.scope": "frontline", "metadata_filter.type": "summary"}
	}
	s := newScripted(t,
		exchange{method: "GET", path: "/users/" + userID + "/docs", query: q("0"), status: 200, reply: docsPage(0, 100)},
		exchange{method: "GET", path: "/users/" + userID + "/docs", query: q("100"), status: 200, reply: docsPage(100, 0)},
	)
	c, _ := s.client()
	docs, err := c.ListUserDocs(context.Background(), userID, map[string]string{"scope": "frontline", "type": "summary"})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 100 || ContentText(docs[0].Content) != "chunk a\nchunk b" || docs[0].Metadata["scope"] != "frontline" {
		t.Fatalf("got %d docs, first %+v", len(docs), docs[0])
	}
}

func TestCreateSearchAndDeleteUserDocs(t *testing.T) {
	t.Parallel()
	s := newScripted(t,
		exchange{method: "POST", path: "/users/" + userID + "/docs",
			body:   `{"title":"summary","content":"Ada likes tea","metadata":{"scope":"frontline","type":"summary"}}`,
			status: 201, reply: `{"id":"` + docID + `","title":"summary","content":"Ada likes tea","metadata":{"scope":"frontline","type":"summary"},"created_at":"2025-03-01T10:00:00Z","embeddings":null}`},
		// The search object is the body itself, not {"body": {...}}.
		exchange{method: "POST", path: "/users/" + userID + "/search",
			body:   `{"text":"tea","limit":5,"metadata_filter":{"scope":"frontline"}}`,
			status: 200, reply: `{"docs":[{"id":"` + docID + `","title":"summary","owner":{"id":"` + userID + `","role":"user"},
				"snippet":{"index":0,"content":"Ada likes tea"},"distance":0.0,"metadata":{"scope":"frontline"}}],"time":0.0123}`},
		exchange{method: "DELETE", path: "/users/" + userID + "/docs/" + docID, status: 503, reply: `{"error":{"message":"busy","code":"http_503","type":"http_error"}}`},
		// The first delete may have worked before the 503: gone now counts as deleted.
		exchange{method: "DELETE", path: "/users/" + userID + "/docs/" + docID, status: 404, reply: `{"error":{"message":"Doc not found","code":"http_404","type":"http_error"}}`},
	)
	c, _ := s.client()
	ctx := context.Background()
	d, err := c.CreateUserDoc(ctx, userID, DocInput{Title: "summary", Content: TextContent("Ada likes tea"), Metadata: Metadata{"scope": "frontline", "type": "summary"}})
	if err != nil || d.Id != docID || ContentText(d.Content) != "Ada likes tea" {
		t.Fatalf("doc %+v, err %v", d, err)
	}
	res, err := c.SearchUserDocs(ctx, userID, DocSearchRequest{Text: "tea", Limit: 5, MetadataFilter: map[string]any{"scope": "frontline"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Docs) != 1 || res.Docs[0].Snippet.Content != "Ada likes tea" || res.Docs[0].Distance == nil || *res.Docs[0].Distance != 0 || res.Time <= 0 {
		t.Errorf("search = %+v", res)
	}
	if err := c.DeleteUserDoc(ctx, userID, docID); err != nil {
		t.Fatal(err)
	}
}

func TestCreateOrUpdateTaskSendsTheDefinitionUnchanged(t *testing.T) {
	t.Parallel()
	def := `{"name":"responder","main":[{"prompt":"hello {{_.name}}","unwrap":true}],"summarize":[{"return":{"ok":"$ True"}}]}`
	yml := "name: responder\nmain:\n  - prompt: hello\n"
	taskReply := `{"id":"` + taskID + `","name":"responder","description":"","main":[{"prompt":"hello {{_.name}}","unwrap":true}],
		"summarize":[{"return":{"ok":"$ True"}}],"input_schema":null,"tools":[],"inherit_tools":false,"metadata":{},
		"created_at":"2025-03-01T10:00:00Z","updated_at":"2025-03-01T10:00:00Z"}`
	path := "/agents/" + agentID + "/tasks/" + taskID
	s := newScripted(t,
		exchange{method: "POST", path: path, rawBody: def, contentType: "application/json", status: 201, reply: taskReply},
		exchange{method: "POST", path: path, rawBody: yml, contentType: "application/yaml", status: 201, reply: taskReply},
		exchange{method: "POST", path: path, body: `{"name":"n","main":[{"log":"x"}]}`, contentType: "application/json", status: 201, reply: taskReply},
	)
	c, _ := s.client()
	ctx := context.Background()
	task, err := c.CreateOrUpdateTask(ctx, agentID, taskID, json.RawMessage(def))
	if err != nil {
		t.Fatal(err)
	}
	if task.Id != taskID || len(task.Main) != 1 || string(task.AdditionalProperties["summarize"]) != `[{"return":{"ok":"$ True"}}]` {
		t.Errorf("task = %+v", task)
	}
	if _, err := c.CreateOrUpdateTask(ctx, agentID, taskID, YAML(yml)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateOrUpdateTask(ctx, agentID, taskID, map[string]any{"name": "n", "main": []any{map[string]any{"log": "x"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateOrUpdateTask(ctx, agentID, taskID, json.RawMessage(`{"name":`)); responder.ErrorCode(err) != responder.EINVALID {
		t.Errorf("invalid JSON: err = %v", err)
	}
}

func TestAgentsAndSecrets(t *testing.T) {
	t.Parallel()
	agentReply := `{"id":"` + agentID + `","name":"Astra","about":"companion","model":"gpt-4o-mini","instructions":["Be kind."],
		"default_settings":{},"metadata":{},"canonical_name":"astra","project":null,"default_system_template":"...",
		"created_at":"2025-03-01T10:00:00Z","updated_at":"2025-03-01T10:00:00Z"}`
	secretReply := `{"id":"5ec2e700-0000-4000-8000-000000000001","name":"openai","description":"","value":"ENCRYPTED",
		"metadata":{},"created_at":"2025-03-01T10:00:00Z","updated_at":"2025-03-01T10:00:00Z"}`
	s := newScripted(t,
		exchange{method: "POST", path: "/agents/" + agentID, body: `{"name":"Astra","model":"gpt-4o-mini","instructions":["Be kind."]}`, status: 201, reply: agentReply},
		exchange{method: "GET", path: "/agents", query: map[string]string{"limit": "100", "offset": "0", "sort_by": "created_at", "direction": "asc"},
			status: 200, reply: `{"items":[` + agentReply + `]}`},
		exchange{method: "GET", path: "/secrets", query: map[string]string{"limit": "100", "offset": "0"}, status: 200, reply: `[` + secretReply + `]`},
		exchange{method: "POST", path: "/secrets", body: `{"name":"openai","value":"sk-live"}`, status: 200, reply: secretReply},
	)
	c, _ := s.client()
	ctx := context.Background()
	a, err := c.CreateOrUpdateAgent(ctx, agentID, AgentInput{Name: "Astra", Model: "gpt-4o-mini", Instructions: InstructionList("Be kind.")})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := a.Instructions.AsInstructions1(); err != nil || len(list) != 1 || list[0] != "Be kind." {
		t.Errorf("instructions %v, %v", list, err)
	}
	agents, err := c.ListAgents(ctx)
	if err != nil || len(agents) != 1 {
		t.Fatalf("agents %v, err %v", agents, err)
	}
	secrets, err := c.ListSecrets(ctx)
	if err != nil || len(secrets) != 1 || secrets[0].Name != "openai" {
		t.Fatalf("secrets %v, err %v", secrets, err)
	}
	if _, err := c.CreateSecret(ctx, SecretInput{Name: "openai", Value: "sk-live"}); err != nil {
		t.Fatal(err)
	}
}

func TestPerAttemptTimeoutIsTransient(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := New(srv.URL, testKey, WithTimeout(20*time.Millisecond), WithRetry(RetryPolicy{MaxAttempts: 2}))
	if err != nil {
		t.Fatal(err)
	}
	waits := 0
	c.sleep = func(ctx context.Context, d time.Duration) error { waits++; return nil }
	_, err = c.GetUser(context.Background(), userID)
	if !IsTransient(err) || waits != 1 {
		t.Fatalf("err = %v after %d waits", err, waits)
	}
	// The caller's own cancellation is not transient and is not retried.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.GetUser(ctx, userID)
	if IsTransient(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for n := 1; n <= 10; n++ {
		want := min(100*time.Millisecond<<(n-1), time.Second)
		d := p.delay(n, 0)
		if d < want/2 || d > want {
			t.Errorf("attempt %d: delay %v outside [%v, %v]", n, d, want/2, want)
		}
	}
	if d := p.delay(1, 7*time.Second); d != 7*time.Second {
		t.Errorf("Retry-After 7s gave %v", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "5": 5 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
