package taskdef

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepositoryTasksAreClean(t *testing.T) {
	t.Parallel()
	p, issues := LoadProject(filepath.Join("..", "..", "tasks"))
	for _, is := range issues {
		t.Errorf("issue (warnings count too for our own tasks): %s", is)
	}
	if p == nil {
		t.Fatal("no project")
	}
	if len(p.Agents) != 1 || len(p.Tasks) != 1 {
		t.Fatalf("agents %d, tasks %d; want 1 and 1", len(p.Agents), len(p.Tasks))
	}
	task := p.Tasks[0]
	if task.Path != "responder.yaml" || task.AgentIndex != 0 || task.Name() != "Astra responder" {
		t.Errorf("task entry = %+v", task)
	}
	if len(task.Hash) != 64 {
		t.Errorf("hash %q", task.Hash)
	}
	if p.Agents[0].Name() != "Jadugar" || p.Agents[0].Kind != KindAgent {
		t.Errorf("agent = %+v", p.Agents[0])
	}
}

func TestReferenceManifestsLoad(t *testing.T) {
	t.Parallel()
	manifests, _ := filepath.Glob(filepath.Join(refDir, "library", "*", "*", ManifestName))
	if len(manifests) == 0 {
		t.Skipf("no julep.yaml under %s: skipping (reference library not present)", refDir)
	}
	for _, m := range manifests {
		t.Run(filepath.Base(filepath.Dir(m)), func(t *testing.T) {
			t.Parallel()
			p, issues := LoadProject(m)
			if p == nil {
				t.Fatalf("not a manifest: %v", issues)
			}
			if errs := unexpectedErrors(issues); len(errs) > 0 {
				t.Errorf("issues: %v", errs)
			}
			if len(p.Agents) == 0 || len(p.Tasks) == 0 {
				t.Errorf("agents %d, tasks %d", len(p.Agents), len(p.Tasks))
			}
			for _, task := range p.Tasks {
				if task.AgentIndex < 0 || task.AgentIndex >= len(p.Agents) {
					t.Errorf("%s: agent index %d", task.Path, task.AgentIndex)
				}
			}
		})
	}
}

func TestManifestProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "agent.yaml", "name: A\nmodel: gpt-4o-mini\n")
	write(t, dir, "task.yaml", "name: T\nmain:\n  - log: hi\n")
	write(t, dir, ManifestName, `agents:
  - definition: agent.yaml
tasks:
  - agent_id: "{agents[1].id}"
    definition: task.yaml
  - agent_id: "{agents[0].id}"
    definition: missing.yaml
  - agent_id: "{agents[0].id}"
    definition: ../escape.yaml
  - agent_id: nope
    definition: task.yaml
`)
	_, issues := LoadProject(dir)
	got := strings.Join(strs(issues), "\n")
	want := strings.Join([]string{
		dir + "/julep.yaml:4:15: tasks[0].agent_id: {agents[1].id}: the manifest has 1 agent(s)",
		dir + "/julep.yaml:9:17: tasks[2].definition: \"../escape.yaml\" is outside the project directory",
		dir + "/julep.yaml:10:15: tasks[3].agent_id: want \"{agents[N].id}\" or an agent UUID, got \"nope\"",
		dir + "/missing.yaml: file not found (named by tasks[1].definition)",
	}, "\n")
	if got != want {
		t.Errorf("issues:\n%s\nwant:\n%s", got, want)
	}
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func strs(issues []Issue) []string {
	out := make([]string, len(issues))
	for i, is := range issues {
		out[i] = is.String()
	}
	return out
}

// unexpectedErrors drops from issues the errors a library task is expected
// to have here: expressions Julep itself would only fail at run time (some
// library prompts are not valid Python), and integration providers the
// embedded engine does not have (refused at create by design).
func unexpectedErrors(issues []Issue) []Issue {
	var out []Issue
	for _, is := range issues {
		if is.Severity != SeverityError || is.AtRunTime || strings.Contains(is.Message, "is not available in the embedded engine") {
			continue
		}
		out = append(out, is)
	}
	return out
}
