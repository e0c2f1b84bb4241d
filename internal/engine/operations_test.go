package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/astra-app/astra/internal/engine"
)

// upstreamSpec finds Julep's published spec beside the checkout
// (<root>/../shared/reference/julep, or one level further up from a
// worktree); "" when it is absent, as on a fresh clone in CI.
func upstreamSpec(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		dir = filepath.Dir(dir)
		p := filepath.Join(dir, "shared", "reference", "julep", "openapi-1.0.0.yaml")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// engine.Operations is exactly the upstream spec's operations (method,
// path, operationId), so the coverage test covers all of them.
func TestOperationsMatchSpec(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, op := range engine.Operations {
		k := op.Method + " " + op.Path
		if seen[k] {
			t.Errorf("%s listed twice", k)
		}
		seen[k] = true
	}
	path := upstreamSpec(t)
	if path == "" {
		t.Skip("Julep's openapi-1.0.0.yaml is not beside this checkout (../shared/reference/julep): the list is checked against the router only")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]struct {
			OperationID string `yaml:"operationId"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for p, ops := range spec.Paths {
		for m, o := range ops {
			switch m {
			case "get", "post", "put", "patch", "delete":
				want = append(want, strings.ToUpper(m)+" "+p+" "+o.OperationID)
			}
		}
	}
	for _, op := range engine.Operations {
		got = append(got, op.Method+" "+op.Path+" "+op.ID)
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Fatalf("engine.Operations differs from %s:\nspec:\n%s\nlist:\n%s", path, strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	if len(want) != 78 {
		t.Fatalf("the spec has %d operations, the README says 78", len(want))
	}
}

// The README and docs/engine-api.md state the count the list makes.
func TestDocsStateTheCoverage(t *testing.T) {
	t.Parallel()
	served := 0
	for _, op := range engine.Operations {
		if !op.NotBuilt {
			served++
		}
	}
	for file, want := range map[string]string{
		"../../README.md":          fmt.Sprintf("%d of the %d operations", served, len(engine.Operations)),
		"../../docs/engine-api.md": fmt.Sprintf("%d of the spec's %d operations served, %d answered 501", served, len(engine.Operations), len(engine.Operations)-served),
	} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), want) {
			t.Errorf("%s does not say %q", file, want)
		}
	}
}
