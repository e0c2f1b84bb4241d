package engine_test

import (
	"github.com/astra-app/astra/internal/engine"
	"net/http"
	"net/http/httptest"
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

// TestReferenceTaskWithBraveIntegration runs the library template that
// calls Brave search against a local fake of Brave's API (the tool's setup
// names the key as "$ {secrets.BRAVE_API_KEY}", as the template writes it).
func TestReferenceTaskWithBraveIntegration(t *testing.T) {
	t.Parallel()
	def := readRef(t, "library/completed/sarcastic-headline-generator/src/tasks/sarcastic-headline-generator-task.yaml")
	brave := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Subscription-Token") != "brave-key" || r.URL.Query().Get("q") != "cats funny" {
			http.Error(w, "bad", 400)
			return
		}
		w.Write([]byte(`{"web":{"results":[{"title":"Cats","url":"https://c.example","description":"Cats sit"}]}}`))
	}))
	defer brave.Close()
	e := newEnv(t, withSecrets(map[string]string{"BRAVE_API_KEY": "brave-key"}),
		func(o *engine.Options) { o.IntegrationURLs = map[string]string{"brave": brave.URL} })
	task, err := e.client.CreateTask(t.Context(), e.agent(nil), julep.YAML(def))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	x := e.run(task.Id, map[string]any{"topic": "cats"})
	if x["status"] != "succeeded" {
		t.Fatalf("status %v error %v", x["status"], x["error"])
	}
	trs := e.transitions(x["id"].(string))
	if got := jsonString(trs[1]["output"]); got != `{"result":[{"link":"https://c.example","snippet":"Cats sit","title":"Cats"}]}` {
		t.Fatalf("brave step output %s", got)
	}
}

// A provider the engine does not have is refused at create, by name.
func TestUnknownIntegrationRefusedAtCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, v := e.do("POST", "/agents/"+e.agent(nil)+"/tasks", map[string]any{"name": "t",
		"tools": []any{map[string]any{"name": "mail", "type": "integration", "integration": map[string]any{"provider": "telegraph"}}},
		"main":  []any{map[string]any{"tool": "mail", "arguments": map[string]any{}}}})
	if status != 400 || !strings.Contains(jsonString(v), `integration provider \"telegraph\" is not available`) {
		t.Fatalf("status %d %s", status, jsonString(v))
	}
}
