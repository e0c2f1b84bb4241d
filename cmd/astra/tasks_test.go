package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/sqlitestate"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/taskdef"
)

// julepServer is a small Julep v1 endpoint over HTTP for the deploy tool's
// tests: it stores agents and tasks as sent and records every request.
type julepServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
	agents   map[string]map[string]any
	tasks    map[string]map[string]any
	order    []string // agent ids in creation order
}

func newJulepServer(t *testing.T) *julepServer {
	s := &julepServer{agents: map[string]map[string]any{}, tasks: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /agents/{id}", func(w http.ResponseWriter, r *http.Request) {
		body := s.body(w, r)
		if body == nil {
			return
		}
		id := r.PathValue("id")
		if _, ok := s.agents[id]; !ok {
			s.order = append(s.order, id)
		}
		s.agents[id] = stamp(body, id)
		reply(w, http.StatusCreated, s.agents[id])
	})
	mux.HandleFunc("GET /agents/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.get(w, s.agents, r.PathValue("id"))
	})
	mux.HandleFunc("GET /agents", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		items := []any{}
		if r.URL.Query().Get("offset") == "0" || r.URL.Query().Get("offset") == "" {
			for _, id := range s.order {
				items = append(items, s.agents[id])
			}
		}
		reply(w, http.StatusOK, map[string]any{"items": items})
	})
	mux.HandleFunc("POST /agents/{agent}/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		body := s.body(w, r)
		if body == nil {
			return
		}
		task := stamp(body, r.PathValue("id"))
		task["agent_id"] = r.PathValue("agent")
		s.tasks[r.PathValue("id")] = task
		reply(w, http.StatusCreated, task)
	})
	mux.HandleFunc("GET /tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.get(w, s.tasks, r.PathValue("id"))
	})
	mux.HandleFunc("GET /agents/{agent}/tasks", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		items := []any{}
		if r.URL.Query().Get("offset") == "0" || r.URL.Query().Get("offset") == "" {
			for _, t := range s.tasks {
				if t["agent_id"] == r.PathValue("agent") {
					items = append(items, t)
				}
			}
		}
		reply(w, http.StatusOK, map[string]any{"items": items})
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer test-key" {
			reply(w, http.StatusForbidden, map[string]any{"error": map[string]any{"message": "bad key", "code": "http_403"}})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *julepServer) body(w http.ResponseWriter, r *http.Request) map[string]any {
	var m map[string]any
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil || r.Header.Get("Content-Type") != "application/json" {
		reply(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "want a JSON object"}})
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return m
}

func (s *julepServer) get(w http.ResponseWriter, m map[string]map[string]any, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := m[id]; ok {
		reply(w, http.StatusOK, v)
		return
	}
	reply(w, http.StatusNotFound, map[string]any{"error": map[string]any{"message": "not found", "code": "http_404"}})
}

func stamp(m map[string]any, id string) map[string]any {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Format(time.RFC3339)
	m["id"], m["created_at"], m["updated_at"] = id, now, now
	return m
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// takeRequests returns and clears the recorded requests.
func (s *julepServer) takeRequests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

// project copies the repository's tasks/ into a fresh directory.
func project(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tasks")
	for _, f := range []string{"julep.yaml", "agents/responder.yaml", "responder.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "tasks", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type result struct {
	code           int
	stdout, stderr string
}

func runAstra(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, args, func(k string) string { return env[k] }, &out, &errb)
	code := 0
	if err != nil {
		code = exitCode(err)
		errb.WriteString(err.Error())
	}
	return result{code, out.String(), errb.String()}
}

func envFor(dir string, s *julepServer) map[string]string {
	env := map[string]string{"ASTRA_TASKS_DIR": dir, "ASTRA_DATA_DIR": filepath.Join(filepath.Dir(dir), "data")}
	if s != nil {
		env["JULEP_BASE_URL"] = s.URL
		env["JULEP_API_KEY"] = "test-key"
	}
	return env
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`)

// mask replaces ids with their role and runs of spaces with one, so tables
// compare exactly whatever the ids' widths.
func mask(s string, ids map[string]string) string {
	for id, name := range ids {
		s = strings.ReplaceAll(s, id, name)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lead := l[:len(l)-len(strings.TrimLeft(l, " "))]
		lines[i] = lead + strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func TestTasksPushCreatesThenUnchanged(t *testing.T) {
	t.Parallel()
	s := newJulepServer(t)
	dir := project(t)
	env := envFor(dir, s)

	r := runAstra(t, env, "tasks", "push")
	if r.code != 0 {
		t.Fatalf("push: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	lock, err := taskdef.ReadLock(filepath.Join(dir, taskdef.LockName))
	if err != nil {
		t.Fatal(err)
	}
	if len(lock.Agents) != 1 || len(lock.Tasks) != 1 {
		t.Fatalf("lock = %+v", lock)
	}
	agentID, taskID := lock.Agents[0].ID, lock.Tasks[0].ID
	if !uuidRE.MatchString(agentID) || !uuidRE.MatchString(taskID) || lock.TaskAgent(taskID) != agentID {
		t.Fatalf("lock ids: %+v", lock)
	}
	ids := map[string]string{agentID: "AGENT-ID", taskID: "TASK-ID"}
	if got, want := s.takeRequests(), []string{"GET /agents/" + agentID, "GET /tasks/" + taskID, "POST /agents/" + agentID, "POST /agents/" + agentID + "/tasks/" + taskID}; !equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
	wantTable := "NAME KIND ID RESULT\n" +
		"Jadugar agent AGENT-ID created\n" +
		"Astra responder task TASK-ID created\n"
	if got := mask(r.stdout, ids); got != wantTable {
		t.Errorf("table:\n%s\nwant:\n%s", got, wantTable)
	}
	// What was sent is the parsed YAML, with the agent's instructions as a list.
	s.mu.Lock()
	task := s.tasks[taskID]
	agent := s.agents[agentID]
	s.mu.Unlock()
	if task["name"] != "Astra responder" || len(task["main"].([]any)) != 7 || task["agent_id"] != agentID {
		t.Errorf("task stored: %v", task)
	}
	if agent["name"] != "Jadugar" || agent["model"] != "gpt-4o-mini" || len(agent["instructions"].([]any)) < 5 {
		t.Errorf("agent stored: %v", agent)
	}

	lockBefore, _ := os.ReadFile(filepath.Join(dir, taskdef.LockName))
	r = runAstra(t, env, "tasks", "push")
	if r.code != 0 {
		t.Fatalf("second push: %d\n%s", r.code, r.stderr)
	}
	if got, want := s.takeRequests(), []string{"GET /agents/" + agentID, "GET /tasks/" + taskID}; !equal(got, want) {
		t.Errorf("second push requests %q, want only reads %q", got, want)
	}
	if got := mask(r.stdout, ids); !strings.Contains(got, "Jadugar agent AGENT-ID unchanged\n") ||
		!strings.Contains(got, "Astra responder task TASK-ID unchanged\n") {
		t.Errorf("second table:\n%s", got)
	}
	lockAfter, _ := os.ReadFile(filepath.Join(dir, taskdef.LockName))
	if !bytes.Equal(lockBefore, lockAfter) {
		t.Errorf("an unchanged push rewrote the lock:\n%s\n%s", lockBefore, lockAfter)
	}

	// A comment changes nothing; a real edit updates the task under its id.
	file := filepath.Join(dir, "responder.yaml")
	b, _ := os.ReadFile(file)
	if err := os.WriteFile(file, append([]byte("# a new comment\n"), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = runAstra(t, env, "tasks", "push"); r.code != 0 || strings.Contains(r.stdout, "updated") {
		t.Errorf("comment-only push: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s.takeRequests()
	edited := strings.Replace(string(b), "and saves a one- or two-sentence note of the turn.", "and saves a short note of the turn.", 1)
	if edited == string(b) {
		t.Fatal("edit did not apply")
	}
	if err := os.WriteFile(file, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}

	r = runAstra(t, env, "tasks", "diff")
	if r.code != 1 {
		t.Fatalf("diff with a difference: exit %d (want 1) %s", r.code, r.stderr)
	}
	wantDiff := "# task responder.yaml (Astra responder, id TASK-ID): differs from the remote (push updates it)\n" +
		"--- remote/responder.yaml\n+++ local/responder.yaml\n"
	if got := mask(r.stdout, ids); !strings.HasPrefix(got, wantDiff) ||
		!strings.Contains(got, "\n-description: Reads the user's frontline docs, answers the message as the agent's persona, and saves a one- or two-sentence note of the turn.\n") ||
		!strings.Contains(got, "\n+description: Reads the user's frontline docs, answers the message as the agent's persona, and saves a short note of the turn.\n") || strings.Contains(got, "agent agents/responder.yaml") {
		t.Errorf("diff:\n%s", got)
	}
	if got, want := s.takeRequests(), []string{"GET /agents/" + agentID, "GET /tasks/" + taskID}; !equal(got, want) {
		t.Errorf("diff requests %q, want %q", got, want)
	}

	r = runAstra(t, env, "tasks", "push")
	if r.code != 0 {
		t.Fatalf("push edit: %d %s", r.code, r.stderr)
	}
	if got, want := s.takeRequests(), []string{"GET /agents/" + agentID, "GET /tasks/" + taskID, "POST /agents/" + agentID + "/tasks/" + taskID}; !equal(got, want) {
		t.Errorf("edit push requests %q, want %q", got, want)
	}
	if got := mask(r.stdout, ids); !strings.Contains(got, "Astra responder task TASK-ID updated\n") {
		t.Errorf("edit table:\n%s", got)
	}
	s.mu.Lock()
	desc := s.tasks[taskID]["description"]
	s.mu.Unlock()
	if !strings.Contains(desc.(string), "a short note") {
		t.Errorf("remote description %q", desc)
	}

	r = runAstra(t, env, "tasks", "diff")
	if r.code != 0 || r.stdout != "no changes: the remote definitions match the local files\n" {
		t.Errorf("diff after push: %d %q %s", r.code, r.stdout, r.stderr)
	}

	r = runAstra(t, env, "tasks", "list")
	want := "KIND ID NAME UPDATED LOCAL\n" +
		"agent AGENT-ID Jadugar 2026-01-02T03:04:05Z agents/responder.yaml\n" +
		"  task TASK-ID Astra responder 2026-01-02T03:04:05Z responder.yaml\n"
	if got := mask(r.stdout, ids); r.code != 0 || got != want {
		t.Errorf("list: %d\n%s\nwant:\n%s%s", r.code, got, want, r.stderr)
	}
}

func TestTasksPushDryRunSendsNothing(t *testing.T) {
	t.Parallel()
	s := newJulepServer(t)
	dir := project(t)
	r := runAstra(t, envFor(dir, s), "tasks", "push", "--dry-run")
	if r.code != 0 {
		t.Fatalf("dry run: %d %s", r.code, r.stderr)
	}
	for _, req := range s.takeRequests() {
		if !strings.HasPrefix(req, "GET ") {
			t.Errorf("dry run sent %q", req)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, taskdef.LockName)); !os.IsNotExist(err) {
		t.Errorf("dry run wrote the lock: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[1], "would create") || !strings.HasSuffix(lines[2], "would create") ||
		lines[3] != "dry run: nothing sent, lock not written" {
		t.Errorf("dry run output:\n%s", r.stdout)
	}
	// It reads the live remote, so it needs an endpoint.
	if r := runAstra(t, envFor(dir, nil), "tasks", "push", "--dry-run"); r.code != 2 || !strings.Contains(r.stderr, "no Julep endpoint") {
		t.Errorf("dry run without an endpoint: %d %s", r.code, r.stderr)
	}
}

// The remote changed behind the lock's back (another push from a copy of
// tasks/): diff shows it and exits 1, push --dry-run says it would update,
// push puts the local definition back, and --force re-sends everything.
func TestTasksReconcileDrift(t *testing.T) {
	t.Parallel()
	s := newJulepServer(t)
	dir := project(t)
	env := envFor(dir, s)
	if r := runAstra(t, env, "tasks", "push"); r.code != 0 {
		t.Fatalf("push: %d %s", r.code, r.stderr)
	}
	lock, err := taskdef.ReadLock(filepath.Join(dir, taskdef.LockName))
	if err != nil {
		t.Fatal(err)
	}
	agentID, taskID := lock.Agents[0].ID, lock.Tasks[0].ID
	if r := runAstra(t, env, "tasks", "diff"); r.code != 0 {
		t.Fatalf("diff in sync: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s.mu.Lock()
	s.tasks[taskID]["description"] = "changed on the remote"
	s.mu.Unlock()
	s.takeRequests()

	r := runAstra(t, env, "tasks", "diff")
	if r.code != 1 || !strings.Contains(r.stdout, "differs from the remote") || !strings.Contains(r.stdout, "\n-description: changed on the remote\n") {
		t.Errorf("diff of drift: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runAstra(t, env, "tasks", "diff", "-o", "json")
	var d struct {
		Changed int `json:"changed"`
		Entries []struct {
			Kind, Action, Diff string
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || r.code != 1 || d.Changed != 1 || len(d.Entries) != 2 ||
		d.Entries[0].Action != "none" || d.Entries[1].Action != "update" || !strings.Contains(d.Entries[1].Diff, "-description: changed on the remote") {
		t.Errorf("diff -o json: %d %v\n%s", r.code, err, r.stdout)
	}
	r = runAstra(t, env, "tasks", "push", "--dry-run")
	if r.code != 0 || !strings.Contains(mask(r.stdout, nil), "Astra responder task "+taskID+" would update") ||
		!strings.Contains(mask(r.stdout, nil), "Jadugar agent "+agentID+" unchanged") {
		t.Errorf("dry run of drift: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s.takeRequests()
	r = runAstra(t, env, "tasks", "push")
	if got, want := s.takeRequests(), []string{"GET /agents/" + agentID, "GET /tasks/" + taskID, "POST /agents/" + agentID + "/tasks/" + taskID}; !equal(got, want) {
		t.Errorf("push of drift sent %q, want %q", got, want)
	}
	s.mu.Lock()
	desc, _ := s.tasks[taskID]["description"].(string)
	s.mu.Unlock()
	if r.code != 0 || strings.Contains(desc, "changed on the remote") {
		t.Errorf("push left the drift: %d %q\n%s", r.code, desc, r.stderr)
	}
	if r := runAstra(t, env, "tasks", "diff"); r.code != 0 {
		t.Errorf("diff after reconcile: %d\n%s", r.code, r.stdout)
	}
	s.takeRequests()
	r = runAstra(t, env, "tasks", "push", "--force", "-o", "json")
	var p struct {
		Entries []struct{ Result string } `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 || len(p.Entries) != 2 || p.Entries[0].Result != "updated" || p.Entries[1].Result != "updated" {
		t.Errorf("push --force: %d %v\n%s", r.code, err, r.stdout)
	}
	if got := s.takeRequests(); len(got) != 4 || !strings.HasPrefix(got[2], "POST /agents/") || !strings.HasPrefix(got[3], "POST /agents/") {
		t.Errorf("force sent %q", got)
	}
	// A remote that cannot be read is an error: exit 2, not "different".
	s.Close()
	if r := runAstra(t, env, "tasks", "diff"); r.code != 2 || !strings.Contains(r.stderr, "cannot reach Julep") {
		t.Errorf("diff of a dead remote: %d %s", r.code, r.stderr)
	}
}

func TestTasksValidate(t *testing.T) {
	t.Parallel()
	dir := project(t)
	r := runAstra(t, envFor(dir, nil), "tasks", "validate")
	want := "ok " + dir + "/julep.yaml\nok " + dir + "/agents/responder.yaml\nok " + dir + "/responder.yaml\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("validate: %d\n%s\nwant:\n%s%s", r.code, r.stdout, want, r.stderr)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: bad\nmain:\n  - tool: missing\n  - evaluate:\n      x: \"{unclosed\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runAstra(t, envFor(dir, nil), "tasks", "validate", bad, filepath.Join(dir, "responder.yaml"))
	want = "" +
		bad + ":3:11: main[0].tool: unknown tool \"missing\" (tools: none defined)\n" +
		bad + ":5:10: main[1].evaluate.x: unbalanced braces: \"{\" at offset 0 is never closed (write {{ for a literal brace)\n" +
		"ok " + dir + "/responder.yaml\n"
	if r.code != 1 || r.stdout != want {
		t.Errorf("validate bad: %d\n%s\nwant:\n%s%s", r.code, r.stdout, want, r.stderr)
	}

	// A broken project stops push before anything is sent.
	s := newJulepServer(t)
	if err := os.WriteFile(filepath.Join(dir, "responder.yaml"), []byte("name: x\nmain: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runAstra(t, envFor(dir, s), "tasks", "push")
	if r.code != 1 || !strings.Contains(r.stderr, dir+"/responder.yaml:2:7: main: must have at least one step") {
		t.Errorf("push of a broken project: %d\n%s", r.code, r.stderr)
	}
	if got := s.takeRequests(); len(got) != 0 {
		t.Errorf("broken project sent %q", got)
	}
}

func TestTasksExitCodes(t *testing.T) {
	t.Parallel()
	dir := project(t)
	env := envFor(dir, nil)
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"tasks"}, 2, "tasks needs a subcommand"},
		{[]string{"tasks", "push", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"tasks", "list", "extra"}, 2, "unknown command \"extra\""},
		{[]string{"tasks", "push"}, 2, "no Julep endpoint: set JULEP_BASE_URL and JULEP_API_KEY (or pass --julep-url and --julep-key)"},
		{[]string{"tasks", "validate", filepath.Join(dir, "nope.yaml")}, 1, ""},
	} {
		r := runAstra(t, env, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.err) {
			t.Errorf("%q: exit %d (want %d)\nstderr: %s", c.args, r.code, c.code, r.stderr)
		}
	}
	// --julep-url and --julep-key stand in for the environment; a dead
	// endpoint says what to check.
	s := newJulepServer(t)
	url := s.URL
	s.Close()
	r := runAstra(t, env, "tasks", "list", "--julep-url", url, "--julep-key", "test-key")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach Julep at "+url) {
		t.Errorf("dead endpoint: %d %s", r.code, r.stderr)
	}
	s2 := newJulepServer(t)
	r = runAstra(t, env, "tasks", "list", "--julep-url", s2.URL, "--julep-key", "wrong")
	if r.code != 1 || !strings.Contains(r.stderr, "403") {
		t.Errorf("wrong key: %d %s", r.code, r.stderr)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// The real path: push tasks/ to the embedded engine over HTTP (as astra
// serve mounts it), then run the responder task with the offline model and
// check the reply, the summary and the saved notes doc.
func TestTasksPushToEmbeddedEngineAndRun(t *testing.T) {
	t.Parallel()
	const key = "engine-test-key"
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	state, err := sqlitestate.New(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Key: key, State: state, Model: llm.Offline(), Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	mux := http.NewServeMux()
	mux.Handle("/julep/", http.StripPrefix("/julep", eng.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	dir := project(t)
	env := envFor(dir, nil)
	env["JULEP_BASE_URL"], env["JULEP_API_KEY"] = srv.URL+"/julep", key
	if r := runAstra(t, env, "tasks", "push"); r.code != 0 || strings.Count(r.stdout, "created") != 2 {
		t.Fatalf("push: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runAstra(t, env, "tasks", "push"); r.code != 0 || strings.Count(r.stdout, "unchanged") != 2 {
		t.Fatalf("second push: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runAstra(t, env, "tasks", "diff"); r.code != 0 || !strings.HasPrefix(r.stdout, "no changes") {
		t.Errorf("diff against the engine: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lock, err := taskdef.ReadLock(filepath.Join(dir, taskdef.LockName))
	if err != nil {
		t.Fatal(err)
	}
	taskID := lock.Tasks[0].ID

	c, err := julep.New(srv.URL+"/julep", key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	userID := taskdef.NewID()
	if _, err := c.CreateOrUpdateUser(ctx, userID, julep.UserInput{Name: "Asha"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUserDoc(ctx, userID, julep.DocInput{Title: "Profile", Content: julep.TextContent("Asha is a Leo who loves chai."),
		Metadata: julep.Metadata{"scope": "frontline", "type": "profile"}}); err != nil {
		t.Fatal(err)
	}
	// More notes than the task reads, all newer than the profile: the
	// profile must still be in the memory, first, with the newest 30 notes.
	for i := range 35 {
		if _, err := c.CreateUserDoc(ctx, userID, julep.DocInput{Title: fmt.Sprintf("Note %d", i), Content: julep.TextContent("chatted"),
			Metadata: julep.Metadata{"scope": "frontline", "type": "notes"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateUserDoc(ctx, userID, julep.DocInput{Title: "Prefs", Content: julep.TextContent("Prefers mornings."),
		Metadata: julep.Metadata{"scope": "frontline", "type": "preferences"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUserDoc(ctx, userID, julep.DocInput{Title: "Elsewhere", Content: julep.TextContent("not memory"),
		Metadata: julep.Metadata{"scope": "archive", "type": "notes"}}); err != nil {
		t.Fatal(err)
	}
	ex, err := c.CreateExecution(ctx, taskID, map[string]any{
		"user_id": userID, "message": "What should I do this weekend?", "outbox_id": "outbox-1",
		"history": []any{map[string]any{"role": "user", "content": "hi"}}, "voice": false,
	}, map[string]any{"outbox_id": "outbox-1"})
	if err != nil {
		t.Fatal(err)
	}
	// Wait on the execution's status stream, then read the final state.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.StreamStatus(sctx, ex.Id, func(julep.StatusEvent) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ex, err = c.GetExecution(ctx, ex.Id); err != nil {
		t.Fatal(err)
	}
	if ex.Status != julep.StatusSucceeded {
		t.Fatalf("execution %s: %s", ex.Status, ex.Error)
	}
	out, _ := ex.Output.(map[string]any)
	reply, _ := out["reply"].(string)
	summary, _ := out["summary"].(string)
	if !strings.Contains(reply, "What should I do this weekend?") || summary == "" {
		t.Errorf("output = %v", ex.Output)
	}
	trs, err := c.ListTransitions(ctx, ex.Id)
	if err != nil {
		t.Fatal(err)
	}
	var memory []string
	for _, tr := range trs {
		if out, ok := tr.Output.(map[string]any); ok && tr.StepLabel == "context" {
			m, _ := out["memory"].(string)
			memory = strings.Split(m, "\n")
		}
	}
	want := []string{"profile: Profile - Asha is a Leo who loves chai.", "preferences: Prefs - Prefers mornings."}
	for i := 34; i >= 5; i-- {
		want = append(want, fmt.Sprintf("notes: Note %d - chatted", i))
	}
	if !equal(memory, want) {
		t.Errorf("memory given to the prompt:\n%s\nwant:\n%s", strings.Join(memory, "\n"), strings.Join(want, "\n"))
	}
	notes, err := c.ListUserDocs(ctx, userID, map[string]string{"scope": "frontline", "type": "notes", "updated_by": "responder-task"})
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || notes[0].Title != "Chat note outbox-1" || notes[0].Metadata["updated_by"] != "responder-task" ||
		notes[0].Metadata["timestamp_iso"] == nil {
		t.Errorf("notes = %+v", notes)
	}
}

// What validate passes the engine accepts and the reverse: the issue's three
// mistakes fail validate with file:line:col, and the file is not "ok".
func TestTasksValidateIsTheEnginesCheck(t *testing.T) {
	t.Parallel()
	dir := project(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	src := "name: bad\n" +
		"tools:\n  - name: save\n    type: function\n    function: {name: save}\n" +
		"main:\n" +
		"  - prompt: $ 'note ' + _.outbox_id +)\n" + // line 7
		"  - evaluate:\n      x: $ stepz[0].output\n" + // line 9
		"  - toool: save\n" + // line 10
		"    arguments: {a: $ 1}\n"
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runAstra(t, envFor(dir, nil), "tasks", "validate", bad)
	want := bad + `:7:13: main[0].prompt: expression "$ 'note ' + _.outbox_id +)": unmatched ')' at column 26` + "\n" +
		bad + `:9:10: main[1].evaluate.x: Undefined name: 'stepz' (did you mean "steps"?)` + "\n" +
		bad + `:10:5: main[2].toool: unknown step kind "toool" (did you mean "tool"?)` + "\n"
	if r.code != 1 || r.stdout != want {
		t.Errorf("validate: %d\n%s\nwant:\n%s%s", r.code, r.stdout, want, r.stderr)
	}
	r = runAstra(t, envFor(dir, nil), "tasks", "validate", "-o", "json", bad)
	var rep struct {
		OK    bool
		Files []struct {
			File string
			OK   bool
		}
		Issues []taskdef.Issue
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 || rep.OK || len(rep.Files) != 1 || rep.Files[0].OK ||
		len(rep.Issues) != 3 || rep.Issues[1].Line != 9 || rep.Issues[1].Column != 10 {
		t.Errorf("validate -o json: %d %v\n%s", r.code, err, r.stdout)
	}
	if r := runAstra(t, envFor(dir, nil), "tasks", "validate", "-o", "xml"); r.code != 2 || !strings.Contains(r.stderr, `--output "xml": want text, json or yaml`) {
		t.Errorf("-o xml: %d %s", r.code, r.stderr)
	}
}
