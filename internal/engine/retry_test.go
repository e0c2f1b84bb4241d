package engine_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/retry"
)

// fastRetry keeps the real policy but waits a millisecond or two, so the
// tests exercise retries without sleeping.
var fastRetry = retry.Policy{Attempts: 3, Base: time.Millisecond, Cap: 2 * time.Millisecond, Budget: time.Minute}

func withRetry(p retry.Policy) envOption { return func(o *engine.Options) { o.Retry = p } }

func withMetrics(r prometheus.Registerer) envOption {
	return func(o *engine.Options) { o.Metrics = r }
}

// scripted is a real HTTP server whose nth request (from 1) is answered by
// answer(n, ...); it counts the requests it saw.
type scripted struct {
	*httptest.Server
	mu sync.Mutex
	n  int
}

func newScripted(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *scripted {
	s := &scripted{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.n++
		n := s.n
		s.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scripted) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// hangUp closes the connection without an answer, as a crashing or
// restarting server does.
func hangUp(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func modelError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":"scripted %d","type":"server_error","code":null}}`, status)
}

// retryEnv is an engine whose model is the scripted server, with fastRetry
// and its own metrics registry.
func retryEnv(t *testing.T, model *scripted, opts ...envOption) (*env, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	opts = append([]envOption{withRetry(fastRetry), withMetrics(reg)}, opts...)
	if model != nil {
		opts = append(opts, withModel(llm.NewOpenAI(model.URL, "k", "test-model", model.Client())))
	}
	return newEnv(t, opts...), reg
}

func promptTask(e *env) string {
	return e.task(e.agent(nil), map[string]any{"name": "ask", "main": []any{
		map[string]any{"prompt": "$ 'hello ' + _.who", "unwrap": true},
		map[string]any{"return": map[string]any{"answer": "$ _"}},
	}})
}

func retries(t *testing.T, reg *prometheus.Registry, kind, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "astra_engine_retries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// The model answering 500 once: the step is retried and the execution ends
// succeeded, with no trace of the retry among its transitions.
func TestModelRetriedAfter500(t *testing.T) {
	t.Parallel()
	model := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			modelError(w, http.StatusInternalServerError)
			return
		}
		writeCompletion(w, r, "fine thanks")
	})
	e, reg := retryEnv(t, model)
	x := e.run(promptTask(e), map[string]any{"who": "ada"})
	if out := succeeded(t, x); out["answer"] != "fine thanks" {
		t.Fatalf("output %v", out)
	}
	if n := model.requests(); n != 2 {
		t.Fatalf("the model saw %d requests, want 2", n)
	}
	if got := types(e.transitions(x["id"].(string))); got != "init,step,finish" {
		t.Fatalf("transitions %s", got)
	}
	if n := retries(t, reg, "model", "5xx"); n != 1 {
		t.Fatalf("astra_engine_retries_total{model,5xx} = %v", n)
	}
}

// 429 with Retry-After: retried (the wait is capped by the policy; the
// retry package's tests check the wait chosen).
func TestModelRetriedAfter429(t *testing.T) {
	t.Parallel()
	model := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			modelError(w, http.StatusTooManyRequests)
			return
		}
		writeCompletion(w, r, "after the wait")
	})
	e, reg := retryEnv(t, model)
	if out := succeeded(t, e.run(promptTask(e), map[string]any{"who": "ada"})); out["answer"] != "after the wait" {
		t.Fatalf("output %v", out)
	}
	if n := model.requests(); n != 2 {
		t.Fatalf("the model saw %d requests, want 2", n)
	}
	if n := retries(t, reg, "model", "429"); n != 1 {
		t.Fatalf("astra_engine_retries_total{model,429} = %v", n)
	}
}

// A 400 is the request's fault: no retry.
func TestModel400NotRetried(t *testing.T) {
	t.Parallel()
	model := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		modelError(w, http.StatusBadRequest)
	})
	e, _ := retryEnv(t, model)
	x := e.run(promptTask(e), map[string]any{"who": "ada"})
	if x["status"] != "failed" || !strings.Contains(fmt.Sprint(x["error"]), "400 scripted 400") {
		t.Fatalf("status %v, error %v", x["status"], x["error"])
	}
	if n := model.requests(); n != 1 {
		t.Fatalf("the model saw %d requests, want 1", n)
	}
}

// A connection closed without an answer is retried.
func TestModelConnectionResetRetried(t *testing.T) {
	t.Parallel()
	model := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			hangUp(w)
			return
		}
		writeCompletion(w, r, "back again")
	})
	e, reg := retryEnv(t, model)
	if out := succeeded(t, e.run(promptTask(e), map[string]any{"who": "ada"})); out["answer"] != "back again" {
		t.Fatalf("output %v", out)
	}
	if n := model.requests(); n != 2 {
		t.Fatalf("the model saw %d requests, want 2", n)
	}
	if n := retries(t, reg, "model", "conn"); n != 1 {
		t.Fatalf("astra_engine_retries_total{model,conn} = %v", n)
	}
}

// Once part of the reply has been streamed, a retry would repeat it: the
// step fails instead.
func TestModelStreamBrokenAfterTokenNotRetried(t *testing.T) {
	t.Parallel()
	model := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"test-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n")
		w.(http.Flusher).Flush()
		hangUp(w)
	})
	e, reg := retryEnv(t, model)
	x := e.run(promptTask(e), map[string]any{"who": "ada"})
	if x["status"] != "failed" || !strings.Contains(fmt.Sprint(x["error"]), "not retried") {
		t.Fatalf("status %v, error %v", x["status"], x["error"])
	}
	if n := model.requests(); n != 1 {
		t.Fatalf("the model saw %d requests, want 1", n)
	}
	if n := retries(t, reg, "model", "conn"); n != 0 {
		t.Fatalf("astra_engine_retries_total{model,conn} = %v", n)
	}
}

// Every attempt failing: the step fails naming the last status and the
// number of attempts.
func TestModelRetriesExhausted(t *testing.T) {
	t.Parallel()
	model := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		modelError(w, http.StatusServiceUnavailable)
	})
	e, reg := retryEnv(t, model)
	x := e.run(promptTask(e), map[string]any{"who": "ada"})
	msg := fmt.Sprint(x["error"])
	if x["status"] != "failed" || !strings.Contains(msg, "gave up after 3 attempts (last: 503 Service Unavailable)") {
		t.Fatalf("status %v, error %v", x["status"], msg)
	}
	if n := model.requests(); n != 3 {
		t.Fatalf("the model saw %d requests, want 3", n)
	}
	if n := retries(t, reg, "model", "5xx"); n != 2 {
		t.Fatalf("astra_engine_retries_total{model,5xx} = %v", n)
	}
}

func apiTask(e *env, url string) string {
	return e.task(e.agent(nil), map[string]any{"name": "api",
		"tools": []any{map[string]any{"name": "speak", "type": "api_call", "api_call": map[string]any{"method": "POST", "url": url}}},
		"main": []any{
			map[string]any{"tool": "speak", "arguments": map[string]any{"json": map[string]any{"input": "hi"}}},
			map[string]any{"return": map[string]any{"status": "$ _.status_code", "json": "$ _.get('json')"}},
		}})
}

// An api_call answered 503 is retried, with its body, and the step gets the
// answer that followed.
func TestAPICallRetriedOn503(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		bodies []string
	)
	api := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if n == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	})
	e, reg := retryEnv(t, nil)
	out := succeeded(t, e.run(apiTask(e, api.URL), map[string]any{}))
	if out["status"] != float64(200) || jsonString(out["json"]) != `{"ok":true}` {
		t.Fatalf("output %v", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := api.requests(); n != 2 || bodies[1] != `{"input":"hi"}` {
		t.Fatalf("the API saw %d requests, bodies %q", n, bodies)
	}
	if n := retries(t, reg, "api_call", "5xx"); n != 1 {
		t.Fatalf("astra_engine_retries_total{api_call,5xx} = %v", n)
	}
}

// An api_call that still answers 503 after every attempt: the answer is
// the step's output, as any status is, so the task can fall back (the
// responder's speech step keeps the reply as text).
func TestAPICallStatusAfterRetriesIsOutput(t *testing.T) {
	t.Parallel()
	api := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	e, _ := retryEnv(t, nil)
	out := succeeded(t, e.run(apiTask(e, api.URL), map[string]any{}))
	if out["status"] != float64(503) {
		t.Fatalf("output %v", out)
	}
	if n := api.requests(); n != 3 {
		t.Fatalf("the API saw %d requests, want 3", n)
	}
}

// An api_call that gets no answer at all fails once the attempts run out.
func TestAPICallUnreachableFailsAfterRetries(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	e, reg := retryEnv(t, nil)
	x := e.run(apiTask(e, "http://"+addr+"/speak"), map[string]any{})
	msg := fmt.Sprint(x["error"])
	if x["status"] != "failed" || !strings.Contains(msg, "gave up after 3 attempts (last: connection failed)") {
		t.Fatalf("status %v, error %v", x["status"], msg)
	}
	if n := retries(t, reg, "api_call", "conn"); n != 2 {
		t.Fatalf("astra_engine_retries_total{api_call,conn} = %v", n)
	}
}

// A 404 from an API is an answer, not a failure: returned at once.
func TestAPICall404NotRetried(t *testing.T) {
	t.Parallel()
	api := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	e, _ := retryEnv(t, nil)
	if out := succeeded(t, e.run(apiTask(e, api.URL), map[string]any{})); out["status"] != float64(404) {
		t.Fatalf("output %v", out)
	}
	if n := api.requests(); n != 1 {
		t.Fatalf("the API saw %d requests, want 1", n)
	}
}
