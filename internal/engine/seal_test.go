package engine_test

import (
	"strings"
	"testing"

	"github.com/astra-app/astra/internal/engine"
)

// A checkpoint holding a secret's value is stored sealed; the execution,
// resumed by a new engine after a restart, still sees the real value.
func TestCheckpointSealsSecrets(t *testing.T) {
	t.Parallel()
	const secret = "sk-live-\"quoted\"-<value>"
	secrets := withSecrets(map[string]string{"API_KEY": secret})
	stores := sharedFile(t, 2)
	a := startEnv(t, stores[0], secrets)
	taskID := a.task(a.agent(nil), map[string]any{"name": "keeps a secret", "main": []any{
		map[string]any{"evaluate": map[string]any{"key": "$ secrets.API_KEY"}},
		map[string]any{"set": map[string]any{"kept": "$ 'x' + secrets.API_KEY"}},
		map[string]any{"wait_for_input": map[string]any{"info": map[string]any{"q": "go on?"}}},
		map[string]any{"evaluate": map[string]any{
			"same":  "$ steps[0].output.key == secrets.API_KEY",
			"state": "$ state.kept == 'x' + secrets.API_KEY"}},
	}})
	id := a.start(taskID, map[string]any{})
	if x := a.wait(id, "awaiting_input"); x["status"] != "awaiting_input" {
		t.Fatalf("status %v (%v)", x["status"], x["error"])
	}
	stored, err := a.state.GetExecution(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	ck := string(stored.Checkpoint)
	if strings.Contains(ck, "sk-live") || !strings.HasPrefix(ck, `{"sealed":`) {
		t.Fatalf("stored checkpoint is not sealed: %s", ck)
	}
	a.stop()

	b := startEnv(t, stores[1], secrets)
	b.must(200, "PUT", "/executions/"+id, map[string]any{"status": "running", "input": map[string]any{"ok": true}})
	x := b.wait(id)
	out := succeeded(t, x)
	if out["same"] != true || out["state"] != true {
		t.Fatalf("after the restart the run saw other values: %v %v", out, b.transitions(id))
	}
	stored, _ = b.state.GetExecution(t.Context(), id)
	if strings.Contains(string(stored.Checkpoint), "sk-live") {
		t.Fatalf("final checkpoint holds the secret: %s", stored.Checkpoint)
	}

	// Without secrets in it, a checkpoint stays plain JSON.
	plain := b.task(b.agent(nil), map[string]any{"name": "plain", "main": []any{
		map[string]any{"evaluate": map[string]any{"x": "$ 1"}}}})
	pid := b.run(plain, map[string]any{})["id"].(string)
	if p, _ := b.state.GetExecution(t.Context(), pid); !strings.HasPrefix(string(p.Checkpoint), `{"step":`) {
		t.Fatalf("plain checkpoint: %s", p.Checkpoint)
	}
}

// Another key cannot open a sealed checkpoint: the execution fails with a
// clear error instead of running on without its state.
func TestSealedCheckpointNeedsTheKey(t *testing.T) {
	t.Parallel()
	secrets := withSecrets(map[string]string{"API_KEY": "sk-abcdef"})
	stores := sharedFile(t, 2)
	a := startEnv(t, stores[0], secrets)
	taskID := a.task(a.agent(nil), map[string]any{"name": "pauses", "main": []any{
		map[string]any{"evaluate": map[string]any{"key": "$ secrets.API_KEY"}},
		map[string]any{"wait_for_input": map[string]any{"info": map[string]any{"q": "go on?"}}},
	}})
	id := a.start(taskID, map[string]any{})
	a.wait(id, "awaiting_input")
	a.stop()
	b := startEnv(t, stores[1], secrets, func(o *engine.Options) { o.CheckpointKey = engine.CheckpointKey("another key") })
	status, _ := b.do("PUT", "/executions/"+id, map[string]any{"status": "running", "input": map[string]any{}})
	if status == 200 {
		t.Fatalf("resume with another key answered 200")
	}
}
