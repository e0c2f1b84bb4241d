package expr

import (
	"reflect"
	"testing"
)

// Expected messages are task_validation.py's (Julep v1, commit 5371a620):
// validate_py_expression's "undefined_names" and "unsupported_features".
func TestJulepRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src  string
		want []string
	}{
		{"$ sorted(_)", []string{"Undefined name: 'sorted'"}},
		{"$ [x for x in _ if isinstance(x, str)]", []string{"Undefined name: 'isinstance'"}},
		{"$ {x for x in _}", []string{"Set comprehensions are not supported in this evaluator"}},
		{"$ reduce(lambda a, b: a + b, _)", []string{"Lambda functions are not supported in this evaluator"}},
		{"$ agent.name + execution.id", []string{"Undefined name: 'agent'", "Undefined name: 'execution'"}},
		{"Hello {{secrets.KEY}}", []string{"Undefined name: 'secrets'"}}, // "{{" makes it an expression
		{"Hello {secrets.KEY}", nil},                    // a plain f-string body is not checked
		{"$ hasattr(_, 'x') and len(_) > 0", nil},       // hasattr is in allowed_names
		{"$ [x for x, y in zip(inputs, outputs)]", nil}, // comprehension targets are local
		{"$ steps[0].output + state.n + NEWLINE + null", nil},
		{"$ csv.reader(_) and statistics.mode(_)", nil},
		{"_.a", nil},
		{"$ chr(65) + repr(1) + str(getattr(_, 'a'))", []string{"Undefined name: 'chr'", "Undefined name: 'getattr'", "Undefined name: 'repr'"}},
	}
	for _, c := range cases {
		got := JulepRefusals(c.src)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("JulepRefusals(%q) = %q, want %q", c.src, got, c.want)
		}
	}
	if got := JulepRefusals("$ (1 +"); len(got) != 1 || got[0][:13] != "Syntax error:" {
		t.Errorf("syntax error: %q", got)
	}
}
