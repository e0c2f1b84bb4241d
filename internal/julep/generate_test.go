package julep

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates julepapi from api/julep.yaml into a
// temporary file and fails if the committed julepapi.gen.go differs: edit the
// description, then run `go generate ./internal/julep/...`.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and runs oapi-codegen")
	}
	root := repoRoot(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found; cannot run oapi-codegen to check julepapi.gen.go")
	}
	if out, err := exec.Command(goBin, "-C", root, "tool", "oapi-codegen", "-version").CombinedOutput(); err != nil {
		t.Skipf("cannot run oapi-codegen (go tool oapi-codegen -version: %v)\n%s", err, out)
	}

	// The config names its output relative to the generator's directory; point
	// it at a temporary file instead (the -o flag does not override it).
	cfg, err := os.ReadFile(filepath.Join(root, "api", "oapi-codegen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "julepapi.gen.go")
	outputLine := regexp.MustCompile(`(?m)^output:.*$`)
	if !outputLine.Match(cfg) {
		t.Fatal("api/oapi-codegen.yaml has no top-level output: line")
	}
	cfg = outputLine.ReplaceAll(cfg, []byte("output: "+out))
	tmpCfg := filepath.Join(dir, "oapi-codegen.yaml")
	if err := os.WriteFile(tmpCfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "tool", "oapi-codegen", "-config", tmpCfg, filepath.Join(root, "api", "julep.yaml"))
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen failed on api/julep.yaml: %v\n%s", err, msg)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(root, "internal", "julep", "julepapi", "julepapi.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatal("internal/julep/julepapi/julepapi.gen.go is stale: run `go generate ./internal/julep/...` and commit the result")
	}
}

// repoRoot is the directory holding go.mod, found upwards from the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}
