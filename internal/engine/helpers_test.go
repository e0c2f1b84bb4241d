package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/sqlitestate"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/store/sqlite"
)

const testKey = "test-engine-key"

// env is one engine on its own SQLite file, served over HTTP under /julep
// the way astra serve mounts it, with the real Julep client pointed at it.
type env struct {
	t      *testing.T
	store  *sqlite.Store
	state  *sqlitestate.State
	eng    *engine.Engine
	srv    *httptest.Server
	base   string
	client *julep.Client
}

type envOption func(*engine.Options)

func withModel(m llm.Model) envOption           { return func(o *engine.Options) { o.Model = m } }
func withSecrets(s map[string]string) envOption { return func(o *engine.Options) { o.Secrets = s } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return startEnv(t, st, opts...)
}

// startEnv starts an engine on an existing store (a restart when another
// engine used it before).
func startEnv(t *testing.T, st *sqlite.Store, opts ...envOption) *env {
	t.Helper()
	state, err := sqlitestate.New(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	o := engine.Options{Key: testKey, State: state, Model: llm.Offline(), Concurrency: 8}
	for _, f := range opts {
		f(&o)
	}
	eng, err := engine.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/julep/", http.StripPrefix("/julep", eng.Handler()))
	srv := httptest.NewServer(mux)
	c, err := julep.New(srv.URL+"/julep", testKey, julep.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, state: state, eng: eng, srv: srv, base: srv.URL + "/julep", client: c}
	t.Cleanup(e.stop)
	return e
}

func (e *env) stop() {
	e.srv.CloseClientConnections()
	e.srv.Close()
	e.eng.Close()
}

// do sends a raw request and decodes the JSON answer.
func (e *env) do(method, path string, body any, headers ...string) (int, any) {
	e.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/yaml"
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequestWithContext(e.t.Context(), method, e.base+path, rd)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Auth-Key", testKey)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			e.t.Fatalf("%s %s: %d %s: not JSON", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, v
}

func (e *env) must(status int, method, path string, body any) map[string]any {
	e.t.Helper()
	got, v := e.do(method, path, body)
	if got != status {
		e.t.Fatalf("%s %s: status %d, want %d: %v", method, path, got, status, v)
	}
	m, _ := v.(map[string]any)
	return m
}

func (e *env) agent(body map[string]any) string {
	e.t.Helper()
	if body == nil {
		body = map[string]any{"name": "Tester"}
	}
	return e.must(201, "POST", "/agents", body)["id"].(string)
}

func (e *env) task(agentID string, def any) string {
	e.t.Helper()
	return e.must(201, "POST", "/agents/"+agentID+"/tasks", def)["id"].(string)
}

func (e *env) start(taskID string, input map[string]any) string {
	e.t.Helper()
	x, err := e.client.CreateExecution(e.t.Context(), taskID, input, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(x.Id)
}

// wait follows the status stream until the execution reaches a status in
// want (or any terminal one) and returns the execution.
func (e *env) wait(id string, want ...string) map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 20*time.Second)
	defer cancel()
	stop := func(s string) bool {
		for _, w := range want {
			if s == w {
				return true
			}
		}
		return s == "succeeded" || s == "failed" || s == "cancelled"
	}
	errDone := io.EOF
	err := e.client.StreamStatus(ctx, id, func(ev julep.StatusEvent) error {
		if stop(string(ev.Status)) {
			return errDone
		}
		return nil
	})
	if err != nil && err != errDone {
		e.t.Fatalf("follow %s: %v", id, err)
	}
	return e.must(200, "GET", "/executions/"+id, nil)
}

// run starts an execution and waits for it to end.
func (e *env) run(taskID string, input map[string]any) map[string]any {
	e.t.Helper()
	return e.wait(e.start(taskID, input))
}

func (e *env) transitions(id string) []map[string]any {
	e.t.Helper()
	m := e.must(200, "GET", "/executions/"+id+"/transitions?direction=asc", nil)
	var out []map[string]any
	for _, it := range m["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

func types(trs []map[string]any) string {
	var s []string
	for _, t := range trs {
		s = append(s, t["type"].(string))
	}
	return strings.Join(s, ",")
}

func succeeded(t *testing.T, x map[string]any) map[string]any {
	t.Helper()
	if x["status"] != "succeeded" {
		t.Fatalf("status %v, error %v", x["status"], x["error"])
	}
	out, _ := x["output"].(map[string]any)
	return out
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func asAPIError(err error, target **julep.APIError) bool { return errors.As(err, target) }
