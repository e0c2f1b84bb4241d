package julep_test

// The client against the real thing: every exported Client method drives
// Astra's embedded engine (internal/engine) served over HTTP, with its state
// in a SQLite file of the test's own. The scripted tests beside this file
// pin the exact requests; these pin that the engine answers them the way the
// client expects (shapes, values, statuses and error messages).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/enginetest"
	"github.com/astra-app/astra/internal/julep"
)

const engineKey = "sk-engine-test-2b7e1516"

// engineServer is one engine on its own database, served by httptest.
type engineServer struct {
	url string
	eng *engine.Engine
}

func newEngine(t *testing.T) *engineServer {
	t.Helper()
	srv := enginetest.Start(t, engine.Options{Key: engineKey, Concurrency: 4})
	return &engineServer{url: srv.URL, eng: srv.Engine}
}

// client returns a client of the engine with key; no retries, so a test
// sees the first answer and never waits on backoff.
func (s *engineServer) client(t *testing.T, key string, opts ...julep.Option) *julep.Client {
	t.Helper()
	opts = append([]julep.Option{julep.WithTimeout(10 * time.Second), julep.WithRetry(julep.RetryPolicy{MaxAttempts: 1})}, opts...)
	c, err := julep.New(s.url, key, opts...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

func newClient(t *testing.T) *julep.Client {
	t.Helper()
	return newEngine(t).client(t, engineKey)
}

// must(call())(t) is call's value, failing the test on its error.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func apiError(t *testing.T, err error) *julep.APIError {
	t.Helper()
	var ae *julep.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an *APIError, got %T: %v", err, err)
	}
	return ae
}

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// steps builds a task's step list from JSON literals.
func steps(t *testing.T, src ...string) []julep.Step {
	t.Helper()
	out := make([]julep.Step, len(src))
	for i, s := range src {
		if !json.Valid([]byte(s)) {
			t.Fatalf("step %d is not JSON: %s", i, s)
		}
		out[i] = julep.Step(s)
	}
	return out
}

// agentWithTask creates an agent and one task of it.
func agentWithTask(t *testing.T, c *julep.Client, def any) (agentID, taskID string) {
	t.Helper()
	a := must(c.CreateAgent(t.Context(), julep.AgentInput{Name: "Runner"}))(t)
	task := must(c.CreateTask(t.Context(), a.Id, def))(t)
	return a.Id, task.Id
}

var errReached = errors.New("reached the awaited status")

// follow reads the status stream until the execution reaches want (or, with
// want empty, a terminal status) and returns the events seen.
func follow(t *testing.T, c *julep.Client, execID string, want julep.ExecutionStatus) []julep.StatusEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var evs []julep.StatusEvent
	err := c.StreamStatus(ctx, execID, func(ev julep.StatusEvent) error {
		evs = append(evs, ev)
		if want != "" && ev.Status == want {
			return errReached
		}
		return nil
	})
	switch {
	case want != "" && !errors.Is(err, errReached):
		t.Fatalf("execution %s never reached %s (err %v, events %s)", execID, want, err, toJSON(evs))
	case want == "" && err != nil:
		t.Fatalf("follow execution %s: %v (events %s)", execID, err, toJSON(evs))
	}
	return evs
}

func transitionTypes(trs []julep.Transition) string {
	s := make([]string, len(trs))
	for i, tr := range trs {
		s[i] = string(tr.Type)
	}
	return strings.Join(s, ",")
}

func TestEngineUsers(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()

	anon := must(c.CreateUser(ctx, julep.UserInput{Name: "Grace", About: "admiral", Metadata: julep.Metadata{"tier": "gold", "n": 7}}))(t)
	if len(anon.Id) != 36 || anon.Name != "Grace" || anon.About != "admiral" || anon.CreatedAt.IsZero() ||
		toJSON(anon.Metadata) != `{"n":7,"tier":"gold"}` {
		t.Fatalf("created user %s", toJSON(anon))
	}

	const id = "0d4f2a8e-7b1c-4e5a-9c3d-2f6a8b0c1d2e"
	first := must(c.CreateOrUpdateUser(ctx, id, julep.UserInput{Name: "Ada", Metadata: julep.Metadata{"tier": "free"}}))(t)
	second := must(c.CreateOrUpdateUser(ctx, id, julep.UserInput{Name: "Ada L.", About: "analyst", Metadata: julep.Metadata{"tier": "gold"}}))(t)
	if first.Id != id || second.Id != id {
		t.Fatalf("create-or-update ids %s, %s; want %s", first.Id, second.Id, id)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) || second.UpdatedAt.Before(first.UpdatedAt) {
		t.Fatalf("second write moved created_at or went back in time: %s then %s", toJSON(first), toJSON(second))
	}
	got := must(c.GetUser(ctx, id))(t)
	if got.Name != "Ada L." || got.About != "analyst" || got.Metadata["tier"] != "gold" || !got.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("get user %s", toJSON(got))
	}

	all := must(c.ListUsers(ctx, nil))(t)
	if len(all) != 2 || all[0].Id != anon.Id || all[1].Id != id {
		t.Fatalf("all users, oldest first: %s", toJSON(all))
	}
	gold := must(c.ListUsers(ctx, map[string]string{"tier": "gold"}))(t)
	if len(gold) != 2 {
		t.Fatalf("tier=gold: %s", toJSON(gold))
	}
	// Filters are ANDed and compare text, so the number 7 matches "7".
	both := must(c.ListUsers(ctx, map[string]string{"tier": "gold", "n": "7"}))(t)
	if len(both) != 1 || both[0].Id != anon.Id {
		t.Fatalf("tier=gold & n=7: %s", toJSON(both))
	}
	if none := must(c.ListUsers(ctx, map[string]string{"tier": "platinum"}))(t); len(none) != 0 {
		t.Fatalf("tier=platinum: %s", toJSON(none))
	}
}

func TestEngineAgents(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()

	a := must(c.CreateAgent(ctx, julep.AgentInput{Name: "Mira", About: "companion", Model: "gpt-4o-mini",
		Instructions: julep.InstructionList("be kind", "be brief"), Metadata: julep.Metadata{"app": "astra"}}))(t)
	if len(a.Id) != 36 || a.Name != "Mira" || a.Model != "gpt-4o-mini" || a.Metadata["app"] != "astra" {
		t.Fatalf("created agent %s", toJSON(a))
	}
	if ins, err := a.Instructions.AsInstructions1(); err != nil || !slices.Equal(ins, []string{"be kind", "be brief"}) {
		t.Fatalf("instructions %s (%v)", toJSON(a.Instructions), err)
	}

	const id = "5a1e3c7d-9b2f-4d6e-8a0c-1b3d5f7a9c2e"
	v1 := must(c.CreateOrUpdateAgent(ctx, id, julep.AgentInput{Name: "Responder", Model: "m1"}))(t)
	v2 := must(c.CreateOrUpdateAgent(ctx, id, julep.AgentInput{Name: "Responder", Model: "m2", About: "v2"}))(t)
	if v1.Id != id || v2.Id != id || !v2.CreatedAt.Equal(v1.CreatedAt) {
		t.Fatalf("create-or-update: %s then %s", toJSON(v1), toJSON(v2))
	}
	got := must(c.GetAgent(ctx, id))(t)
	if got.Model != "m2" || got.About != "v2" || got.Name != "Responder" {
		t.Fatalf("get agent %s", toJSON(got))
	}

	// More agents than one page (100) holds: the client pages past it and
	// stops at the short page.
	want := []string{a.Id, id}
	for i := range 101 {
		x := must(c.CreateAgent(ctx, julep.AgentInput{Name: fmt.Sprintf("bulk-%03d", i)}))(t)
		want = append(want, x.Id)
	}
	list := must(c.ListAgents(ctx))(t)
	ids := make([]string, len(list))
	for i, x := range list {
		ids[i] = x.Id
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("ListAgents: %d agents, want %d in creation order", len(ids), len(want))
	}
	if list[102].Name != "bulk-100" {
		t.Fatalf("last agent %s", toJSON(list[102]))
	}
}

func TestEngineTasks(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	agent := must(c.CreateAgent(ctx, julep.AgentInput{Name: "Tasker"}))(t)

	// A TaskInput leaving optional fields unset is accepted (its generated
	// encoder used to send canonical_name "", which Julep refuses); set ones
	// are kept.
	plain := must(c.CreateTask(ctx, agent.Id, julep.TaskInput{Name: "plain", Main: steps(t, `{"return": {"v": "$ 0"}}`)}))(t)
	if len(plain.Id) != 36 || plain.Name != "plain" || len(plain.Main) != 1 || plain.CanonicalName != "" {
		t.Fatalf("created task %s", toJSON(plain))
	}
	named := must(c.CreateTask(ctx, agent.Id, &julep.TaskInput{Name: "named", CanonicalName: "named_task", Description: "d",
		InheritTools: true, Metadata: julep.Metadata{"v": 1}, Main: steps(t, `{"return": {"v": "$ 0"}}`)}))(t)
	if named.CanonicalName != "named_task" || named.Description != "d" || !named.InheritTools || toJSON(named.Metadata) != `{"v":1}` {
		t.Fatalf("created task with every field %s", toJSON(named))
	}

	const id = "7c9e1a3b-5d7f-4b2a-8c4e-6a8b0d2f4a6c"
	v1 := must(c.CreateOrUpdateTask(ctx, agent.Id, id, json.RawMessage(
		`{"name": "versioned", "input_schema": {"type": "object"}, "main": [{"return": {"v": "$ 1"}}]}`)))(t)
	// An execution started now runs version 1, even after version 2 exists.
	x1 := must(c.CreateExecution(ctx, id, nil, nil))(t)
	v2 := must(c.CreateOrUpdateTask(ctx, agent.Id, id, julep.YAML(
		"# comments are dropped\nname: versioned\ndescription: second\nmain:\n  - evaluate: {v: $ 2}\n  - return: {v: $ _.v}\n")))(t)
	if v1.Id != id || v2.Id != id || v2.Description != "second" || len(v2.Main) != 2 || !v2.CreatedAt.Equal(v1.CreatedAt) {
		t.Fatalf("versions %s then %s", toJSON(v1), toJSON(v2))
	}
	x2 := must(c.CreateExecution(ctx, id, nil, nil))(t)
	follow(t, c, x1.Id, "")
	follow(t, c, x2.Id, "")
	if out := must(c.GetExecution(ctx, x1.Id))(t).Output; toJSON(out) != `{"v":1}` {
		t.Fatalf("execution before the update: output %s, want version 1's", toJSON(out))
	}
	if out := must(c.GetExecution(ctx, x2.Id))(t).Output; toJSON(out) != `{"v":2}` {
		t.Fatalf("execution after the update: output %s, want version 2's", toJSON(out))
	}

	got := must(c.GetTask(ctx, id))(t)
	if got.Description != "second" || len(got.Main) != 2 || got.InputSchema != nil {
		t.Fatalf("get task (latest version) %s", toJSON(got))
	}
	list := must(c.ListTasks(ctx, agent.Id))(t)
	if len(list) != 3 || list[0].Id != plain.Id || list[1].Id != named.Id || list[2].Id != id || list[2].Description != "second" {
		t.Fatalf("ListTasks: one entry per task, latest version, oldest first: %s", toJSON(list))
	}
}

func TestEngineExecutionsLifecycle(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	_, taskID := agentWithTask(t, c, julep.TaskInput{Name: "greet",
		InputSchema: map[string]any{"type": "object", "required": []any{"name"}, "properties": map[string]any{"name": map[string]any{"type": "string"}}},
		Main: steps(t,
			`{"evaluate": {"greeting": "$ 'hello ' + _.name"}}`,
			`{"return": {"greeting": "$ _.greeting", "len": "$ len(_.greeting)"}}`)})

	var ids []string
	for i, name := range []string{"Ada", "Grace", "Linus"} {
		x := must(c.CreateExecution(ctx, taskID, map[string]any{"name": name}, map[string]any{"outbox_id": fmt.Sprintf("ob-%d", i), "try": i}))(t)
		// The create answer is queued, echoes the input, and carries the
		// server's {"jobs": [run id]} as metadata (FACTS 9;
		// create_task_execution.py: execution.metadata = {"jobs": [handle.id]}).
		if len(x.Id) != 36 || x.TaskId != taskID || x.Status != julep.StatusQueued || x.Input["name"] != name ||
			toJSON(x.Metadata) != `{"jobs":["`+x.Id+`"]}` || x.CreatedAt.IsZero() {
			t.Fatalf("created execution %s", toJSON(x))
		}
		ids = append(ids, x.Id)
	}

	evs := follow(t, c, ids[0], "")
	last := evs[len(evs)-1]
	if last.Status != julep.StatusSucceeded || last.ExecutionId != ids[0] || last.Metadata["outbox_id"] != "ob-0" {
		t.Fatalf("last status event %s", toJSON(last))
	}
	for i, ev := range evs {
		if i > 0 && (ev.TransitionCount <= evs[i-1].TransitionCount && ev.Status == evs[i-1].Status) {
			t.Fatalf("event %d repeats the one before: %s", i, toJSON(evs))
		}
		if i < len(evs)-1 && julep.IsTerminal(ev.Status) {
			t.Fatalf("a terminal status before the end: %s", toJSON(evs))
		}
	}

	x := must(c.GetExecution(ctx, ids[0]))(t)
	if x.Status != julep.StatusSucceeded || toJSON(x.Output) != `{"greeting":"hello Ada","len":9}` ||
		toJSON(x.Metadata) != `{"outbox_id":"ob-0","try":0}` || x.Error != "" || x.TransitionCount != last.TransitionCount {
		t.Fatalf("finished execution %s", toJSON(x))
	}
	trs := must(c.ListTransitions(ctx, x.Id))(t)
	if got := transitionTypes(trs); got != "init,step,finish" || len(trs) != x.TransitionCount {
		t.Fatalf("transitions %s (count %d)", got, x.TransitionCount)
	}
	if julep.StatusOfTransition(trs[len(trs)-1].Type) != x.Status {
		t.Fatalf("last transition %s does not lead to %s", trs[len(trs)-1].Type, x.Status)
	}
	if toJSON(trs[1].Output) != `{"greeting":"hello Ada"}` || trs[1].Current.Workflow != "main" || trs[1].Current.Step != 0 {
		t.Fatalf("step transition %s", toJSON(trs[1]))
	}

	// Newest first, a page at a time; each carries the metadata it was created with.
	for _, id := range ids[1:] {
		follow(t, c, id, "")
	}
	page1 := must(c.ListExecutions(ctx, taskID, 2, 0))(t)
	page2 := must(c.ListExecutions(ctx, taskID, 2, 2))(t)
	if len(page1) != 2 || len(page2) != 1 || page1[0].Id != ids[2] || page1[1].Id != ids[1] || page2[0].Id != ids[0] {
		t.Fatalf("ListExecutions pages %s / %s", toJSON(page1), toJSON(page2))
	}
	if page1[0].Metadata["outbox_id"] != "ob-2" || page2[0].Metadata["outbox_id"] != "ob-0" || page1[1].Status != julep.StatusSucceeded {
		t.Fatalf("listed executions lost their metadata: %s", toJSON(append(page1, page2...)))
	}
	all := must(c.ListAllTaskExecutions(ctx, taskID))(t)
	if len(all) != 3 || all[0].Id != ids[0] || all[2].Id != ids[2] || all[1].Metadata["outbox_id"] != "ob-1" {
		t.Fatalf("ListAllTaskExecutions, oldest first: %s", toJSON(all))
	}
}

func TestEngineTransitionsPageOldestFirst(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	// 105 steps make 107 transitions: more than one page of 100.
	const n = 105
	main := make([]string, 0, n)
	for i := range n - 1 {
		main = append(main, fmt.Sprintf(`{"evaluate": {"i": "$ %d"}}`, i))
	}
	main = append(main, `{"return": {"last": "$ _.i"}}`)
	_, taskID := agentWithTask(t, c, julep.TaskInput{Name: "long", Main: steps(t, main...)})
	x := must(c.CreateExecution(ctx, taskID, map[string]any{}, nil))(t)
	follow(t, c, x.Id, "")

	trs := must(c.ListTransitions(ctx, x.Id))(t)
	want := "init," + strings.Repeat("step,", n-1) + "finish"
	if got := transitionTypes(trs); got != want {
		t.Fatalf("%d transitions: %s", len(trs), got)
	}
	seen := map[string]bool{}
	for i, tr := range trs {
		if tr.ExecutionId != x.Id || seen[tr.Id] {
			t.Fatalf("transition %d: %s", i, toJSON(tr))
		}
		seen[tr.Id] = true
		if i > 0 && tr.CreatedAt.Before(trs[i-1].CreatedAt) {
			t.Fatalf("transition %d is older than the one before", i)
		}
		if tr.Type == "step" && (tr.Current.Step != i-1 || toJSON(tr.Output) != fmt.Sprintf(`{"i":%d}`, i-1)) {
			t.Fatalf("step transition %d: %s", i, toJSON(tr))
		}
	}
	if toJSON(trs[len(trs)-1].Output) != fmt.Sprintf(`{"last":%d}`, n-2) {
		t.Fatalf("finish transition %s", toJSON(trs[len(trs)-1]))
	}
	if got := must(c.GetExecution(ctx, x.Id))(t).TransitionCount; got != len(trs) {
		t.Fatalf("transition_count %d, listed %d", got, len(trs))
	}
}

func TestEngineStreamDeltas(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	_, taskID := agentWithTask(t, c, julep.TaskInput{Name: "talk",
		Main: steps(t, `{"prompt": "$ 'Tell me about ' + _.topic", "unwrap": true}`)})
	x := must(c.CreateExecution(ctx, taskID, map[string]any{"topic": "sea otters"}, nil))(t)

	var deltas []julep.Delta
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.StreamDeltas(sctx, x.Id, func(d julep.Delta) error {
		deltas = append(deltas, d)
		return nil
	}); err != nil {
		t.Fatalf("stream deltas: %v", err)
	}
	// The engine ends the stream only once the execution is terminal.
	done := must(c.GetExecution(ctx, x.Id))(t)
	reply, _ := done.Output.(string)
	if done.Status != julep.StatusSucceeded || !strings.HasPrefix(reply, "(offline model)") || !strings.HasSuffix(reply, "Tell me about sea otters") {
		t.Fatalf("execution %s", toJSON(done))
	}

	// The offline model streams word by word: one fragment per word, indexed
	// from 0, then an empty fragment marking the end of the prompt step.
	if len(deltas) < 2 || deltas[len(deltas)-1].Delta != "" {
		t.Fatalf("deltas %s", toJSON(deltas))
	}
	words := deltas[:len(deltas)-1]
	var text strings.Builder
	for i, d := range words {
		if d.Index != i || d.Delta == "" {
			t.Fatalf("delta %d: %s", i, toJSON(d))
		}
		text.WriteString(d.Delta)
	}
	if len(words) != len(strings.Fields(reply)) || text.String() != reply {
		t.Fatalf("%d fragments make %q; the output is %q", len(words), text.String(), reply)
	}
}

// Two prompt steps: every event of the stream, the end-of-step markers too,
// has its own index, so dropping repeats by index loses nothing.
func TestEngineStreamDeltasTwoPrompts(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	_, taskID := agentWithTask(t, c, julep.TaskInput{Name: "talk twice",
		Main: steps(t, `{"prompt": "first answer", "unwrap": true}`, `{"prompt": "second answer", "unwrap": true}`)})
	x := must(c.CreateExecution(ctx, taskID, map[string]any{}, nil))(t)
	var deltas []julep.Delta
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.StreamDeltas(sctx, x.Id, func(d julep.Delta) error { deltas = append(deltas, d); return nil }); err != nil {
		t.Fatalf("stream deltas: %v", err)
	}
	markers := 0
	var text strings.Builder
	for i, d := range deltas {
		if d.Index != i {
			t.Fatalf("event %d has index %d: %s", i, d.Index, toJSON(deltas))
		}
		if d.Delta == "" {
			markers++
		}
		text.WriteString(d.Delta)
	}
	if markers != 2 || !strings.Contains(text.String(), "first answer") || !strings.Contains(text.String(), "second answer") {
		t.Fatalf("%d end markers, text %q", markers, text.String())
	}
}

// waitTask asks for a name, then greets it.
const waitTask = `{"name": "ask", "main": [
	{"wait_for_input": {"info": {"question": "$ 'your name, ' + _.greeting + '?'"}}},
	{"return": {"hello": "$ 'hi ' + _.name"}}]}`

func TestEngineCancelWaitingExecution(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	_, taskID := agentWithTask(t, c, json.RawMessage(waitTask))
	x := must(c.CreateExecution(ctx, taskID, map[string]any{"greeting": "friend"}, nil))(t)
	follow(t, c, x.Id, julep.StatusAwaitingInput)

	if err := c.CancelExecution(ctx, x.Id, "no answer"); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	evs := follow(t, c, x.Id, "")
	if last := evs[len(evs)-1]; last.Status != julep.StatusCancelled {
		t.Fatalf("status events %s", toJSON(evs))
	}
	got := must(c.GetExecution(ctx, x.Id))(t)
	trs := must(c.ListTransitions(ctx, x.Id))(t)
	if got.Status != julep.StatusCancelled || transitionTypes(trs) != "init,wait,cancelled" ||
		toJSON(trs[2].Output) != `{"reason":"no answer"}` || julep.StatusOfTransition(trs[2].Type) != julep.StatusCancelled {
		t.Fatalf("cancelled execution %s, transitions %s", toJSON(got), toJSON(trs))
	}
	// A terminal execution cannot be cancelled again, nor resumed.
	err := c.CancelExecution(ctx, x.Id, "again")
	if ae := apiError(t, err); ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "already cancelled") {
		t.Fatalf("second cancel: %v", err)
	}
	err = c.ResumeExecution(ctx, x.Id, map[string]any{"name": "late"})
	if ae := apiError(t, err); ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "not awaiting_input") {
		t.Fatalf("resume after cancel: %v", err)
	}
}

func TestEngineResumeWaitingExecution(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	_, taskID := agentWithTask(t, c, json.RawMessage(waitTask))
	x := must(c.CreateExecution(ctx, taskID, map[string]any{"greeting": "friend"}, map[string]any{"k": "v"}))(t)
	evs := follow(t, c, x.Id, julep.StatusAwaitingInput)
	if ev := evs[len(evs)-1]; ev.Metadata["k"] != "v" || ev.TransitionCount != 2 {
		t.Fatalf("awaiting event %s", toJSON(ev))
	}
	trs := must(c.ListTransitions(ctx, x.Id))(t)
	// Julep v1's wait transition carries the evaluated info itself.
	if transitionTypes(trs) != "init,wait" || toJSON(trs[1].Output) != `{"question":"your name, friend?"}` {
		t.Fatalf("waiting transitions %s", toJSON(trs))
	}

	if err := c.ResumeExecution(ctx, x.Id, map[string]any{"name": "Ada"}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	follow(t, c, x.Id, "")
	got := must(c.GetExecution(ctx, x.Id))(t)
	trs = must(c.ListTransitions(ctx, x.Id))(t)
	if got.Status != julep.StatusSucceeded || toJSON(got.Output) != `{"hello":"hi Ada"}` {
		t.Fatalf("resumed execution %s", toJSON(got))
	}
	// No resume transition (Julep v1 writes none): the waiting step's own
	// transition carries the input.
	if types := transitionTypes(trs); !strings.HasPrefix(types, "init,wait,step,") || !strings.HasSuffix(types, ",finish") ||
		toJSON(trs[2].Output) != `{"name":"Ada"}` {
		t.Fatalf("transitions %s", toJSON(trs))
	}
}

func TestEngineUserDocs(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	user := must(c.CreateUser(ctx, julep.UserInput{Name: "Reader"}))(t)
	other := must(c.CreateUser(ctx, julep.UserInput{Name: "Someone else"}))(t)

	otters := must(c.CreateUserDoc(ctx, user.Id, julep.DocInput{Title: "Otters",
		Content: julep.TextContent("Otters hold hands while they sleep. Otters crack shells with rocks."), Metadata: julep.Metadata{"topic": "animals", "n": 1}}))(t)
	rivers := must(c.CreateUserDoc(ctx, user.Id, julep.DocInput{Title: "Rivers",
		Content: julep.TextContent("Rivers are home to fish, herons and a few otters."), Metadata: julep.Metadata{"topic": "animals", "n": 2}}))(t)
	kitchen := must(c.CreateUserDoc(ctx, user.Id, julep.DocInput{Title: "Kitchen notes",
		Content: julep.ChunkedContent("Pasta wants well salted water.", "Sourdough needs a lively starter."), Metadata: julep.Metadata{"topic": "food"}}))(t)
	must(c.CreateUserDoc(ctx, other.Id, julep.DocInput{Title: "Otters too", Content: julep.TextContent("otters otters otters")}))(t)
	if len(otters.Id) != 36 || otters.Title != "Otters" || otters.CreatedAt.IsZero() || otters.Metadata["topic"] != "animals" {
		t.Fatalf("created doc %s", toJSON(otters))
	}

	docs := must(c.ListUserDocs(ctx, user.Id, nil))(t)
	if len(docs) != 3 || docs[0].Id != otters.Id || docs[1].Id != rivers.Id || docs[2].Id != kitchen.Id {
		t.Fatalf("docs, oldest first: %s", toJSON(docs))
	}
	if got := julep.ContentText(docs[0].Content); got != "Otters hold hands while they sleep. Otters crack shells with rocks." {
		t.Fatalf("string content %q", got)
	}
	if chunks, err := docs[2].Content.AsDocContent1(); err != nil || !slices.Equal(chunks, []string{"Pasta wants well salted water.", "Sourdough needs a lively starter."}) {
		t.Fatalf("chunked content %s (%v)", toJSON(docs[2].Content), err)
	}
	// List filters compare text: the number 2 matches "2".
	if f := must(c.ListUserDocs(ctx, user.Id, map[string]string{"topic": "animals", "n": "2"}))(t); len(f) != 1 || f[0].Id != rivers.Id {
		t.Fatalf("topic=animals & n=2: %s", toJSON(f))
	}

	// Search ranks the doc that says "otters" most first, and only this user's.
	res := must(c.SearchUserDocs(ctx, user.Id, julep.DocSearchRequest{Text: "otters", Limit: 10}))(t)
	if len(res.Docs) != 2 || res.Docs[0].Id != otters.Id || res.Docs[1].Id != rivers.Id {
		t.Fatalf("search otters: %s", toJSON(res))
	}
	d0, d1 := res.Docs[0], res.Docs[1]
	if d0.Distance == nil || d1.Distance == nil || *d0.Distance >= *d1.Distance || d0.Owner.Id != user.Id ||
		d0.Title != "Otters" || d0.Metadata["n"] != float64(1) || !strings.Contains(d0.Snippet.Content, "hold hands") {
		t.Fatalf("search hits %s", toJSON(res.Docs))
	}
	// The hit of a chunked doc is its best chunk.
	res = must(c.SearchUserDocs(ctx, user.Id, julep.DocSearchRequest{Text: "sourdough starter"}))(t)
	if len(res.Docs) != 1 || res.Docs[0].Id != kitchen.Id || res.Docs[0].Snippet.Index != 1 || res.Docs[0].Snippet.Content != "Sourdough needs a lively starter." {
		t.Fatalf("search sourdough: %s", toJSON(res))
	}
	// In the search body the filter is JSON containment: types count.
	if res = must(c.SearchUserDocs(ctx, user.Id, julep.DocSearchRequest{Text: "otters", MetadataFilter: map[string]any{"n": 2}}))(t); len(res.Docs) != 1 || res.Docs[0].Id != rivers.Id {
		t.Fatalf("search otters n=2: %s", toJSON(res))
	}
	if res = must(c.SearchUserDocs(ctx, user.Id, julep.DocSearchRequest{Text: "otters", MetadataFilter: map[string]any{"n": "2"}}))(t); len(res.Docs) != 0 {
		t.Fatalf(`search otters n="2": %s`, toJSON(res))
	}
	if res = must(c.SearchUserDocs(ctx, user.Id, julep.DocSearchRequest{Text: "otters", Limit: 1}))(t); len(res.Docs) != 1 || res.Docs[0].Id != otters.Id {
		t.Fatalf("search limit 1: %s", toJSON(res))
	}

	// Delete: gone from list and search; deleting again, or through the
	// wrong user, is a 404.
	if err := c.DeleteUserDoc(ctx, other.Id, otters.Id); !julep.IsNotFound(err) {
		t.Fatalf("delete through another user: %v", err)
	}
	if err := c.DeleteUserDoc(ctx, user.Id, otters.Id); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := c.DeleteUserDoc(ctx, user.Id, otters.Id); !julep.IsNotFound(err) {
		t.Fatalf("delete again: %v", err)
	}
	docs = must(c.ListUserDocs(ctx, user.Id, nil))(t)
	if len(docs) != 2 || docs[0].Id != rivers.Id {
		t.Fatalf("docs after delete %s", toJSON(docs))
	}
	if res = must(c.SearchUserDocs(ctx, user.Id, julep.DocSearchRequest{Text: "otters"}))(t); len(res.Docs) != 1 || res.Docs[0].Id != rivers.Id {
		t.Fatalf("search after delete %s", toJSON(res))
	}
}

func TestEngineSecrets(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	if s := must(c.ListSecrets(ctx))(t); len(s) != 0 {
		t.Fatalf("fresh engine has secrets %s", toJSON(s))
	}
	s := must(c.CreateSecret(ctx, julep.SecretInput{Name: "TTS_URL", Value: "http://tts.local", Description: "speech", Metadata: julep.Metadata{"env": "dev"}}))(t)
	if len(s.Id) != 36 || s.Name != "TTS_URL" || s.Description != "speech" || s.Metadata["env"] != "dev" || s.CreatedAt.IsZero() {
		t.Fatalf("created secret %s", toJSON(s))
	}
	other := must(c.CreateSecret(ctx, julep.SecretInput{Name: "OTHER", Value: "x"}))(t)

	_, err := c.CreateSecret(ctx, julep.SecretInput{Name: "TTS_URL", Value: "again"})
	if ae := apiError(t, err); ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "TTS_URL") {
		t.Fatalf("duplicate name: %v", err)
	}

	up := must(c.UpdateSecret(ctx, s.Id, julep.SecretInput{Name: "TTS_URL", Value: "http://tts2.local", Description: "speech v2"}))(t)
	if up.Id != s.Id || up.Description != "speech v2" || !up.CreatedAt.Equal(s.CreatedAt) {
		t.Fatalf("updated secret %s", toJSON(up))
	}
	// Renaming onto another secret's name is a conflict too.
	_, err = c.UpdateSecret(ctx, s.Id, julep.SecretInput{Name: "OTHER", Value: "v"})
	if ae := apiError(t, err); ae.Status != http.StatusConflict {
		t.Fatalf("rename onto OTHER: %v", err)
	}

	// The list's order is the server's (the route takes no sort): compare by id.
	list := must(c.ListSecrets(ctx))(t)
	byID := map[string]julep.Secret{}
	for _, x := range list {
		byID[x.Id] = x
	}
	if len(list) != 2 || byID[s.Id].Description != "speech v2" || byID[s.Id].Name != "TTS_URL" || byID[other.Id].Name != "OTHER" {
		t.Fatalf("secrets %s", toJSON(list))
	}
	if err := c.DeleteSecret(ctx, s.Id); err != nil {
		t.Fatalf("delete secret: %v", err)
	}
	if err := c.DeleteSecret(ctx, s.Id); !julep.IsNotFound(err) {
		t.Fatalf("delete again: %v", err)
	}
	if _, err := c.UpdateSecret(ctx, s.Id, julep.SecretInput{Name: "TTS_URL", Value: "v"}); !julep.IsNotFound(err) {
		t.Fatalf("update deleted secret: %v", err)
	}
	if list = must(c.ListSecrets(ctx))(t); len(list) != 1 || list[0].Id != other.Id {
		t.Fatalf("secrets after delete %s", toJSON(list))
	}
}

func TestEngineErrors(t *testing.T) {
	t.Parallel()
	srv := newEngine(t)
	c, ctx := srv.client(t, engineKey), t.Context()
	agent := must(c.CreateAgent(ctx, julep.AgentInput{Name: "Strict"}))(t)

	t.Run("unknown ids are not found", func(t *testing.T) {
		const missing = "9f8e7d6c-5b4a-4392-8a1b-0c9d8e7f6a5b"
		checks := map[string]error{}
		_, checks["GetUser"] = c.GetUser(ctx, missing)
		_, checks["GetAgent"] = c.GetAgent(ctx, missing)
		_, checks["GetTask"] = c.GetTask(ctx, missing)
		_, checks["GetExecution"] = c.GetExecution(ctx, missing)
		_, checks["ListTasks"] = c.ListTasks(ctx, missing)
		_, checks["ListTransitions"] = c.ListTransitions(ctx, missing)
		_, checks["ListExecutions"] = c.ListExecutions(ctx, missing, 10, 0)
		_, checks["ListAllTaskExecutions"] = c.ListAllTaskExecutions(ctx, missing)
		_, checks["CreateExecution"] = c.CreateExecution(ctx, missing, map[string]any{}, nil)
		_, checks["CreateTask"] = c.CreateTask(ctx, missing, julep.TaskInput{Name: "t", Main: steps(t, `{"return": {"a": "$ 1"}}`)})
		_, checks["CreateUserDoc"] = c.CreateUserDoc(ctx, missing, julep.DocInput{Title: "t", Content: julep.TextContent("x")})
		_, checks["ListUserDocs"] = c.ListUserDocs(ctx, missing, nil)
		_, checks["SearchUserDocs"] = c.SearchUserDocs(ctx, missing, julep.DocSearchRequest{Text: "x"})
		_, checks["UpdateSecret"] = c.UpdateSecret(ctx, missing, julep.SecretInput{Name: "N", Value: "v"})
		checks["CancelExecution"] = c.CancelExecution(ctx, missing, "")
		checks["ResumeExecution"] = c.ResumeExecution(ctx, missing, nil)
		checks["DeleteSecret"] = c.DeleteSecret(ctx, missing)
		for op, err := range checks {
			if !julep.IsNotFound(err) || !strings.Contains(err.Error(), "not found") {
				t.Errorf("%s: want a 404 with the engine's message, got %v", op, err)
			}
		}
		// Streams of an unknown execution answer 404 too, which the client
		// reports as "no such stream" (still a 404 underneath).
		for name, err := range map[string]error{
			"StreamStatus": c.StreamStatus(ctx, missing, func(julep.StatusEvent) error { return nil }),
			"StreamDeltas": c.StreamDeltas(ctx, missing, func(julep.Delta) error { return nil }),
		} {
			if !errors.Is(err, julep.ErrNotSupported) || !julep.IsNotFound(err) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})

	t.Run("a malformed id is a validation error", func(t *testing.T) {
		_, err := c.GetExecution(ctx, "not-a-uuid")
		ae := apiError(t, err)
		if ae.Status != http.StatusUnprocessableEntity || ae.Code != "validation_error" || !strings.Contains(ae.Message, "not a valid UUID") || len(ae.Details) == 0 {
			t.Fatalf("bad id: %+v", ae)
		}
	})

	t.Run("an invalid task is a 422 (malformed shape) naming its issues", func(t *testing.T) {
		// Julep's request model refuses a malformed step with 422.
		_, err := c.CreateTask(ctx, agent.Id, json.RawMessage(`{"name": "bad", "main": [{"dance": "now"}, {"tool": "nope", "arguments": {}}]}`))
		ae := apiError(t, err)
		if ae.Status != http.StatusUnprocessableEntity || ae.Transient() || !strings.HasPrefix(ae.Message, "Invalid task: ") ||
			!strings.Contains(ae.Message, "main[0]") || !strings.Contains(ae.Message, "main[1]") {
			t.Fatalf("invalid task: %+v", ae)
		}
		var issues []struct{ Location, Message, Severity, Type string }
		if err := json.Unmarshal(ae.Details, &issues); err != nil || len(issues) < 2 || issues[0].Location == "" || issues[0].Message == "" {
			t.Fatalf("issues %s (%v)", ae.Details, err)
		}
		_, err = c.CreateOrUpdateTask(ctx, agent.Id, "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e", julep.YAML("name: no steps\nmain: []\n"))
		if ae := apiError(t, err); ae.Status != http.StatusUnprocessableEntity || !strings.Contains(ae.Message, "main") {
			t.Fatalf("task without steps: %+v", ae)
		}
		if _, err := c.GetTask(ctx, "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"); !julep.IsNotFound(err) {
			t.Fatalf("a refused task was stored: %v", err)
		}
	})

	t.Run("input failing the input_schema is refused readably", func(t *testing.T) {
		task := must(c.CreateTask(ctx, agent.Id, julep.TaskInput{Name: "typed",
			InputSchema: map[string]any{"type": "object", "required": []any{"age"}, "properties": map[string]any{"age": map[string]any{"type": "integer", "minimum": 0}}},
			Main:        steps(t, `{"return": {"age": "$ _.age"}}`)}))(t)
		_, err := c.CreateExecution(ctx, task.Id, map[string]any{"age": "old"}, nil)
		ae := apiError(t, err)
		if ae.Status/100 != 4 || ae.Transient() || !strings.Contains(ae.Message, "/age") || !strings.Contains(ae.Message, "integer") {
			t.Fatalf("wrong type: %+v", ae)
		}
		_, err = c.CreateExecution(ctx, task.Id, map[string]any{}, nil)
		if ae := apiError(t, err); ae.Status/100 != 4 || !strings.Contains(ae.Message, "age") {
			t.Fatalf("missing property: %+v", ae)
		}
		if xs := must(c.ListAllTaskExecutions(ctx, task.Id))(t); len(xs) != 0 {
			t.Fatalf("refused input started executions: %s", toJSON(xs))
		}
	})

	t.Run("a wrong key is a 403 with the engine's message", func(t *testing.T) {
		for name, bad := range map[string]*julep.Client{
			"bearer":     srv.client(t, "sk-wrong"),
			"x-auth-key": srv.client(t, "sk-wrong", julep.WithAuthHeader("X-Auth-Key")),
			"no key":     srv.client(t, ""),
		} {
			_, err := bad.ListUsers(ctx, nil)
			ae := apiError(t, err)
			if ae.Status != http.StatusForbidden || ae.Message != "Invalid API key" || ae.Code != "http_403" || ae.Type != "http_error" || julep.IsTransient(err) {
				t.Errorf("%s: %+v", name, ae)
			}
			// A stream refused for auth is an error, not "no stream".
			err = bad.StreamStatus(ctx, agent.Id, func(julep.StatusEvent) error { return nil })
			if errors.Is(err, julep.ErrNotSupported) || julep.StatusCode(err) != http.StatusForbidden {
				t.Errorf("%s stream: %v", name, err)
			}
		}
	})
}

func TestEngineAuthHeaderVariants(t *testing.T) {
	t.Parallel()
	srv := newEngine(t)
	ctx := t.Context()
	for name, c := range map[string]*julep.Client{
		"Authorization: Bearer": srv.client(t, engineKey),
		"X-Auth-Key":            srv.client(t, engineKey, julep.WithAuthHeader("X-Auth-Key")),
		"lower-case header":     srv.client(t, engineKey, julep.WithAuthHeader("x-auth-key")),
	} {
		u, err := c.CreateUser(ctx, julep.UserInput{Name: name})
		if err != nil {
			t.Fatalf("%s: create: %v", name, err)
		}
		if got, err := c.GetUser(ctx, u.Id); err != nil || got.Name != name {
			t.Fatalf("%s: get: %v %v", name, got, err)
		}
	}
	// All three wrote to the same engine.
	if users := must(srv.client(t, engineKey).ListUsers(ctx, nil))(t); len(users) != 3 {
		t.Fatalf("users %s", toJSON(users))
	}
}

// The engine sends a terminal status alone when asked, with the result in
// it (an Astra extension): the same output, error and times GetExecution gives.
func TestEngineAwaitTerminalCarriesTheResult(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	_, okTask := agentWithTask(t, c, julep.TaskInput{Name: "ok", Main: steps(t,
		`{"evaluate": {"a": "$ 1 + 1"}}`,
		`{"evaluate": {"b": "$ _.a * 10"}}`,
		`{"return": {"b": "$ _.b"}}`)})
	_, badTask := agentWithTask(t, c, julep.TaskInput{Name: "bad", Main: steps(t,
		`{"evaluate": {"a": "$ 1 // 0"}}`)})
	for _, tc := range []struct {
		task   string
		status julep.ExecutionStatus
	}{{okTask, julep.StatusSucceeded}, {badTask, julep.StatusFailed}} {
		x := must(c.CreateExecution(ctx, tc.task, map[string]any{}, map[string]any{"outbox_id": "ob"}))(t)
		ev, err := c.AwaitTerminal(ctx, x.Id)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := julep.ExecutionFromStatus(ev)
		if !ok {
			t.Fatalf("terminal event without the result: %s", toJSON(ev))
		}
		want := must(c.GetExecution(ctx, x.Id))(t)
		if got.Status != tc.status || got.Status != want.Status || got.Id != x.Id ||
			toJSON(got.Output) != toJSON(want.Output) || got.Error != want.Error ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) ||
			got.TransitionCount != want.TransitionCount || got.Metadata["outbox_id"] != "ob" {
			t.Fatalf("from the event %s, from GET %s", toJSON(got), toJSON(want))
		}
		if tc.status == julep.StatusSucceeded && toJSON(got.Output) != `{"b":20}` {
			t.Fatalf("output %s", toJSON(got.Output))
		}
		if tc.status == julep.StatusFailed && got.Error == "" {
			t.Fatalf("failed without an error: %s", toJSON(got))
		}
	}
}

// Only a terminal event carries the result; the plain stream still sends
// every status change.
func TestEngineStatusEventsBeforeTheEndCarryNoResult(t *testing.T) {
	t.Parallel()
	c, ctx := newClient(t), t.Context()
	_, taskID := agentWithTask(t, c, julep.TaskInput{Name: "ok", Main: steps(t,
		`{"evaluate": {"a": "$ 1"}}`, `{"return": {"a": "$ _.a"}}`)})
	x := must(c.CreateExecution(ctx, taskID, map[string]any{}, nil))(t)
	evs := follow(t, c, x.Id, "")
	for i, ev := range evs {
		_, ok := julep.ExecutionFromStatus(ev)
		if last := i == len(evs)-1; ok != last {
			t.Fatalf("event %d of %d: result present %v: %s", i, len(evs), ok, toJSON(evs))
		}
	}
}
