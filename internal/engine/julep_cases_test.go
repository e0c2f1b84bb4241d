package engine_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// julepCase is one task run end to end on the embedded engine. Each case's
// expected value is read off Julep v1's code (commit 5371a620), named in
// from: the workflow (workflows/task_execution/__init__.py, helpers.py,
// transition.py), the step context (common/protocol/tasks.py
// prepare_for_step), the evaluator (common/utils/evaluator.py, simpleeval
// 1.0.3 under Python 3.12: values computed by Python), or the create-time
// validator (common/utils/task_validation.py).
type julepCase struct {
	name  string
	from  string
	main  []any
	extra map[string]any // other workflows
	input map[string]any
	// want is the execution's output as JSON; types, if set, the
	// transitions' types joined by commas.
	want  string
	types string
}

func ev(exprs ...string) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(exprs); i += 2 {
		m[exprs[i]] = exprs[i+1]
	}
	return map[string]any{"evaluate": m}
}

func ret(exprs ...string) map[string]any {
	return map[string]any{"return": ev(exprs...)["evaluate"]}
}

var julepCases = []julepCase{
	{name: "log outputs its input", from: "__init__.py _handle_LogStep: output=context.current_input",
		main: []any{ev("x", "$ 1"), map[string]any{"log": "x is {_.x}"}}, want: `{"x":1}`, types: "init,step,finish"},
	{name: "if without else, false", from: "helpers.py execute_if_else_branch: EvaluateStep(evaluate={'output': '_'})",
		main: []any{ev("x", "$ 1"), map[string]any{"if": "$ _.x > 5", "then": ev("big", "$ True")}},
		want: `{"output":{"x":1}}`, types: "init,step,init_branch,finish_branch,finish"},
	{name: "if true writes branch transitions", from: "helpers.py execute_if_else_branch + __init__.py run: init_branch/finish_branch",
		main: []any{map[string]any{"if": "$ True", "then": ev("a", "$ 1")}}, want: `{"a":1}`, types: "init,init_branch,finish_branch,finish"},
	{name: "if else branch", from: "helpers.py execute_if_else_branch",
		main: []any{map[string]any{"if": "$ False", "then": ev("a", "$ 1"), "else": ev("b", "$ 2")}}, want: `{"b":2}`, types: "init,init_branch,finish_branch,finish"},
	{name: "foreach over a string", from: "helpers.py execute_foreach_step: for i, item in enumerate(items)",
		main: []any{map[string]any{"foreach": map[string]any{"in": "$ 'abc'", "do": ev("c", "$ _.upper()")}}},
		want: `[{"c":"A"},{"c":"B"},{"c":"C"}]`},
	{name: "foreach over a non-ASCII string", from: "helpers.py execute_foreach_step (Python iterates code points)",
		main: []any{map[string]any{"foreach": map[string]any{"in": "$ 'hé'", "do": ev("c", "$ _")}}},
		want: `[{"c":"h"},{"c":"é"}]`},
	{name: "workflow call writes branch transitions", from: "__init__.py run: init_branch for a non-main first step, transition.py finish_branch",
		main:  []any{map[string]any{"workflow": "sub", "arguments": map[string]any{"n": "$ 2"}}},
		extra: map[string]any{"sub": []any{ev("m", "$ _.n * 10")}},
		want:  `{"m":20}`, types: "init,init_branch,finish_branch,finish"},
	{name: "whole float division stays float", from: "evaluator (Python): 4 / 2 == 2.0",
		main: []any{ev("q", "$ 4 / 2")}, want: `{"q":2.0}`},
	{name: "whole float output stays float into the next step", from: "evaluator (Python): f'{2.0}' == '2.0'",
		main: []any{ev("f", "$ 2.0"), ev("s", "$ f'{_.f}'", "f", "$ _.f")}, want: `{"f":2.0,"s":"2.0"}`},
	{name: "big int exact", from: "evaluator (Python): 2 ** 64", main: []any{ev("n", "$ 2 ** 64")}, want: `{"n":18446744073709551616}`},
	{name: "len counts code points", from: "evaluator (Python): len('😀a') == 2", main: []any{ev("n", "$ len('😀a')")}, want: `{"n":2}`},
	{name: "upper is Unicode-complete", from: "evaluator (Python): 'straße'.upper()", main: []any{ev("u", "$ 'straße'.upper()")}, want: `{"u":"STRASSE"}`},
	{name: "splitlines", from: "evaluator (Python)", main: []any{ev("l", "$ 'a\\r\\nb\\rc'.splitlines()")}, want: `{"l":["a","b","c"]}`},
	{name: "dict unpacking", from: "evaluator (simpleeval EvalWithCompoundTypes accepts **)", main: []any{ev("d", "$ {**_, 'c': 3}")},
		input: map[string]any{"a": 1}, want: `{"d":{"a":1,"c":3}}`},
	{name: "list unpacking", from: "evaluator (Python)", main: []any{ev("l", "$ [*_.xs, 4]")}, input: map[string]any{"xs": []any{1, 2}}, want: `{"l":[1,2,4]}`},
	{name: "max default", from: "evaluator (Python): max([], default=0)", main: []any{ev("m", "$ max([], default=0)")}, want: `{"m":0}`},
	{name: "bool arithmetic", from: "evaluator (Python): True + 1", main: []any{ev("n", "$ True + 1")}, want: `{"n":2}`},
	{name: "outputs by label", from: "tasks.py prepare_for_step: outputs keyed by label",
		main: []any{map[string]any{"label": "first", "evaluate": map[string]any{"x": "$ 5"}}, ev("y", "$ outputs['first']['x'] + 1")}, want: `{"y":6}`},
	{name: "inputs by label", from: "tasks.py prepare_for_step: inputs keyed by label",
		main:  []any{map[string]any{"label": "first", "evaluate": map[string]any{"x": "$ 5"}}, ev("y", "$ inputs['first']['k']")},
		input: map[string]any{"k": "v"}, want: `{"y":"v"}`},
	{name: "steps by label", from: "tasks.py prepare_for_step: steps[label]",
		main: []any{map[string]any{"label": "a", "evaluate": map[string]any{"x": "$ 5"}}, ev("y", "$ steps['a'].output.x")}, want: `{"y":5}`},
	{name: "hyphenated key by attribute", from: "python-box 7.3.2: 'foo-bar' reachable as foo_bar",
		main: []any{ev("v", "$ _.foo_bar")}, input: map[string]any{"foo-bar": 3}, want: `{"v":3}`},
	{name: "csv DictReader", from: "evaluator.py stdlib_csv.DictReader (Python)",
		main: []any{ev("r", "$ [row['b'] for row in csv.DictReader('a,b\\n1,2\\n3,4\\n')]")}, want: `{"r":["2","4"]}`},
	{name: "urllib parse_qs", from: "evaluator.py stdlib_urllib.parse (Python)",
		main: []any{ev("q", "$ urllib.parse.parse_qs(urllib.parse.urlparse('https://x.io/p?a=1&a=2').query)")}, want: `{"q":{"a":["1","2"]}}`},
	{name: "statistics mode", from: "evaluator.py stdlib_statistics (Python)", main: []any{ev("m", "$ statistics.mode([1, 2, 2])")}, want: `{"m":2}`},
	{name: "statistics quantiles", from: "evaluator.py stdlib_statistics (Python 3.12)",
		main: []any{ev("q", "$ statistics.quantiles([1, 2, 3, 4, 5, 6, 7, 8])")}, want: `{"q":[2.25,4.5,6.75]}`},
	{name: "math log base", from: "evaluator.py stdlib_math (Python)", main: []any{ev("l", "$ math.log(8, 2)", "t", "$ math.log10(1000)")}, want: `{"l":3.0,"t":3.0}`},
	{name: "date arithmetic days", from: "evaluator.py stdlib_datetime (Python)",
		main: []any{ev("d", "$ (datetime.datetime.date(2024, 3, 1) - datetime.datetime.date(2024, 2, 1)).days")}, want: `{"d":29}`},
	{name: "weekday", from: "evaluator.py stdlib_datetime (Python)", main: []any{ev("w", "$ datetime.datetime.datetime(2024, 1, 15).weekday()")}, want: `{"w":0}`},
	{name: "time strptime", from: "evaluator.py stdlib_time (Python)", main: []any{ev("y", "$ time.strptime('2024-01-15', '%Y-%m-%d').tm_yday")}, want: `{"y":15}`},
	{name: "yaml dump layout", from: "common/utils/yaml.py dump (PyYAML CSafeDumper)", main: []any{ev("y", "$ yaml.dump({'a': [1, 2]})")}, want: `{"y":"a:\n- 1\n- 2\n"}`},
	{name: "return ends the workflow", from: "__init__.py _handle_ReturnStep: returned=True, finish",
		main: []any{ret("r", "$ 1"), ev("never", "$ 2")}, want: `{"r":1}`, types: "init,finish"},
	{name: "set then get", from: "__init__.py _handle_SetStep/_handle_GetStep",
		main: []any{map[string]any{"set": map[string]any{"k": "$ 7"}}, map[string]any{"get": "k"}}, want: `7`},
	{name: "switch picks the first true case", from: "__init__.py eval_step_exprs SwitchStep",
		main: []any{map[string]any{"switch": []any{
			map[string]any{"case": "$ False", "then": ev("a", "$ 1")},
			map[string]any{"case": "$ True", "then": ev("b", "$ 2")},
			map[string]any{"case": "_", "then": ev("c", "$ 3")}}}}, want: `{"b":2}`},
	{name: "map reduce", from: "helpers.py execute_map_reduce_step: results + reduce",
		main: []any{map[string]any{"over": "$ [1, 2, 3]", "map": ev("v", "$ _ * 2"), "reduce": "$ results + [_.v]"}}, want: `[2,4,6]`},
	{name: "foreach collects outputs", from: "helpers.py execute_foreach_step: results.append(output)",
		main: []any{map[string]any{"foreach": map[string]any{"in": "$ [1, 2]", "do": ev("v", "$ _ + 1")}}}, want: `[{"v":2},{"v":3}]`},
	{name: "legacy underscore expression", from: "task_validation.py backwards_compatibility: '_.x' is an expression",
		main: []any{ev("v", "_.x")}, input: map[string]any{"x": 4}, want: `{"v":4}`},
	{name: "jinja template", from: "task_validation.py backwards_compatibility: '{{' becomes an f-string",
		main: []any{ev("v", "Hi {{_.name}}")}, input: map[string]any{"name": "Ada"}, want: `{"v":"Hi Ada"}`},
	{name: "plain string is an f-string", from: "expressions.py _recursive_evaluate: f'''{expr}'''",
		main: []any{ev("v", "n={_.n}")}, input: map[string]any{"n": 2}, want: `{"v":"n=2"}`},
	{name: "NEWLINE constant", from: "evaluator.py constants", main: []any{ev("v", "$ NEWLINE.join(['a', 'b'])")}, want: `{"v":"a\nb"}`},
	{name: "extract_json from a code block", from: "evaluator.py safe_extract_json",
		main: []any{ev("v", "$ extract_json(_.t)['a']")}, input: map[string]any{"t": "```json\n{\"a\": 1}\n```"}, want: `{"v":1}`},
	{name: "nested if else", from: "helpers.py execute_if_else_branch (each branch a child workflow)",
		main: []any{map[string]any{"if": "$ True", "then": map[string]any{"if": "$ False", "then": ev("a", "$ 1"), "else": ev("b", "$ 2")}}},
		want: `{"b":2}`, types: "init,init_branch,init_branch,finish_branch,finish_branch,finish"},
	{name: "steps input of step 0", from: "tasks.py prepare_for_step: steps[0].input is the execution input",
		main: []any{ev("v", "$ steps[0].input.k")}, input: map[string]any{"k": "x"}, want: `{"v":"x"}`},
}

func TestJulepTaskCases(t *testing.T) {
	t.Parallel()
	if len(julepCases) < 40 {
		t.Fatalf("%d task cases; the issue asks for at least 40", len(julepCases))
	}
	e := newEnv(t)
	agent := e.agent(nil)
	for _, c := range julepCases {
		t.Run(c.name, func(t *testing.T) {
			def := map[string]any{"name": c.name, "main": c.main}
			for k, v := range c.extra {
				def[k] = v
			}
			task := e.task(agent, def)
			input := c.input
			if input == nil {
				input = map[string]any{}
			}
			x := e.run(task, input)
			if x["status"] != "succeeded" {
				t.Fatalf("status %v, error %v (from %s)", x["status"], x["error"], c.from)
			}
			got := rawOutput(t, e, x["id"].(string))
			if got != c.want {
				t.Errorf("output\n got %s\nwant %s (from %s)", got, c.want, c.from)
			}
			trs := e.transitions(x["id"].(string))
			if c.types != "" {
				if got := types(trs); got != c.types {
					t.Errorf("transitions %s, want %s (from %s)", got, c.types, c.from)
				}
			}
			for _, tr := range trs {
				md, _ := tr["metadata"].(map[string]any)
				if (tr["type"] == "step" || tr["type"] == "finish") && (md == nil || md["step_type"] == nil || md["step_type"] == "") {
					t.Errorf("%s transition without metadata.step_type (transition.py sets it): %v", tr["type"], tr)
				}
			}
		})
	}
}

// rawOutput is the execution's output exactly as the API writes it, so
// that 2.0 and 2 differ.
func rawOutput(t *testing.T, e *env, id string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.base+"/executions/"+id, nil)
	req.Header.Set("X-Auth-Key", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var x struct {
		Output json.RawMessage `json:"output"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&x); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, x.Output); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(buf.String())
}

// Julep v1 checks expressions at create only in evaluate/set/return values,
// if conditions and foreach.in (task_validation.py
// _validate_step_expressions): a task with invalid Python in a prompt or in
// tool arguments is created, and fails only if the execution reaches it.
// Names neither Julep nor the engine has are refused at create, with
// Julep's message ("Undefined name: 'x'").
func TestCreateChecksWhereJulepChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := e.agent(nil)
	for _, def := range []map[string]any{
		{"name": "bad prompt", "main": []any{map[string]any{"prompt": "$ this is not python("}}},
		{"name": "bad log", "main": []any{map[string]any{"log": "$ 1 +"}}},
		{"name": "bad switch case", "main": []any{map[string]any{"switch": []any{map[string]any{"case": "$ (", "then": ev("a", "$ 1")}}}}},
		// sorted is the engine's own extra: accepted (tasks validate warns)
		{"name": "engine extra", "main": []any{ev("s", "$ sorted(_.xs)")}},
		// not a "$"/"_"/"{{" value: Julep does not check it at create
		{"name": "unchecked evaluate value", "main": []any{ev("s", "[x for x in foo]")}},
	} {
		if status, v := e.do("POST", "/agents/"+agent+"/tasks", def); status != 201 {
			t.Errorf("%s: status %d %v, want 201 (Julep accepts it)", def["name"], status, v)
		}
	}
	for _, c := range []struct {
		def  map[string]any
		want string
	}{
		{map[string]any{"name": "undefined", "main": []any{ev("x", "$ foo + 1")}}, "main[0].evaluate.x: Undefined name: 'foo'"},
		{map[string]any{"name": "undefined in if", "main": []any{map[string]any{"if": "$ bar", "then": ev("a", "$ 1")}}}, "main[0].if: Undefined name: 'bar'"},
		{map[string]any{"name": "syntax", "main": []any{map[string]any{"foreach": map[string]any{"in": "$ [1,", "do": ev("a", "$ 1")}}}}, "main[0].foreach.in"},
	} {
		status, v := e.do("POST", "/agents/"+agent+"/tasks", c.def)
		if status != 400 || !strings.Contains(jsonString(v), c.want) {
			t.Errorf("%s: status %d %s, want 400 naming %q", c.def["name"], status, jsonString(v), c.want)
		}
	}
	// The execution of the task with a bad prompt fails when it gets there.
	task := e.task(agent, map[string]any{"name": "late", "main": []any{ev("a", "$ 1"), map[string]any{"log": "$ 1 +"}}})
	x := e.run(task, map[string]any{})
	if x["status"] != "failed" || !strings.Contains(x["error"].(string), "step 1") {
		t.Fatalf("status %v error %v", x["status"], x["error"])
	}
}

// Julep's create answer carries metadata {"jobs": [the run's id]}
// (routers/tasks/create_task_execution.py).
func TestCreateExecutionListsItsJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(e.agent(nil), map[string]any{"name": "t", "main": []any{ev("a", "$ 1")}})
	m := e.must(201, "POST", "/tasks/"+task+"/executions", map[string]any{"input": map[string]any{}, "metadata": map[string]any{"k": "v"}})
	if jsonString(m["metadata"]) != `{"jobs":["`+m["id"].(string)+`"]}` {
		t.Fatalf("metadata %v", m["metadata"])
	}
	e.wait(m["id"].(string))
	if got := e.must(200, "GET", "/executions/"+m["id"].(string), nil)["metadata"]; jsonString(got) != `{"k":"v"}` {
		t.Fatalf("stored metadata %v", got)
	}
}
