package taskdef

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/astra-app/astra/internal/engine/integrations"
	"github.com/astra-app/astra/internal/expr"
)

// TestFeatureTableIsTrue reads the Julep v1 feature table in
// docs/task-authoring.md and checks each row against the code: a step kind
// must be one this package accepts, an expression name must evaluate (or,
// marked not supported, be undefined), an integration provider must be
// available exactly when it is not marked "not supported". Every step kind
// and every provider the engine has must have a row.
func TestFeatureTableIsTrue(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/task-authoring.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]bool{"step": {}, "integration": {}, "expression": {}}
	rows := 0
	for _, line := range strings.Split(string(raw), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 {
			continue
		}
		kind, feature, status := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2]), strings.TrimSpace(cells[3])
		if _, ok := seen[kind]; !ok {
			continue
		}
		rows++
		if status != "supported" && status != "differs" && status != "not supported" {
			t.Errorf("%s %s: status %q, want supported, differs or not supported", kind, feature, status)
		}
		if status == "differs" && strings.TrimSpace(cells[4]) == "" {
			t.Errorf("%s %s: differs, but the row does not say how", kind, feature)
		}
		supported := status != "not supported"
		for _, name := range strings.Split(feature, ",") {
			name = strings.TrimSpace(name)
			seen[kind][name] = true
			switch kind {
			case "step":
				key := name
				if name == "map" {
					key = "over"
				}
				if slices.Contains(stepKinds, key) != supported {
					t.Errorf("step %s is marked %q but the task checker disagrees", name, status)
				}
			case "integration":
				if (integrations.Check(name, "") == nil) != supported {
					t.Errorf("integration %s is marked %q but the engine disagrees", name, status)
				}
			case "expression":
				_, err := expr.Evaluate(context.Background(), "$ str("+name+")[:0]", nil)
				if (err == nil) != supported {
					t.Errorf("expression name %s is marked %q, but evaluating it gives %v", name, status, err)
				}
			}
		}
	}
	if rows < 30 {
		t.Fatalf("found %d rows: is the table still there?", rows)
	}
	for _, k := range stepKinds {
		if k != "over" && !seen["step"][k] {
			t.Errorf("step kind %s has no row", k)
		}
	}
	for _, p := range integrations.Providers() {
		if !seen["integration"][p] {
			t.Errorf("integration %s has no row", p)
		}
	}
}
