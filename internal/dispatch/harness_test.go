package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/enginetest"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/stream"
	"github.com/astra-app/astra/internal/taskdef"
)

const engineKey = "dispatch-test-engine-key"

// julepEnv is the embedded engine on its own SQLite file, served over HTTP,
// with the repository's responder agent and task pushed to it.
type julepEnv struct {
	eng    *engine.Engine
	srv    *httptest.Server
	URL    string
	Client *julep.Client
	TaskID string
}

// startEngine runs an engine with model m (nil: the offline model).
func startEngine(t testing.TB, m llm.Model) *julepEnv {
	t.Helper()
	srv := enginetest.Start(t, engine.Options{Key: engineKey, Model: m, Concurrency: 64})
	eng := srv.Engine
	je := &julepEnv{eng: eng, srv: srv.Server, URL: srv.URL}
	je.Client = newClient(t, srv.URL)
	je.TaskID = pushResponder(t, je.Client)
	return je
}

// newClient is a Julep client with a connection pool sized for a dispatcher
// that follows many executions at once.
func newClient(t testing.TB, base string) *julep.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	c, err := julep.New(base, engineKey, julep.WithHTTPClient(&http.Client{Transport: tr}),
		julep.WithTimeout(10*time.Second),
		julep.WithRetry(julep.RetryPolicy{MaxAttempts: 4, BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pushResponder creates the repository's agent and responder task, as
// `astra tasks push` does, and returns the task id.
func pushResponder(t testing.TB, c *julep.Client) string {
	t.Helper()
	p, issues := taskdef.LoadProject(filepath.Join("..", "..", "tasks"))
	if p == nil || taskdef.HasErrors(issues) {
		t.Fatalf("load tasks/: %v", issues)
	}
	ctx := context.Background()
	var agentIDs []string
	for _, a := range p.Agents {
		b, _ := json.Marshal(a.Definition())
		var in julep.AgentInput
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatal(err)
		}
		id := taskdef.NewID()
		if _, err := c.CreateOrUpdateAgent(ctx, id, in); err != nil {
			t.Fatalf("push agent: %v", err)
		}
		agentIDs = append(agentIDs, id)
	}
	for _, tk := range p.Tasks {
		if tk.Path != "responder.yaml" {
			continue
		}
		body, err := taskdef.CanonicalJSON(tk.Definition())
		if err != nil {
			t.Fatal(err)
		}
		id := taskdef.NewID()
		if _, err := c.CreateOrUpdateTask(ctx, agentIDs[tk.AgentIndex], id, json.RawMessage(body)); err != nil {
			t.Fatalf("push task: %v", err)
		}
		return id
	}
	t.Fatal("tasks/ has no responder.yaml")
	return ""
}

// executionsOf counts the task's executions per metadata.outbox_id.
func executionsOf(t testing.TB, c *julep.Client, taskID string) map[string][]julep.Execution {
	t.Helper()
	all, err := c.ListAllTaskExecutions(context.Background(), taskID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]julep.Execution{}
	for _, x := range all {
		id, _ := x.Metadata["outbox_id"].(string)
		out[id] = append(out[id], x)
	}
	return out
}

// modelServer is an OpenAI-compatible chat endpoint with scripted answers:
// reply answers the task's reply step, summary its summary step. A reply
// starting with "!status " answers that HTTP status with the rest as message.
type modelServer struct {
	srv     *httptest.Server
	reply   func(user string) string
	summary func(user string) string
	delay   time.Duration
	calls   atomic.Int64
}

func newModelServer(t testing.TB, reply, summary func(string) string) *modelServer {
	t.Helper()
	ms := &modelServer{reply: reply, summary: summary}
	ms.srv = httptest.NewServer(ms)
	t.Cleanup(ms.srv.Close)
	return ms
}

func (ms *modelServer) Model() llm.Model {
	return llm.NewOpenAI(ms.srv.URL+"/v1", "sk-test", "test-model", ms.srv.Client())
}

func (ms *modelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ms.calls.Add(1)
	var body struct {
		Stream   bool `json:"stream"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	if ms.delay > 0 {
		select {
		case <-time.After(ms.delay):
		case <-r.Context().Done():
			return
		}
	}
	system, user := "", ""
	for _, m := range body.Messages {
		switch m.Role {
		case "system":
			system += m.Content + "\n"
		case "user":
			user = m.Content
		}
	}
	var text string
	if strings.Contains(system, "Summarise this chat turn") {
		text = ms.summary(user)
	} else {
		text = ms.reply(user)
	}
	if rest, ok := strings.CutPrefix(text, "!status "); ok {
		code, msg, _ := strings.Cut(rest, " ")
		var status int
		fmt.Sscan(code, &status)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error"}}`, msg)
		return
	}
	if body.Stream {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, piece := range strings.SplitAfter(text, " ") {
			b, _ := json.Marshal(piece)
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%s}}]}\n\n", b)
		}
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
		return
	}
	b, _ := json.Marshal(text)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"c2","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`, b)
}

// fault is what the chaos proxy does to one request.
type fault int

const (
	passThrough    fault = iota
	status500            // answer 500 without forwarding
	status429            // answer 429 without forwarding
	resetBefore          // drop the connection without forwarding
	resetAfter           // forward, then drop the connection instead of answering
	status502After       // forward, then answer 502 instead of the real answer
	notFound             // answer 404 without forwarding (a route the server lacks)
)

// faultProxy is a real reverse proxy in front of the engine that injects
// failures chosen per request by decide.
type faultProxy struct {
	srv    *httptest.Server
	rp     *httputil.ReverseProxy
	decide func(r *http.Request) fault
	mu     sync.Mutex
	counts map[fault]int
}

func newFaultProxy(t testing.TB, target string, decide func(*http.Request) fault) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{decide: decide, counts: map[fault]int{}}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.FlushInterval = -1 // event streams pass through at once
	p.rp.ErrorLog = nil
	p.srv = httptest.NewServer(p)
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

func (p *faultProxy) URL() string { return p.srv.URL }

func (p *faultProxy) count(f fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[f]
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.decide(r)
	p.mu.Lock()
	p.counts[f]++
	p.mu.Unlock()
	switch f {
	case status500:
		http.Error(w, `{"error":{"message":"injected failure","code":"http_500"}}`, http.StatusInternalServerError)
	case status429:
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error":{"message":"slow down","code":"http_429"}}`, http.StatusTooManyRequests)
	case notFound:
		http.Error(w, `{"error":{"message":"Not Found","code":"http_404"}}`, http.StatusNotFound)
	case resetBefore:
		hijackClose(w)
	case resetAfter, status502After:
		rec := httptest.NewRecorder()
		p.rp.ServeHTTP(rec, r)
		if f == resetAfter {
			hijackClose(w)
			return
		}
		http.Error(w, "bad gateway", http.StatusBadGateway)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// hijackClose drops the client's connection with no answer (a reset as the
// client sees it).
func hijackClose(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("proxy: no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// randomFaults fails a fraction of requests with a random fault. Event
// streams fail only at open (before forwarding).
func randomFaults(rate float64) func(*http.Request) fault {
	return func(r *http.Request) fault {
		if rand.Float64() >= rate {
			return passThrough
		}
		if strings.HasSuffix(r.URL.Path, ".stream") {
			return []fault{status500, status429, resetBefore}[rand.IntN(3)]
		}
		return []fault{status500, status429, resetBefore, resetAfter, status502After}[rand.IntN(5)]
	}
}

// isCreateExecution matches POST /tasks/{id}/executions.
func isCreateExecution(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/executions")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newUser creates an auth user.
func newUser(t testing.TB, st responder.Store, name string) *responder.User {
	t.Helper()
	u := &responder.User{Name: name, Email: strings.ToLower(strings.ReplaceAll(name, " ", ".")) + "." + responder.NewID() + "@example.com"}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// enqueue stores a message the way the API does.
func enqueue(t testing.TB, st responder.Store, u *responder.User, content string, meta map[string]any) *responder.Message {
	t.Helper()
	m := &responder.Message{UserID: u.ID, JulepUserID: responder.JulepUserID(u.ID), Content: content, Metadata: meta}
	if err := st.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// openStore is a fresh SQLite store.
func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// running is a dispatcher running in the background.
type running struct {
	d     *dispatch.Dispatcher
	owner string
	stop  context.CancelFunc
	done  chan error
}

func runDispatcher(t testing.TB, o dispatch.Options) *running {
	t.Helper()
	if o.Owner == "" {
		o.Owner = "test-" + responder.NewID()
	}
	if o.Sweep == 0 {
		o.Sweep = 50 * time.Millisecond
	}
	d := dispatch.New(o)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, owner: o.Owner, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Stop cancels Run and waits for it to return.
func (r *running) Stop(t testing.TB) {
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("Run did not return within 30s of cancel")
	}
}

// terminal waits until the row is delivered or error and returns it.
func terminal(t testing.TB, st responder.Store, id string, d time.Duration) *responder.Message {
	t.Helper()
	var m *responder.Message
	waitFor(t, d, "row "+id+" terminal", func() bool {
		var err error
		m, err = st.Message(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return m.Status.Terminal()
	})
	return m
}

// eventsOf returns the events of one outbox row.
func eventsOf(t testing.TB, st responder.Store, userID, outboxID string) []responder.Event {
	t.Helper()
	all, err := st.UserEventsAfter(context.Background(), userID, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []responder.Event
	for _, e := range all {
		if e.OutboxID == outboxID {
			out = append(out, e)
		}
	}
	return out
}

var _ = stream.NewHub

// gaugeOf reads one labelled series of a gathered metric.
func gaugeOf(t testing.TB, reg *prometheus.Registry, name, status string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == status {
					return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return m.GetGauge().GetValue() })
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, status)
	return nil
}
