package taskdef

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func validateYAML(t *testing.T, file, src string) []Issue {
	t.Helper()
	d, issues := ParseYAML(file, []byte(src))
	if d != nil {
		issues = append(issues, ValidateTask(d)...)
	}
	return issues
}

// Each broken task yields exactly one issue, with this exact line.
func TestBrokenTasks(t *testing.T) {
	t.Parallel()
	const tools = "tools:\n  - name: list_docs\n    type: system\n    system: {resource: user, subresource: doc, operation: list}\n"
	cases := []struct{ name, src, want string }{
		{"unknown step kind", "name: t\nmain:\n  - promt: hello\n",
			`t.yaml:3:5: main[0].promt: unknown step kind "promt" (did you mean "prompt"?)`},
		{"two kind keys", "name: t\nmain:\n  - log: a\n    return: {x: $ 1}\n",
			`t.yaml:3:5: main[0]: one step has two kinds, "log" and "return": split it into two steps`},
		{"bad expression", "name: t\nmain:\n  - evaluate:\n      x: $ len(_\n",
			`t.yaml:4:10: main[0].evaluate.x: expression "$ len(_": unexpected end of expression: '(' at column 6 was never closed at column 8`},
		{"unbalanced braces", "name: t\nmain:\n  - evaluate:\n      greeting: \"hello {_.name\"\n",
			`t.yaml:4:17: main[0].evaluate.greeting: unbalanced braces: "{" at offset 6 is never closed (write {{ for a literal brace)`},
		{"bad expression in tool arguments", "name: t\n" + tools + "main:\n  - tool: list_docs\n    arguments: {user_id: $ _.id +}\n",
			`t.yaml:8:26: main[0].arguments.user_id: expression "$ _.id +": unexpected end of expression at column 9`},
		{"unknown tool", "name: t\n" + tools + "main:\n  - tool: list_doc\n    arguments: {user_id: $ _.id}\n",
			`t.yaml:7:11: main[0].tool: unknown tool "list_doc" (tools: list_docs)`},
		{"duplicate label", "name: t\nmain:\n  - label: a\n    log: x\n  - label: a\n    log: y\n",
			`t.yaml:5:12: main[1].label: duplicate label "a" (first used at main[0])`},
		{"missing workflow", "name: t\nmain:\n  - workflow: helper\n    arguments: {}\n",
			`t.yaml:3:15: main[0].workflow: unknown workflow "helper" (workflows: main)`},
		{"missing main", "name: t\ndescription: no steps\n",
			`t.yaml:1:1: main: required: a task needs a main list with at least one step`},
		{"empty main", "name: t\nmain: []\n",
			`t.yaml:2:7: main: must have at least one step`},
		{"missing name", "main:\n  - log: x\n",
			`t.yaml:1:1: name: required: every task needs a name`},
		{"wrong type", "name: t\nmain:\n  - prompt: hi\n    unwrap: \"yes\"\n",
			`t.yaml:4:13: main[0].unwrap: want a boolean, got a string`},
		{"wrong type nested", "name: t\nmain:\n  - foreach:\n      in: $ _\n      do: [log: x]\n",
			`t.yaml:5:11: main[0].foreach.do: want a mapping, got a list`},
		{"bad input schema", "name: t\ninput_schema:\n  type: objekt\nmain:\n  - log: x\n",
			`t.yaml:3:3: input_schema: not a valid JSON Schema: ` + badSchemaMessage(t)},
		{"not yaml", "name: t\nmain: [\n", `t.yaml:2:1: invalid YAML: line 2: did not find expected node content`},
		{"duplicate key", "name: t\nname: u\nmain:\n  - log: x\n", `t.yaml:2:1: name: duplicate key "name" (first at line 1)`},
		{"map without over", "name: t\nmain:\n  - map: {log: x}\n", `t.yaml:3:10: main[0].map: a map step needs over (the list to map over)`},
		{"system tool without block", "name: t\ntools:\n  - name: x\n    type: system\nmain:\n  - tool: x\n",
			`t.yaml:3:5: tools[0]: a system tool needs a "system" block`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			issues := validateYAML(t, "t.yaml", c.src)
			got := strings.Join(strs(issues), "\n")
			if got != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

type anyRegexp string

func (r anyRegexp) String() string        { return string(r) }
func (anyRegexp) MatchString(string) bool { return true }

func badSchemaMessage(t *testing.T) string {
	err := checkJSONSchema(map[string]any{"type": "objekt"})
	if err == nil {
		t.Fatal("type objekt accepted")
	}
	return oneLine(err.Error())
}

// An expression that cannot run is an error wherever it is (the engine
// refuses the task at create with these very checks), so validate never
// passes what push then refuses.
func TestPromptExpressionErrorsAreErrors(t *testing.T) {
	t.Parallel()
	issues := validateYAML(t, "t.yaml", "name: t\nmain:\n  - prompt: $ 'hi ' + str(_\n    unwrap: true\n")
	if !HasErrors(issues) || len(issues) != 1 || !strings.Contains(issues[0].String(), "t.yaml:3:13: main[0].prompt: expression") {
		t.Errorf("issues = %v", strs(issues))
	}
}

// What the issue reported: a misspelt kind beside its extras, an undefined
// name, a syntax error in tool arguments; each one line at the right place.
func TestValidateNamesTyposAndSyntax(t *testing.T) {
	t.Parallel()
	const tools = "tools:\n  - name: save\n    type: function\n    function: {name: save}\n"
	src := "name: t\n" + tools + "main:\n" +
		"  - evaluate: {x: $ 1}\n" +
		"  - toool: save\n" + // line 8
		"    arguments: {a: $ 1}\n" +
		"  - evaluate:\n" +
		"      y: $ stepz[0].output\n" + // line 11
		"  - tool: save\n" +
		"    arguments: {id: $ _.outbox_id +)}\n" + // line 13
		"  - log: hi\n" +
		"    lable: greeting\n" + // line 15
		"  - over: $ [1, 2]\n" +
		"    map: {evaluate: {v: $ _}}\n" +
		"    reduce: results + [_]\n"
	got := strs(validateYAML(t, "t.yaml", src))
	want := []string{
		`t.yaml:8:5: main[1].toool: unknown step kind "toool" (did you mean "tool"?)`,
		`t.yaml:11:10: main[2].evaluate.y: Undefined name: 'stepz' (did you mean "steps"?)`,
		`t.yaml:13:21: main[3].arguments.id: expression "$ _.outbox_id +)": unmatched ')' at column 16`,
		`t.yaml:15:5: main[4].lable: warning: "lable" is not used by log steps (ignored) (did you mean "label"?)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The engine's create check is the same code: the JSON body fails too.
	var def map[string]any
	d, _ := ParseYAML("t.yaml", []byte(src))
	b, _ := json.Marshal(d.Value)
	_ = json.Unmarshal(b, &def)
	if issues := ValidateDefinition(def); !HasErrors(issues) || len(issues) != 4 {
		t.Errorf("ValidateDefinition: %v", strs(issues))
	}
}

func TestLongIssueListsStop(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("name: t\nmain:\n")
	for range 80 {
		b.WriteString("  - evaluate: {x: $ nope}\n")
	}
	issues := validateYAML(t, "t.yaml", b.String())
	if len(issues) != maxIssues+1 || issues[maxIssues].Message != "and 30 more errors" {
		t.Errorf("%d issues, last %v", len(issues), issues[len(issues)-1])
	}
}

func TestValidateDefinitionJSON(t *testing.T) {
	t.Parallel()
	var def map[string]any
	body := `{"name":"t","tools":[],"main":[{"tool":"nope","arguments":{}},{"evaluate":{"x":"$ 1 +"}}],"helper":[{"log":"x"}]}`
	if err := json.Unmarshal([]byte(body), &def); err != nil {
		t.Fatal(err)
	}
	issues := ValidateDefinition(def)
	if len(issues) < 1 || issues[0].Location != "main[0].tool" || issues[0].Message != `unknown tool "nope" (tools: none defined)` ||
		issues[0].File != "" || issues[0].Line != 0 || issues[0].Type != TypeReference {
		t.Errorf("issues = %#v", issues)
	}
	// Sub-workflows and workflow steps resolve.
	ok := map[string]any{"name": "t", "main": []any{map[string]any{"workflow": "helper", "arguments": map[string]any{"a": "$ _"}}},
		"helper": []any{map[string]any{"return": map[string]any{"a": "$ _.a"}}}}
	if is := ValidateDefinition(ok); len(is) != 0 {
		t.Errorf("valid task: %v", is)
	}
	// Typed Go values (not only JSON-decoded ones) are accepted.
	typed := map[string]any{"name": "t", "main": []map[string]any{{"log": "x", "label": "l"}}}
	if is := ValidateDefinition(typed); len(is) != 0 {
		t.Errorf("typed task: %v", is)
	}
}

// The reference tasks pass our checks with no errors, and the same files pass
// the upstream CreateTaskRequest schema: our checks are not stricter than
// Julep's. Two upstream test fixtures are invalid under Julep's own schema;
// both sides must reject them.
func TestReferenceTasksAgainstUpstreamSchema(t *testing.T) {
	t.Parallel()
	files := referenceTasks(t)
	schemaFile := filepath.Join(refDir, "create_task_request.json")
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Skipf("%s not present: skipping the upstream schema cross-check", schemaFile)
	}
	doc, err := jsonschema.UnmarshalJSON(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	// Go's RE2 lacks \p{Pattern_Syntax}, used by name patterns that no task
	// field here depends on: such patterns match anything in this test.
	c.UseRegexpEngine(func(s string) (jsonschema.Regexp, error) {
		if re, err := regexp.Compile(s); err == nil {
			return re, nil
		}
		return anyRegexp(s), nil
	})
	if err := c.AddResource("https://upstream.invalid/create_task_request.json", doc); err != nil {
		t.Fatal(err)
	}
	upstream, err := c.Compile("https://upstream.invalid/create_task_request.json")
	if err != nil {
		t.Fatal(err)
	}
	knownInvalid := map[string]string{
		"integration_example.yaml":        "tools[0].name: required but missing",
		"simple_parameter_extractor.yaml": "main[1].evaluate: want a mapping, got null",
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			d, issues := ParseYAML(file, b)
			if d == nil {
				t.Fatalf("parse: %v", issues)
			}
			issues = append(issues, ValidateTask(d)...)
			v, err := normalize(d.Value)
			if err != nil {
				t.Fatal(err)
			}
			upErr := upstream.Validate(v)
			want, bad := knownInvalid[filepath.Base(file)]
			if !bad {
				if upErr != nil {
					t.Errorf("upstream schema rejects it: %v", upErr)
				}
				for _, is := range unexpectedErrors(issues) {
					t.Errorf("error: %s", is)
				}
				return
			}
			if upErr == nil {
				t.Errorf("upstream schema accepts a file we list as invalid")
			}
			found := false
			for _, is := range issues {
				found = found || (is.Severity == SeverityError && strings.Contains(is.String(), want))
			}
			if !found {
				t.Errorf("want an error %q, got %v", want, strs(issues))
			}
		})
	}
}
