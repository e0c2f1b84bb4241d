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
			`t.yaml:3:5: main[0].promt: unknown step kind "promt"`},
		{"two kind keys", "name: t\nmain:\n  - log: a\n    return: {x: $ 1}\n",
			`t.yaml:3:5: main[0]: one step has two kinds, "log" and "return": split it into two steps`},
		{"bad expression", "name: t\nmain:\n  - evaluate:\n      x: $ len(_\n",
			`t.yaml:4:10: main[0].evaluate.x: expression "$ len(_": unexpected end of expression: '(' at column 6 was never closed at column 8`},
		{"unbalanced braces", "name: t\nmain:\n  - evaluate:\n      greeting: \"hello {_.name\"\n",
			`t.yaml:4:17: main[0].evaluate.greeting: unbalanced braces: "{" at offset 6 is never closed (write {{ for a literal brace)`},
		{"bad expression in tool arguments is a warning", "name: t\n" + tools + "main:\n  - tool: list_docs\n    arguments: {user_id: $ _.id +}\n",
			`t.yaml:8:26: main[0].arguments.user_id: warning: expression "$ _.id +": unexpected end of expression at column 9`},
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

func TestPromptProblemsAreWarnings(t *testing.T) {
	t.Parallel()
	issues := validateYAML(t, "t.yaml", "name: t\nmain:\n  - prompt: $ 'hi ' + str(_\n    unwrap: true\n")
	if HasErrors(issues) {
		t.Errorf("prompt text problems must be warnings (Julep does not check prompts at create): %v", issues)
	}
	if len(issues) != 1 || issues[0].Severity != SeverityWarning || !strings.Contains(issues[0].String(), "main[0].prompt: warning: expression") {
		t.Errorf("issues = %v", strs(issues))
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
				for _, is := range issues {
					if is.Severity == SeverityError {
						t.Errorf("error: %s", is)
					}
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
