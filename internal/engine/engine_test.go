package engine_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/llm"
)

func TestControlFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := e.agent(nil)
	task := e.task(agent, map[string]any{
		"name": "control flow",
		"input_schema": map[string]any{"type": "object", "required": []any{"n"},
			"properties": map[string]any{"n": map[string]any{"type": "integer"}}},
		"main": []any{
			map[string]any{"label": "nums", "evaluate": map[string]any{"xs": "$ list(range(_.n))"}},
			map[string]any{"foreach": map[string]any{"in": "$ _.xs", "do": map[string]any{"evaluate": map[string]any{"sq": "$ _ * _"}}}},
			map[string]any{"over": "$ steps['nums'].output.xs", "map": map[string]any{"evaluate": map[string]any{"v": "$ _ + 1"}},
				"reduce": "$ results + _.v", "initial": "$ 0", "parallelism": 3},
			map[string]any{"set": map[string]any{"total": "$ _"}},
			map[string]any{"parallel": []any{
				map[string]any{"evaluate": map[string]any{"a": "$ 'left'"}},
				map[string]any{"evaluate": map[string]any{"b": "$ 'right'"}},
			}},
			map[string]any{"switch": []any{
				map[string]any{"case": "$ state.total > 1000", "then": map[string]any{"evaluate": map[string]any{"size": "$ 'big'"}}},
				map[string]any{"case": "_", "then": map[string]any{"evaluate": map[string]any{"size": "$ 'small'"}}},
			}},
			map[string]any{"if": "$ _.size == 'small'", "then": map[string]any{"workflow": "double", "arguments": map[string]any{"x": "$ state.total"}},
				"else": map[string]any{"error": "not small"}},
			map[string]any{"label": "got", "get": "total"},
			map[string]any{"log": "total is {_}"},
			map[string]any{"return": map[string]any{
				"squares": "$ [s['sq'] for s in steps[1].output]", "total": "$ steps['got'].output",
				"doubled": "$ steps[6].output", "sides": "$ steps[4].output", "logged": "$ _",
				"first_input": "$ inputs[0]['n']",
			}},
			map[string]any{"error": "never reached"},
		},
		"double": []any{
			map[string]any{"evaluate": map[string]any{"y": "$ _.x * 2"}},
			map[string]any{"return": map[string]any{"y": "$ _.y"}},
		},
	})
	x := e.run(task, map[string]any{"n": 4})
	out := succeeded(t, x)
	// "logged" is the log step's input: Julep's LogStep outputs its input.
	want := `{"doubled":{"y":20},"first_input":4,"logged":10,"sides":[{"a":"left"},{"b":"right"}],"squares":[0,1,4,9],"total":10}`
	if got := jsonString(out); got != want {
		t.Fatalf("output\n got %s\nwant %s", got, want)
	}
	trs := e.transitions(x["id"].(string))
	// Julep runs every branch as a child workflow with init_branch and
	// finish_branch (helpers.py): the 4 foreach items, the 4 map items (in
	// parallel, so their order varies), the switch case, and the if branch
	// with the workflow it calls. Around them, the main steps' transitions.
	got := types(trs)
	if n := strings.Count(got, "init_branch"); n != 11 || strings.Count(got, "finish_branch") != 11 {
		t.Fatalf("transitions %s: %d init_branch, want 11", got, n)
	}
	var main []string
	for _, tp := range strings.Split(got, ",") {
		if tp != "init_branch" && tp != "finish_branch" {
			main = append(main, tp)
		}
	}
	if strings.Join(main, ",") != "init,step,step,step,step,step,step,step,step,step,finish" {
		t.Fatalf("transitions %s", got)
	}

	if x["transition_count"].(float64) != float64(len(trs)) {
		t.Fatalf("transition_count %v, %d transitions", x["transition_count"], len(trs))
	}
	if trs[1]["step_label"] != "nums" || jsonString(trs[3]["current"]) != `{"scope_id":"`+x["id"].(string)+`","step":0,"workflow":"`+"`main`"+`[1].foreach[0]"}` {
		t.Fatalf("transition 1 = %v, 2 = %v", trs[1], trs[2])
	}
	if trs[len(trs)-1]["next"] != nil {
		t.Fatalf("finish has next %v", trs[len(trs)-1]["next"])
	}
}

func TestStepErrorNamesTheStep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(e.agent(nil), map[string]any{"name": "boom", "main": []any{
		map[string]any{"evaluate": map[string]any{"a": "$ 1"}},
		map[string]any{"label": "divide", "evaluate": map[string]any{"b": "$ 1 / 0"}},
	}})
	x := e.run(task, map[string]any{})
	msg, _ := x["error"].(string)
	if x["status"] != "failed" || !strings.Contains(msg, `"main"`) || !strings.Contains(msg, `1 ("divide")`) {
		t.Fatalf("status %v error %q", x["status"], msg)
	}
	trs := e.transitions(x["id"].(string))
	if got := types(trs); got != "init,step,error" {
		t.Fatalf("transitions %s", got)
	}
}

func TestMalformedTaskRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := e.agent(nil)
	status, v := e.do("POST", "/agents/"+agent+"/tasks", map[string]any{"name": "bad", "main": []any{
		map[string]any{"evaluate": map[string]any{"x": "$ 1 +"}},
		map[string]any{"tool": "missing"},
		map[string]any{"frobnicate": 1},
	}})
	// A malformed step shape makes it 422, as Julep's request model refuses
	// it before any other check; every issue is still listed.
	if status != 422 {
		t.Fatalf("status %d: %v", status, v)
	}
	errObj := v.(map[string]any)["error"].(map[string]any)
	details := jsonString(errObj["details"])
	for _, want := range []string{`"location":"main[0].evaluate.x"`, `"location":"main[1].tool"`, `"location":"main[2].frobnicate"`, `"severity":"error"`} {
		if !strings.Contains(details, want) {
			t.Errorf("details lack %s: %s", want, details)
		}
	}
	if errObj["code"] != "validation_error" || !strings.Contains(errObj["message"].(string), "main[1].tool") {
		t.Errorf("error %v", errObj)
	}
	// The client surfaces the same.
	_, err := e.client.CreateTask(t.Context(), agent, json.RawMessage(`{"name":"x","main":[]}`))
	var ae *julep.APIError
	if !errorsAs(err, &ae) || ae.Status != 422 || !strings.Contains(ae.Message, "main") {
		t.Fatalf("client error %v", err)
	}
}

func TestInputValidatedAgainstSchema(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(e.agent(nil), map[string]any{"name": "schema",
		"input_schema": map[string]any{"type": "object", "required": []any{"topic"},
			"properties": map[string]any{"topic": map[string]any{"type": "string"}}},
		"main": []any{map[string]any{"return": map[string]any{"t": "$ _.topic"}}}})
	status, v := e.do("POST", "/tasks/"+task+"/executions", map[string]any{"input": map[string]any{"topic": 3}})
	if status != 400 || !strings.Contains(jsonString(v), "/topic") {
		t.Fatalf("status %d %v", status, v)
	}
	status, v = e.do("POST", "/tasks/"+task+"/executions", map[string]any{"metadata": map[string]any{}})
	if status != 422 || !strings.Contains(jsonString(v), "input") {
		t.Fatalf("status %d %v", status, v)
	}
}

func TestRestartResumesFromLastCompletedStep(t *testing.T) {
	t.Parallel()
	// With a secret in step 0's output, the checkpoint cannot refer to the
	// (redacted) transition for it: the resumed step must still see the value.
	for _, secret := range []string{"", "sk-restart-secret"} {
		t.Run(fmt.Sprintf("secret=%t", secret != ""), func(t *testing.T) {
			t.Parallel()
			testRestartResumes(t, secret)
		})
	}
}

func testRestartResumes(t *testing.T, secret string) {
	// The model blocks on its first request, so the engine is closed while
	// step 1 runs; the second engine must not redo step 0.
	var (
		mu       sync.Mutex
		calls    int
		lastBody string
		released = make(chan struct{})
		entered  = make(chan struct{}, 1)
	)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		mu.Lock()
		calls++
		n := calls
		lastBody = string(body)
		mu.Unlock()
		if n == 1 {
			entered <- struct{}{}
			select {
			case <-released:
			case <-r.Context().Done():
				return
			}
		}
		writeCompletion(w, r, "resumed answer")
	}))
	t.Cleanup(model.Close)
	t.Cleanup(func() { close(released) })
	m := llm.NewOpenAI(model.URL, "k", "test-model", nil)
	opts := []envOption{withModel(m)}
	if secret != "" {
		opts = append(opts, withSecrets(map[string]string{"K": secret}))
	}

	e1 := newEnv(t, opts...)
	task := e1.task(e1.agent(nil), map[string]any{"name": "restart", "main": []any{
		map[string]any{"evaluate": map[string]any{"who": "$ _.who", "key": "$ secrets.get('K', 'none')"}},
		map[string]any{"prompt": "$ 'hello ' + _.who + ' ' + _.key", "unwrap": true},
		map[string]any{"return": map[string]any{"answer": "$ _", "first": "$ steps[0].output.who", "input": "$ steps[0].input.who"}},
	}})
	id := e1.start(task, map[string]any{"who": "ada"})
	<-entered
	e1.stop()
	x, err := e1.state.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != "running" && x.Status != "starting" {
		t.Fatalf("after close: status %s", x.Status)
	}

	e2 := startEnv(t, e1.store, opts...)
	out := succeeded(t, e2.wait(id))
	if out["answer"] != "resumed answer" || out["first"] != "ada" || out["input"] != "ada" {
		t.Fatalf("output %v", out)
	}
	mu.Lock()
	sent := lastBody
	mu.Unlock()
	if want := "hello ada " + cmp.Or(secret, "none"); !strings.Contains(sent, want) {
		t.Fatalf("the resumed prompt lost step 0's output: want %q in %s", want, sent)
	}
	trs := e2.transitions(id)
	if got := types(trs); got != "init,step,step,finish" {
		t.Fatalf("transitions %s", got)
	}
	for i, tr := range trs {
		if int(tr["current"].(map[string]any)["step"].(float64)) != max(i-1, 0) {
			t.Fatalf("transition %d at %v", i, tr["current"])
		}
	}
	if secret != "" && strings.Contains(jsonString(trs), secret) {
		t.Fatalf("secret in transitions: %s", jsonString(trs))
	}
}

// writeCompletion answers an OpenAI chat completion, streamed or not.
func writeCompletion(w http.ResponseWriter, r *http.Request, content string) {
	var req struct {
		Stream bool `json:"stream"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"test-model","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%q}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, content)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, word := range strings.SplitAfter(content, " ") {
		fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"test-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word)
		w.(http.Flusher).Flush()
	}
	fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"test-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(e.agent(nil), map[string]any{"name": "slow", "main": []any{
		map[string]any{"evaluate": map[string]any{"a": "$ 1"}},
		map[string]any{"sleep": map[string]any{"minutes": 4}},
		map[string]any{"return": map[string]any{"a": "$ 1"}},
	}})
	id := e.start(task, map[string]any{})
	e.wait(id, "running")
	if err := e.client.CancelExecution(t.Context(), id, "changed my mind"); err != nil {
		t.Fatal(err)
	}
	x := e.wait(id)
	if x["status"] != "cancelled" {
		t.Fatalf("status %v", x["status"])
	}
	trs := e.transitions(id)
	last := trs[len(trs)-1]
	if last["type"] != "cancelled" || jsonString(last["output"]) != `{"reason":"changed my mind"}` {
		t.Fatalf("last transition %v", last)
	}
	// Cancelling again is refused; PUT answers null on success (checked raw).
	if status, _ := e.do("PUT", "/executions/"+id, map[string]any{"status": "cancelled"}); status != 400 {
		t.Fatalf("second cancel: %d", status)
	}
}

func TestWaitForInputResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(e.agent(nil), map[string]any{"name": "ask", "main": []any{
		map[string]any{"evaluate": map[string]any{"q": "$ 'name?'"}},
		map[string]any{"if": "$ True", "then": map[string]any{"wait_for_input": map[string]any{"info": map[string]any{"question": "$ _.q"}}}},
		map[string]any{"return": map[string]any{"hello": "$ 'hi ' + _.name"}},
	}})
	id := e.start(task, map[string]any{})
	x := e.wait(id, "awaiting_input")
	if x["status"] != "awaiting_input" {
		t.Fatalf("status %v (%v)", x["status"], x["error"])
	}
	trs := e.transitions(id)
	// Julep's wait transition carries the evaluated info itself
	// (raise_complete_async.py).
	if last := trs[len(trs)-1]; last["type"] != "wait" || jsonString(last["output"]) != `{"question":"name?"}` {
		t.Fatalf("wait transition %v", last)
	}
	status, v := e.do("PUT", "/executions/"+id, map[string]any{"status": "running", "input": map[string]any{"name": "Ada"}})
	if status != 200 || v != nil {
		t.Fatalf("resume: %d %v", status, v)
	}
	out := succeeded(t, e.wait(id))
	if out["hello"] != "hi Ada" {
		t.Fatalf("output %v", out)
	}
	// No resume transition (Julep writes none); the if's branch
	// transitions are written with the step once it completes.
	if got := types(e.transitions(id)); got != "init,step,wait,init_branch,finish_branch,step,finish" {
		t.Fatalf("transitions %s", got)
	}
}

func TestFunctionToolPausesUntilResumed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(e.agent(nil), map[string]any{"name": "fn",
		"tools": []any{map[string]any{"name": "lookup", "type": "function", "function": map[string]any{"parameters": map[string]any{"type": "object"}}}},
		"main": []any{
			map[string]any{"tool": "lookup", "arguments": map[string]any{"q": "$ _.q"}},
			map[string]any{"return": map[string]any{"got": "$ _.answer"}},
		}})
	id := e.start(task, map[string]any{"q": "weather"})
	if x := e.wait(id, "awaiting_input"); x["status"] != "awaiting_input" {
		t.Fatalf("status %v (%v)", x["status"], x["error"])
	}
	trs := e.transitions(id)
	if w := jsonString(trs[len(trs)-1]["output"]); !strings.Contains(w, `"name":"lookup"`) || !strings.Contains(w, `"q":"weather"`) {
		t.Fatalf("wait output %s", w)
	}
	if err := e.client.ResumeExecution(t.Context(), id, map[string]any{"answer": "sunny"}); err != nil {
		t.Fatal(err)
	}
	if out := succeeded(t, e.wait(id)); out["got"] != "sunny" {
		t.Fatalf("output %v", out)
	}
}

func TestSecretsNeverStored(t *testing.T) {
	t.Parallel()
	const secret = "sk-very-secret-value"
	e := newEnv(t, withSecrets(map[string]string{"API_KEY": secret}))
	task := e.task(e.agent(nil), map[string]any{"name": "secret", "main": []any{
		map[string]any{"evaluate": map[string]any{"header": "$ 'Bearer ' + secrets.API_KEY"}},
		map[string]any{"log": "using {secrets.API_KEY}"},
		map[string]any{"error": "$ 'failed with ' + secrets['API_KEY']"},
	}})
	x := e.run(task, map[string]any{})
	if x["status"] != "failed" {
		t.Fatalf("status %v", x["status"])
	}
	all := jsonString(x) + jsonString(e.transitions(x["id"].(string)))
	if strings.Contains(all, secret) {
		t.Fatalf("secret leaked: %s", all)
	}
	if !strings.Contains(all, "[redacted]") {
		t.Fatalf("no redaction marker: %s", all)
	}
	// The secrets routes list the seeded secret.
	list, err := e.client.ListSecrets(t.Context())
	if err != nil || len(list) != 1 || list[0].Name != "API_KEY" {
		t.Fatalf("secrets %v %v", list, err)
	}
}

func errorsAs(err error, target **julep.APIError) bool {
	return err != nil && asAPIError(err, target)
}

var _ = context.Background
var _ = os.Getenv
