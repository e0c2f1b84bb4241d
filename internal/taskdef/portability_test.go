package taskdef

import (
	"strings"
	"testing"
)

// What Julep v1 refuses comes from its common/utils/task_validation.py
// (commit 5371a620): allowed_names, the unsupported features (lambda, set
// comprehensions, walrus), and which step values it checks at create
// (_validate_step_expressions); the run-time names from
// common/protocol/tasks.py prepare_for_step.
func TestPortabilityWarnings(t *testing.T) {
	t.Parallel()
	src := `name: t
main:
  - evaluate:
      a: $ sorted(_)
      b: $ len(_)
      c: "[x for x in reversed(_)]"
  - if: $ agent.name == 'x'
    then:
      evaluate:
        d: $ {x for x in _}
  - prompt: "$ str(secrets.KEY) + execution.id"
  - prompt: "$ str(sorted(_))"
  - foreach:
      in: $ list(filter(None, _))
      do:
        log: $ chr(65)
  - switch:
      - case: $ isinstance(_, str)
        then:
          return:
            x: "$ reduce(lambda a, b: a + b, _)"
      - case: _
        then:
          set:
            y: $ getattr(_, 'y')
`
	issues := validateYAML(t, "t.yaml", src)
	var got []string
	for _, is := range issues {
		if is.Type == TypePortability {
			if is.Severity != SeverityWarning {
				t.Errorf("%s: a portability issue must be a warning", is)
			}
			got = append(got, is.String())
		}
	}
	want := []string{
		"t.yaml:4:10: main[0].evaluate.a: warning: Julep v1 refuses this task at create: Undefined name: 'sorted'",
		// not a "$"/"_"/"{{" value: Julep evaluates it at run time only
		"t.yaml:6:10: main[0].evaluate.c: warning: Julep v1 fails here at run time: Undefined name: 'reversed'",
		"t.yaml:7:9: main[1].if: warning: Julep v1 refuses this task at create: Undefined name: 'agent'",
		"t.yaml:10:12: main[1].then.evaluate.d: warning: Julep v1 refuses this task at create: Set comprehensions are not supported in this evaluator",
		// secrets and execution exist at run time: no warning for main[2]
		"t.yaml:12:13: main[3].prompt: warning: Julep v1 fails here at run time: Undefined name: 'sorted'",
		"t.yaml:16:14: main[4].foreach.do.log: warning: Julep v1 fails here at run time: Undefined name: 'chr'",
		"t.yaml:14:11: main[4].foreach.in: warning: Julep v1 refuses this task at create: Undefined name: 'filter'",
		"t.yaml:18:15: main[5].switch[0].case: warning: Julep v1 fails here at run time: Undefined name: 'isinstance'",
		"t.yaml:21:16: main[5].switch[0].then.return.x: warning: Julep v1 refuses this task at create: Lambda functions are not supported in this evaluator",
		"t.yaml:25:16: main[5].switch[1].then.set.y: warning: Julep v1 refuses this task at create: Undefined name: 'getattr'",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, is := range issues {
		if is.Severity == SeverityError {
			t.Errorf("the engine accepts this task; got error %s", is)
		}
	}
}

func TestUnknownIntegrationProvider(t *testing.T) {
	t.Parallel()
	src := "name: t\ntools:\n  - name: mail\n    type: integration\n    integration:\n      provider: telegraph\n      setup: {}\n  - name: web\n    type: integration\n    integration: {provider: brave}\nmain:\n  - tool: mail\n    arguments: {}\n"
	var got []string
	for _, is := range validateYAML(t, "t.yaml", src) {
		if is.Severity == SeverityError {
			got = append(got, is.String())
		}
	}
	want := `t.yaml:6:17: tools[0].integration.provider: integration provider "telegraph" is not available in the embedded engine (available: arxiv, brave, cloudinary, dummy, email, spider, weather, wikipedia)`
	if strings.Join(got, "\n") != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
