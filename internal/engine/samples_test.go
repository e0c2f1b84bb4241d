package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astra-app/astra/internal/julep"
)

// refDir holds Julep's own sample tasks and the julep-ai/library templates
// (read-only reference material, not part of the repository).
const refDir = "/work/shared/reference/julep"

func readRef(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(refDir, rel))
	if err != nil {
		t.Skipf("reference task %s not available: %v", rel, err)
	}
	return b
}

// TestReferenceTasks runs the reference tasks that need no outside
// integration and whose steps do not depend on what a real model says.
func TestReferenceTasks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		path  string
		input map[string]any
		setup func(e *env) map[string]any // may add input
		check func(t *testing.T, e *env, out any)
	}{
		{path: "sample_tasks/simple_prompt.yaml", input: map[string]any{"topic": "autumn"},
			check: func(t *testing.T, e *env, out any) {
				c := jsonString(out)
				if !strings.Contains(c, `"choices"`) || !strings.Contains(c, "autumn") {
					t.Fatalf("output %s", c)
				}
			}},
		{path: "sample_tasks/simple_multi_step.yaml", input: map[string]any{"topics": []any{"tea", "moss"}},
			check: func(t *testing.T, e *env, out any) {
				r, _ := out.(map[string]any)["result"].([]any)
				if len(r) != 2 || !strings.Contains(r[1].(string), "offline model") {
					t.Fatalf("output %v", out)
				}
			}},
		{path: "library/completed/hello-world/src/tasks/hello-world-task.yaml", input: map[string]any{},
			check: func(t *testing.T, e *env, out any) {
				if !strings.Contains(jsonString(out), "Tell me a joke!") {
					t.Fatalf("output %v", out)
				}
			}},
		{path: "library/completed/profiling-recommending/src/tasks/generate-update-persona.yaml",
			setup: func(e *env) map[string]any {
				const uid = "5a1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0abc"
				if _, err := e.client.CreateOrUpdateUser(e.t.Context(), uid, julep.UserInput{Name: "Fan",
					Metadata: julep.Metadata{"ppid": "pp-9", "top_sport": "tennis"}}); err != nil {
					e.t.Fatal(err)
				}
				return map[string]any{"user_ppid": "pp-9", "articles_read": []any{"Legends of the court"}}
			},
			check: func(t *testing.T, e *env, out any) {
				docs, err := e.client.ListUserDocs(t.Context(), "5a1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0abc", nil)
				if err != nil || len(docs) != 1 || docs[0].Title != "User Persona" {
					t.Fatalf("persona docs %v %v (output %v)", docs, err, out)
				}
			}},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			t.Parallel()
			def := readRef(t, c.path)
			e := newEnv(t)
			task, err := e.client.CreateTask(t.Context(), e.agent(nil), julep.YAML(def))
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			input := c.input
			if c.setup != nil {
				input = c.setup(e)
			}
			x := e.run(task.Id, input)
			if x["status"] != "succeeded" {
				t.Fatalf("status %v: %v", x["status"], x["error"])
			}
			c.check(t, e, x["output"])
		})
	}
}

// TestReferenceTaskNeedingIntegrationFailsClearly: integrations are not
// available in the embedded engine, and the error says so.
func TestReferenceTaskNeedingIntegrationFailsClearly(t *testing.T) {
	t.Parallel()
	def := readRef(t, "library/completed/sarcastic-headline-generator/src/tasks/sarcastic-headline-generator-task.yaml")
	e := newEnv(t)
	task, err := e.client.CreateTask(t.Context(), e.agent(nil), julep.YAML(def))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	x := e.run(task.Id, map[string]any{"topic": "cats"})
	if msg, _ := x["error"].(string); x["status"] != "failed" || !strings.Contains(msg, `integration tools (provider "brave")`) || !strings.Contains(msg, "step 0") {
		t.Fatalf("status %v error %v", x["status"], x["error"])
	}
}
