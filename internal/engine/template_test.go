package engine_test

import (
	"strings"
	"testing"

	"github.com/astra-app/astra/internal/engine"
)

// Julep's default system template, rendered as Julep renders it. Each
// expected string was computed by Jinja2 3.1.6 (ImmutableSandboxedEnvironment,
// trim_blocks and lstrip_blocks, NEWLINE a global: agents_api/common/utils/
// template.py at 5371a620) on the template from agents_api/autogen/Agents.py.
func TestDefaultSystemTemplateAsJinja2(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]any
		want string
	}{
		{"agent, user, situation, docs", map[string]any{
			"agent":   map[string]any{"name": "Ada", "about": "a helper", "instructions": []any{"be kind", "be brief"}},
			"user":    map[string]any{"name": "Bob", "about": "a tester"},
			"session": map[string]any{"situation": "testing"},
			"docs":    []any{map[string]any{"title": "T1", "content": []any{"c1"}, "metadata": nil}},
		},
			// Jinja2 writes "a user  and" (the {{" "}} and the text's own
			// space); github.com/ardanlabs/jinja drops one of the two.
			"You are Ada. About you: a helper. You are talking to a user and their name is Bob. About the user: a tester.\nSituation: testing\n\nInstructions:\n- be kind\n- be brief\n\nRelevant documents:\nT1\nc1\n---"},
		{"string instructions, no user", map[string]any{
			"agent": map[string]any{"name": "Ada", "about": "", "instructions": "one rule"}, "user": nil,
			"session": map[string]any{"situation": nil}, "docs": []any{},
		}, "You are Ada. \n\n\nInstructions:\none rule\n\n"},
		{"empty agent and user", map[string]any{
			"agent": map[string]any{"name": "", "about": "", "instructions": []any{}}, "user": map[string]any{"name": "", "about": ""},
			"session": map[string]any{"situation": ""}, "docs": []any{},
		}, "You are talking to a user\n\n\n"},
	}
	for _, c := range cases {
		got, err := engine.RenderTemplate(engine.DefaultSystemTemplate, c.env)
		if err != nil || got != c.want {
			t.Errorf("%s: got %q (%v)\nwant %q", c.name, got, err, c.want)
		}
	}
	if _, err := engine.RenderTemplate("{% if %}", nil); err == nil {
		t.Error("a template syntax error renders")
	}
}

// Templates cannot spend unbounded memory or time: range is bounded,
// repetition and huge literals are refused, a long render is cut off.
func TestTemplateLimits(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]string{
		"{% for i in range(100000000) %}x{% endfor %}":                                            "above 10000",
		"{% for i in range(n) %}x{% endfor %}":                                                    "more than 10000 items",
		"{{ 'x' * 9 }}":                                                                           "`*` is not allowed",
		"{% for a in range(10) %}{% for b in range(10) %}{% endfor %}{% endfor %}":                "at most one range()",
		"{{ '{' ~ 'x' }}{%":                                                                       "syntax error",
		"{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}":                                      "{% macro %} is not allowed",
		"{%- for x in xs recursive %}{{ loop(xs) }}{% endfor %}":                                  "{% for %} is not allowed",
		"{% for a in xs %}{% for b in xs %}{% for c in xs %}{% endfor %}{% endfor %}{% endfor %}": "nest deeper than 2",
	} {
		_, err := engine.RenderTemplate(src, map[string]any{"n": 1 << 40})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
	}
	out, err := engine.RenderTemplate("{% for i in range(3) %}{{ i }}{% endfor %} **bold**", nil)
	if err != nil || out != "012 **bold**" {
		t.Errorf("bounded range: %q %v", out, err)
	}
}
