package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// Every command has Examples in its help, and --version prints the version.
func TestEveryCommandHasExamples(t *testing.T) {
	t.Parallel()
	r := runAstra(t, nil, "--version")
	if r.code != 0 || r.stdout != "astra "+version+"\n" {
		t.Errorf("--version: %d %q %s", r.code, r.stdout, r.stderr)
	}
	// Build the tree the way run does and walk it.
	var root *cobra.Command
	e := &env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
	root = &cobra.Command{Use: "astra"}
	root.AddCommand(newServeCmd(e), newVersionCmd(e))
	for _, add := range extraCommands {
		root.AddCommand(add(e))
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() {
				continue
			}
			if sub.Name() != "serve" { // serve's are set in run
				if strings.TrimSpace(sub.Example) == "" {
					t.Errorf("%s has no Examples", sub.CommandPath())
				}
			}
			walk(sub)
		}
	}
	walk(root)
	r = runAstra(t, nil, "serve", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Examples:\n  astra serve") {
		t.Errorf("serve --help: %d\n%s", r.code, r.stdout)
	}
}

// A mistyped subcommand gets a suggestion at every level, and exit 2.
func TestSubcommandTypos(t *testing.T) {
	t.Parallel()
	dir := project(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serv"}, "Did you mean this?\n\tserve"},
		{[]string{"taks"}, "Did you mean this?\n\ttasks"},
		{[]string{"tasks", "pusj"}, `unknown command "pusj" for "astra tasks" (did you mean "push"?)`},
		{[]string{"tasks", "dif"}, `(did you mean "diff"?)`},
		{[]string{"executions", "lst"}, `unknown command "lst" for "astra executions" (did you mean "list"?)`},
		{[]string{"executions", "zzzzzz"}, `(commands: list, logs, show)`},
	} {
		r := runAstra(t, envFor(dir, nil), c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("astra %s: %d %q, want exit 2 and %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}

// Configuration errors: the flag is named when a flag gave the value, an
// empty --roles is refused, and every one exits 2 (a missing
// BETTER_AUTH_SECRET too).
func TestConfigErrorsNameTheFlag(t *testing.T) {
	t.Parallel()
	base := map[string]string{"ASTRA_DATA_DIR": t.TempDir()}
	file := filepath.Join(t.TempDir(), "a-file") // a data dir under a file cannot be created
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		env       map[string]string
		args      []string
		want, not string
	}{
		{with(), []string{"serve", "--roles", ""}, "--roles is empty: give api, dispatch or api,dispatch", "ASTRA_ROLES"},
		{with(), []string{"serve", "--roles", "web"}, `--roles has "web": roles are api and dispatch`, "ASTRA_ROLES"},
		{with("ASTRA_ROLES", "web"), []string{"serve"}, `ASTRA_ROLES has "web"`, "--roles"},
		{with(), []string{"serve", "--addr", "nonsense"}, `--addr "nonsense" is not host:port`, "ASTRA_ADDR"},
		{with(), []string{"serve", "--log-level", "loud"}, `--log-level "loud" is not one of`, "ASTRA_LOG_LEVEL"},
		{with(), []string{"tasks", "list", "--julep-url", "ftp://x"}, `--julep-url "ftp://x" is not an http(s) URL`, "JULEP_BASE_URL"},
		{with("MONGODB_URI", "mongodb://127.0.0.1:1/", "ASTRA_ADDR", "127.0.0.1:0"), []string{"serve"}, "BETTER_AUTH_SECRET is required with MONGODB_URI", ""},
		{with("ASTRA_ADDR", "127.0.0.1:0"), []string{"serve", "--data-dir", filepath.Join(file, "sub")}, "--data-dir " + strconvQuote(filepath.Join(file, "sub")) + " cannot be created", "ASTRA_DATA_DIR"},
	} {
		r := runAstra(t, c.env, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || c.not != "" && strings.Contains(r.stderr, c.not) {
			t.Errorf("astra %q: exit %d %q, want 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

// --user resolves a signed-up person to their deterministic Julep user; the
// documented example works; --follow prints each state once; -o json.
func TestRunAsUser(t *testing.T) {
	t.Parallel()
	re := newRunEnv(t)
	ctx := context.Background()
	if err := os.MkdirAll(re.env["ASTRA_DATA_DIR"], 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(re.env["ASTRA_DATA_DIR"], "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	u := &responder.User{Email: "you@example.com", Name: "Asha"}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// The README's and the help's example, as written.
	r := runAstra(t, re.env, "run", "responder", "--user", "you@example.com", "--input", `{"message":"hello","outbox_id":"cli-1"}`, "--follow")
	if r.code != 0 {
		t.Fatalf("run --user: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, s := range []string{"running", "succeeded"} {
		if n := strings.Count(r.stdout, "status: "+s+"\n"); n > 1 {
			t.Errorf("status %s printed %d times:\n%s", s, n, r.stdout)
		}
	}
	if strings.Count(r.stdout, "status: succeeded\n") != 1 || !strings.Contains(r.stdout, `"reply": "(offline model)`) {
		t.Errorf("run output:\n%s", r.stdout)
	}
	julepUser := responder.JulepUserID(u.ID)
	got, err := re.client.GetUser(ctx, julepUser)
	if err != nil || got.Name != "Asha" {
		t.Errorf("Julep user %s: %+v %v", julepUser, got, err)
	}

	r = runAstra(t, re.env, "run", "responder", "--user", "you@example.com", "--input", `{"message":"again","outbox_id":"cli-2"}`, "--follow", "-o", "json")
	var x struct {
		ID     string         `json:"id"`
		Status string         `json:"status"`
		Input  map[string]any `json:"input"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &x); err != nil || r.code != 0 || x.Status != "succeeded" || x.Input["user_id"] != julepUser {
		t.Fatalf("run -o json: %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"executions", "show", x.ID, "-o", "json"}, {"executions", "list", "-o", "json"}, {"executions", "logs", x.ID, "-o", "json"}, {"executions", "show", x.ID, "-o", "yaml"}} {
		r := runAstra(t, re.env, args...)
		if r.code != 0 || !strings.Contains(r.stdout, x.ID) {
			t.Errorf("%q: %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if args[len(args)-1] == "json" && !json.Valid([]byte(r.stdout)) {
			t.Errorf("%q: not JSON:\n%s", args, r.stdout)
		}
	}

	r = runAstra(t, re.env, "run", "responder", "--user", "nobody@example.com", "--input", `{"message":"x"}`)
	if r.code != 2 || !strings.Contains(r.stderr, "--user nobody@example.com: no such user in") {
		t.Errorf("unknown user: %d %s", r.code, r.stderr)
	}
}

// `astra engine` keeps its generated key in the data dir's engine-key (0600),
// prints the path and never the key, and reuses it on the next start.
func TestEngineKeepsItsKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func() (stderr string) {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errb syncBuffer
		done := make(chan error, 1)
		env := map[string]string{"JULEP_BASE_URL": "http://julep.invalid"} // must not matter
		go func() {
			done <- run(ctx, []string{"engine", "--addr", "127.0.0.1:0", "--data-dir", dir}, func(k string) string { return env[k] }, &out, &errb)
		}()
		deadline := time.After(30 * time.Second)
		for !strings.Contains(out.String(), "listening on") {
			select {
			case err := <-done:
				t.Fatalf("engine stopped: %v\n%s", err, errb.String())
			case <-deadline:
				t.Fatalf("engine did not start:\n%s", errb.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return errb.String()
	}
	first := start()
	path := filepath.Join(dir, "engine-key")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(b))
	st, _ := os.Stat(path)
	if len(key) < 32 || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %d chars, mode %v", len(key), st.Mode().Perm())
	}
	if !strings.Contains(first, "generated an API key and kept it in "+path) || strings.Contains(first, key) {
		t.Errorf("first start said:\n%s", first)
	}
	second := start()
	b2, _ := os.ReadFile(path)
	if string(b2) != string(b) || !strings.Contains(second, "API key in "+path) || strings.Contains(second, key) {
		t.Errorf("second start said:\n%s", second)
	}
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
