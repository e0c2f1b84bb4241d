package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/enginetest"
	"github.com/astra-app/astra/internal/julep"
)

// runEnv is the embedded engine over HTTP with tasks/ pushed to it by
// `astra tasks push`, and the environment that points astra at it.
type runEnv struct {
	env    map[string]string
	client *julep.Client
}

func newRunEnv(t *testing.T) *runEnv {
	t.Helper()
	const key = "run-test-key"
	srv := enginetest.Start(t, engine.Options{Key: key, Concurrency: 4})
	dir := project(t)
	env := map[string]string{"ASTRA_TASKS_DIR": dir, "ASTRA_DATA_DIR": filepath.Join(filepath.Dir(dir), "data"),
		"JULEP_BASE_URL": srv.URL, "JULEP_API_KEY": key}
	if r := runAstra(t, env, "tasks", "push"); r.code != 0 {
		t.Fatalf("tasks push: %d %s %s", r.code, r.stdout, r.stderr)
	}
	c, err := julep.New(srv.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	return &runEnv{env: env, client: c}
}

var execIDRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func TestRunFollowAndInspect(t *testing.T) {
	t.Parallel()
	re := newRunEnv(t)
	const user = "6f1c7e52-8a3b-5c4d-9e0f-1a2b3c4d5e6f"
	if _, err := re.client.CreateOrUpdateUser(context.Background(), user, julep.UserInput{Name: "Asha"}); err != nil {
		t.Fatal(err)
	}
	input := fmt.Sprintf(`{"user_id":%q,"message":"hello stars","outbox_id":"cli-1"}`, user)

	r := runAstra(t, re.env, "run", "Astra responder", "--input", input, "--follow")
	if r.code != 0 {
		t.Fatalf("run: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	id := execIDRE.FindString(r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if id == "" || lines[0] != "execution "+id+" started" {
		t.Fatalf("run output:\n%s", r.stdout)
	}
	// Plain lines (not a terminal), ending with the status and the output.
	if !strings.Contains(r.stdout, "\nstatus: succeeded\n") || !strings.Contains(r.stdout, `"reply": "(offline model)`) ||
		!strings.Contains(r.stdout, `"summary":`) || strings.Contains(r.stdout, "\r") {
		t.Fatalf("run output:\n%s", r.stdout)
	}

	// Without --follow only the id is printed; the task may be named by path.
	r2 := runAstra(t, re.env, "run", "responder", "--input", input)
	if r2.code != 0 || !execIDRE.MatchString(strings.TrimSpace(r2.stdout)) || strings.Count(r2.stdout, "\n") != 1 {
		t.Fatalf("run without follow: %d %q %s", r2.code, r2.stdout, r2.stderr)
	}
	id2 := strings.TrimSpace(r2.stdout)

	r3 := runAstra(t, re.env, "executions", "list")
	if r3.code != 0 || !strings.HasPrefix(r3.stdout, "ID") || !strings.Contains(r3.stdout, id) || !strings.Contains(r3.stdout, id2) {
		t.Fatalf("list: %d\n%s\n%s", r3.code, r3.stdout, r3.stderr)
	}
	if strings.Index(r3.stdout, id2) > strings.Index(r3.stdout, id) {
		t.Fatalf("list is not newest first:\n%s", r3.stdout)
	}
	if r := runAstra(t, re.env, "executions", "list", "--task", "Astra responder", "--limit", "1"); r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("list --limit 1: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r4 := runAstra(t, re.env, "executions", "show", id)
	for _, want := range []string{"id:          " + id, "status:      succeeded", `"outbox_id": "cli-1"`, `"source": "astra-cli"`, "output:"} {
		if !strings.Contains(r4.stdout, want) {
			t.Fatalf("show lacks %q:\n%s", want, r4.stdout)
		}
	}

	r5 := runAstra(t, re.env, "executions", "logs", id)
	if r5.code != 0 {
		t.Fatalf("logs: %d %s", r5.code, r5.stderr)
	}
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(r5.stdout), "\n") {
		f := strings.Fields(l)
		kinds = append(kinds, f[1]+" "+f[3])
	}
	// The map's 3 items and the speech switch's case run as Julep's child
	// workflows: init_branch and finish_branch each.
	br := "init_branch -,finish_branch -,"
	want := "init -," + br + br + br + "step frontline_docs,step context,step reply," + br + "step speech,step summary,step save_note,finish -"
	if got := strings.Join(kinds, ","); got != want {
		t.Fatalf("logs:\n%s\ngot  %s\nwant %s", r5.stdout, got, want)
	}

	// logs --follow of a finished execution prints the same and the end.
	r6 := runAstra(t, re.env, "executions", "logs", id2, "--follow")
	if r6.code != 0 || !strings.HasSuffix(r6.stdout, "execution succeeded\n") || strings.Count(r6.stdout, "\n") != 17 {
		t.Fatalf("logs --follow: %d\n%s%s", r6.code, r6.stdout, r6.stderr)
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	re := newRunEnv(t)
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"run", "no such task"}, 2, `no task "no such task"`},
		{[]string{"run", "Astra responder", "--input", "[1]"}, 2, "--input must be a JSON object"},
		{[]string{"run", "Astra responder", "--input", `{"message":"hi"}`}, 1, "Invalid input"},
		{[]string{"executions", "show", "6f1c7e52-8a3b-4c4d-9e0f-1a2b3c4d5e6f"}, 1, "404"},
		{[]string{"executions"}, 2, "list, show or logs"},
	}
	for _, c := range cases {
		r := runAstra(t, re.env, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.stderr) {
			t.Errorf("astra %s: code %d stderr %q, want %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.stderr)
		}
	}
	// A failed execution: exit 1 with its error.
	const user = "0b5e3c1a-2d4f-5a6b-8c7d-9e0f1a2b3c4d" // not created: the docs step fails
	r := runAstra(t, re.env, "run", "Astra responder", "--follow", "--input",
		fmt.Sprintf(`{"user_id":%q,"message":"hi","outbox_id":"x"}`, user))
	if r.code != 1 || !strings.Contains(r.stdout, "status: failed") || !strings.Contains(r.stderr, "failed") {
		t.Fatalf("failed execution: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
