package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/telemetry"
)

// spanRecorder is the process's tracer provider in this package's tests:
// installed once, an in-memory exporter every test filters by trace id.
var spanRecorder = sync.OnceValue(func() *tracetest.InMemoryExporter {
	exp := tracetest.NewInMemoryExporter()
	telemetry.Install(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	return exp
})

// usageModel is an OpenAI-compatible endpoint that reports token usage.
func usageModel(t *testing.T, reply string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		const usage = `"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}`
		if body.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, word := range strings.SplitAfter(reply, " ") {
				fmt.Fprintf(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word)
			}
			fmt.Fprintf(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],%s}\n\ndata: [DONE]\n\n", usage)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(reply)
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],%s}`, b, usage)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// logBuffer collects a server's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the JSON log lines that mention s.
func (l *logBuffer) lines(s string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), s) {
			continue
		}
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// startLogged is startAstra with the server's log lines kept in logs.
func startLogged(t *testing.T, env map[string]string, logs io.Writer) (base string, client *http.Client) {
	t.Helper()
	vars := map[string]string{
		"ASTRA_ADDR": "127.0.0.1:0", "ASTRA_DATA_DIR": t.TempDir(), "ASTRA_TASKS_DIR": "../../tasks",
		"ASTRA_ENGINE_KEY": "engine-key-for-tests", "ASTRA_LOG_LEVEL": "debug",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, pw, logs)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("astra serve did not shut down")
		}
	})
	select {
	case base = <-listenURL(pr):
	case err := <-done:
		t.Fatalf("astra serve exited at start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("astra serve did not start listening")
	}
	jar, _ := cookiejar.New(nil)
	return base, &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// waitReady polls /readyz until it answers want, and returns its body.
func waitReady(t testing.TB, base string, want int) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return body
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %d (last: %v)", want, err)
		}
	}
}

// postTraced posts a message as a caller already inside a trace would:
// with a traceparent header. It returns the outbox id.
func postTraced(t testing.TB, c *http.Client, base, traceparent, requestID string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/responder/messages", strings.NewReader(`{"content":"How is my week?"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	req.Header.Set("traceparent", traceparent)
	req.Header.Set("X-Request-Id", requestID)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusAccepted || out.ID == "" {
		t.Fatalf("POST: %d %+v", resp.StatusCode, out)
	}
	if got := resp.Header.Get("X-Request-Id"); got != requestID {
		t.Errorf("X-Request-Id echoed as %q, want %q", got, requestID)
	}
	return out.ID
}

// waitStatus polls the user's messages until id has status want.
func waitStatus(t testing.TB, c *http.Client, base, id, want string) responder.Message {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var out struct {
			Messages []responder.Message `json:"messages"`
		}
		call(t, c, "GET", base+"/api/responder/messages", nil, &out)
		for _, m := range out.Messages {
			if m.ID == id && string(m.Status) == want {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s never became %s: %+v", id, want, out.Messages)
		}
	}
}

// span is a recorded span, flattened for checking a tree.
type span struct {
	Name, ID, Parent string
	Attrs            map[string]any
}

// tree indexes one trace's spans by name (several of a name: all of them).
type tree struct {
	t      testing.TB
	byName map[string][]span
	byID   map[string]span
}

func newTree(t testing.TB, spans []span) *tree {
	tr := &tree{t: t, byName: map[string][]span{}, byID: map[string]span{}}
	for _, s := range spans {
		tr.byName[s.Name] = append(tr.byName[s.Name], s)
		tr.byID[s.ID] = s
	}
	return tr
}

// one returns the span named name, failing unless there is exactly one.
func (tr *tree) one(name string) span {
	tr.t.Helper()
	ss := tr.byName[name]
	if len(ss) != 1 {
		tr.t.Fatalf("%d spans named %q in the trace, want 1; the trace has %v", len(ss), name, tr.names())
	}
	return ss[0]
}

func (tr *tree) names() []string {
	var n []string
	for k, v := range tr.byName {
		n = append(n, fmt.Sprintf("%s×%d", k, len(v)))
	}
	return n
}

// childOf checks that child's parent is parent.
func (tr *tree) childOf(child, parent span) {
	tr.t.Helper()
	if child.Parent != parent.ID {
		tr.t.Errorf("span %q has parent %q (%s), want %q", child.Name, child.Parent, tr.byID[child.Parent].Name, parent.Name)
	}
}

// under checks that s descends from anc.
func (tr *tree) under(s, anc span) {
	tr.t.Helper()
	for p := s.Parent; p != ""; p = tr.byID[p].Parent {
		if p == anc.ID {
			return
		}
		if _, ok := tr.byID[p]; !ok {
			break
		}
	}
	tr.t.Errorf("span %q does not descend from %q", s.Name, anc.Name)
}

// checkMessageTrace asserts the span tree of one message, whichever
// processes recorded it: the POST continues the caller's span, the
// dispatcher's row continues the POST, the engine's run continues the
// create request, and the steps, model calls and tools sit under the run.
func checkMessageTrace(t testing.TB, spans []span, callerSpan string) {
	t.Helper()
	tr := newTree(t, spans)
	post := tr.one("POST /api/responder/messages")
	if post.Parent != callerSpan {
		t.Errorf("POST span's parent is %q, want the caller's %q (incoming traceparent)", post.Parent, callerSpan)
	}
	row := tr.one("dispatch row")
	tr.childOf(row, post)
	for _, name := range []string{"outbox claim", "julep user ensure", "julep execution create", "julep execution follow", "outbox deliver"} {
		tr.childOf(tr.one(name), row)
	}
	var answer bool
	for _, s := range tr.byName["event append"] {
		tr.childOf(s, row)
		answer = true
	}
	if !answer {
		t.Errorf("no event append span: %v", tr.names())
	}
	create := tr.one("julep execution create")
	server := tr.one("POST /julep/tasks/{task_id}/executions")
	tr.childOf(server, create)
	run := tr.one("execution run")
	tr.childOf(run, server)
	steps := 0
	for name, ss := range tr.byName {
		if !strings.HasPrefix(name, "step ") {
			continue
		}
		for _, s := range ss {
			steps++
			tr.under(s, run)
			if s.Attrs["julep.step.type"] == nil || s.Attrs["julep.step.path"] == nil {
				t.Errorf("step span %q lacks its type or path: %v", s.Name, s.Attrs)
			}
		}
	}
	if steps < 5 {
		t.Errorf("%d step spans, want one per step of the responder task: %v", steps, tr.names())
	}
	var chats []span
	for name, ss := range tr.byName {
		if strings.HasPrefix(name, "chat ") {
			chats = append(chats, ss...)
		}
	}
	if len(chats) < 2 {
		t.Fatalf("%d model spans, want the reply and the summary: %v", len(chats), tr.names())
	}
	firstToken := false
	for _, c := range chats {
		tr.under(c, run)
		if model, _ := c.Attrs["gen_ai.request.model"].(string); c.Name != "chat "+model || model == "" || c.Attrs["gen_ai.operation.name"] != "chat" {
			t.Errorf("model span %q has attributes %v, want gen_ai.request.model naming it and gen_ai.operation.name chat", c.Name, c.Attrs)
		}
		if in, _ := c.Attrs["gen_ai.usage.input_tokens"].(int64); in != 11 {
			t.Errorf("model span gen_ai.usage.input_tokens = %v, want 11", c.Attrs["gen_ai.usage.input_tokens"])
		}
		if out, _ := c.Attrs["gen_ai.usage.output_tokens"].(int64); out != 7 {
			t.Errorf("model span gen_ai.usage.output_tokens = %v, want 7", c.Attrs["gen_ai.usage.output_tokens"])
		}
		if _, ok := c.Attrs["gen_ai.response.time_to_first_chunk"]; ok {
			firstToken = true
		}
	}
	if !firstToken {
		t.Error("no model span records the time to first token of the streamed reply")
	}
	tools := 0
	for name, ss := range tr.byName {
		if strings.HasPrefix(name, "execute_tool ") {
			for _, s := range ss {
				tools++
				tr.under(s, run)
			}
		}
	}
	if tools == 0 {
		t.Errorf("no tool call spans: %v", tr.names())
	}
}

func recorded(traceID string) []span {
	var out []span
	for _, s := range spanRecorder().GetSpans() {
		if s.SpanContext.TraceID().String() != traceID {
			continue
		}
		sp := span{Name: s.Name, ID: s.SpanContext.SpanID().String(), Attrs: map[string]any{}}
		if s.Parent.IsValid() {
			sp.Parent = s.Parent.SpanID().String()
		}
		for _, a := range s.Attributes {
			sp.Attrs[string(a.Key)] = a.Value.AsInterface()
		}
		out = append(out, sp)
	}
	return out
}

// TestOneTracePerMessage follows one message through one process: its
// trace (the caller's, by traceparent) and its log lines, which carry the
// trace id, the outbox id, the execution id once there is one, and the
// user's opaque id, never the email.
func TestOneTracePerMessage(t *testing.T) {
	t.Parallel()
	spanRecorder()
	const email = "trace-me@example.com"
	logs := &logBuffer{}
	model := usageModel(t, "Your week looks calm.")
	base, c := startLogged(t, map[string]string{"ASTRA_LLM_BASE_URL": model.URL + "/v1", "ASTRA_LLM_MODEL": "test-model"}, logs)
	waitReady(t, base, http.StatusOK)
	var login struct {
		User responder.User `json:"user"`
	}
	if code := call(t, c, "POST", base+"/api/auth/dev-login", map[string]string{"email": email, "name": "T"}, &login); code != 200 {
		t.Fatalf("dev login: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/responder/socket", &websocket.DialOptions{
		HTTPClient: c, HTTPHeader: http.Header{"Origin": {base}}})
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	defer conn.CloseNow()
	var init wsFrame
	if err := wsjson.Read(ctx, conn, &init); err != nil || init.Type != "messages:init" {
		t.Fatalf("first frame %+v, %v", init, err)
	}
	const traceID, callerSpan = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
	id := postTraced(t, c, base, "00-"+traceID+"-"+callerSpan+"-01", "req-one-trace")
	for {
		var f wsFrame
		if err := wsjson.Read(ctx, conn, &f); err != nil {
			t.Fatalf("socket read: %v", err)
		}
		var e wsEvent
		if f.Type == "messages:append" && json.Unmarshal(f.Data, &e) == nil && e.Role == "assistant" {
			break
		}
	}
	m := waitStatus(t, c, base, id, "delivered")

	// Spans end just after the work they time (the socket's after the
	// frame left): wait for the row's and the socket's.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		tr := newTree(t, recorded(traceID))
		if len(tr.byName["dispatch row"]) > 0 && len(tr.byName["socket write"]) > 0 || time.Now().After(deadline) {
			break
		}
	}
	checkMessageTrace(t, recorded(traceID), callerSpan)
	tr := newTree(t, recorded(traceID))
	var sent bool
	for _, s := range tr.byName["socket write"] {
		// Published in process (under the hub publish), or, should the
		// feed's copy of the event come first, from the event's stored
		// context (under the append): in the message's trace either way.
		if p := tr.byID[s.Parent].Name; p != "hub publish" && p != "event append" {
			t.Errorf("socket write span's parent is %q, want hub publish or event append", p)
		}
		sent = true
	}
	if !sent {
		t.Errorf("no socket write span in the message's trace: %v", tr.names())
	}

	// The log lines of the message path.
	lines := logs.lines(id)
	seen := map[string]bool{}
	for _, l := range lines {
		msg, _ := l["msg"].(string)
		seen[msg] = true
		if l["trace_id"] != traceID {
			t.Errorf("log line %q has trace_id %v, want %s", msg, l["trace_id"], traceID)
		}
		if l["user"] != login.User.ID {
			t.Errorf("log line %q has user %v, want the opaque id %s", msg, l["user"], login.User.ID)
		}
		if msg != "message received" && msg != "row claimed" && l["execution_id"] != m.ExecutionID {
			t.Errorf("log line %q has execution_id %v, want %s", msg, l["execution_id"], m.ExecutionID)
		}
	}
	for _, want := range []string{"message received", "row claimed", "execution created", "engine: step finished", "engine: execution ended", "row delivered", "socket sent"} {
		if !seen[want] {
			t.Errorf("no %q log line with outbox id %s; got %v", want, id, seen)
		}
	}
	if got := logs.lines(email); len(got) > 0 {
		t.Errorf("the user's email is in the logs: %v", got)
	}
	if got := logs.lines(`"req-one-trace"`); len(got) == 0 {
		t.Error("the request id is in no log line")
	}
	for _, l := range logs.lines(`"lease":`) {
		if _, ok := l["lease"].(string); !ok {
			t.Errorf("duration logged as %v, want a string like \"30s\"", l["lease"])
		}
	}
}

// TestMetricsDocumented checks every metric docs/operations.md names
// against what /metrics serves, after one message went through.
func TestMetricsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`(astra_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		named[m[1]] = true
	}
	if len(named) < 15 {
		t.Fatalf("docs/operations.md names %d metrics; the list was not found", len(named))
	}
	base, c := startLogged(t, nil, io.Discard)
	waitReady(t, base, http.StatusOK)
	signIn := call(t, c, "POST", base+"/api/auth/dev-login", map[string]string{"email": "metrics@example.com"}, nil)
	if signIn != http.StatusOK {
		t.Fatalf("dev login: %d", signIn)
	}
	id := postTraced(t, c, base, "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01", "req-metrics")
	waitStatus(t, c, base, id, "delivered")

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	served := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			served[strings.Fields(name)[0]] = true
		}
	}
	for name := range named {
		if !served[name] {
			t.Errorf("docs/operations.md names %s, which /metrics does not serve", name)
		}
	}
	// The route pattern, not the path, labels HTTP metrics.
	if !strings.Contains(string(body), `astra_http_requests_total{method="POST",route="/api/responder/messages",status="202"} 1`) {
		t.Errorf("no HTTP request count for the POST by its route pattern:\n%s", grepLines(string(body), "astra_http_requests_total"))
	}
	if !strings.Contains(string(body), `astra_engine_executions_total{status="succeeded"} 1`) {
		t.Errorf("the succeeded execution is not counted:\n%s", grepLines(string(body), "astra_engine_executions_total"))
	}
}

// TestReadinessNamesTheFailingDependency: /readyz checks what this
// instance needs and says which check failed; /healthz stays 200.
func TestReadinessNamesTheFailingDependency(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"invalid api key"}`)
	}))
	t.Cleanup(refusing.Close)
	for name, tc := range map[string]struct{ url, want string }{
		"closed port": {closed, "unreachable"},
		"key refused": {refusing.URL, "refused the API key (401)"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			base, _ := startLogged(t, map[string]string{"JULEP_BASE_URL": tc.url, "JULEP_API_KEY": "k", "ASTRA_LOG_LEVEL": "warn"}, io.Discard)
			body := waitReady(t, base, http.StatusServiceUnavailable)
			checks := map[string]map[string]any{}
			list, _ := body["checks"].([]any)
			for _, c := range list {
				m, _ := c.(map[string]any)
				name, _ := m["name"].(string)
				checks[name] = m
			}
			if body["ok"] != false || checks["store"]["ok"] != true {
				t.Errorf("/readyz = %v, want not ok with the store ok", body)
			}
			julep := checks["julep"]
			if errText, _ := julep["error"].(string); julep["ok"] != false || !strings.Contains(errText, tc.want) || !strings.Contains(errText, tc.url) {
				t.Errorf("julep check = %v, want it failed naming %s and %q", julep, tc.url, tc.want)
			}
			if _, ok := checks["tasks"]; !ok {
				t.Errorf("no tasks check for a dispatching instance: %v", body)
			}
			resp, err := http.Get(base + "/healthz")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("/healthz = %v, %v; want 200 (liveness only)", resp, err)
			}
			if resp != nil {
				resp.Body.Close()
			}
		})
	}
}

// TestFailedMessageLogsJoinUp: a message whose Julep cannot be reached is
// retried, then failed; those lines carry the message's trace, outbox and
// user ids too.
func TestFailedMessageLogsJoinUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	logs := &logBuffer{}
	base, c := startLogged(t, map[string]string{"JULEP_BASE_URL": closed, "JULEP_API_KEY": "k",
		"ASTRA_DISPATCH_MAX_ATTEMPTS": "2", "ASTRA_LOG_LEVEL": "info"}, logs)
	waitReady(t, base, http.StatusServiceUnavailable)
	var login struct {
		User responder.User `json:"user"`
	}
	if code := call(t, c, "POST", base+"/api/auth/dev-login", map[string]string{"email": "fails@example.com"}, &login); code != http.StatusOK {
		t.Fatalf("dev login: %d", code)
	}
	const traceID = "aaaabbbbccccddddeeeeffff00001111"
	id := postTraced(t, c, base, "00-"+traceID+"-1111222233334444-01", "req-fails")
	waitStatus(t, c, base, id, "error")
	// The row's status is visible a moment before its line is written.
	var seen map[string]int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		seen = map[string]int{}
		lines := logs.lines(id)
		for _, l := range lines {
			msg, _ := l["msg"].(string)
			seen[msg]++
		}
		if seen["row failed"] > 0 || time.Now().After(deadline) {
			for _, l := range lines {
				if l["trace_id"] != traceID || l["user"] != login.User.ID {
					t.Errorf("log line %q: trace_id %v, user %v; want %s, %s", l["msg"], l["trace_id"], l["user"], traceID, login.User.ID)
				}
			}
			break
		}
	}
	if seen["row claimed"] != 2 || seen["released for a later attempt"] != 1 || seen["row failed"] != 1 {
		t.Errorf("log lines of the failing message: %v; want 2 claims, 1 release, 1 failure", seen)
	}
}
