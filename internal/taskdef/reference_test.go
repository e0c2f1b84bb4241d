package taskdef

import (
	"os"
	"path/filepath"
	"testing"
)

// refDir is the read-only Julep reference material beside the repository.
var refDir = filepath.Join("..", "..", "..", "shared", "reference", "julep")

func referenceTasks(t *testing.T) []string {
	t.Helper()
	samples, _ := filepath.Glob(filepath.Join(refDir, "sample_tasks", "*.yaml"))
	library, _ := filepath.Glob(filepath.Join(refDir, "library", "*", "*", "src", "tasks", "*.yaml"))
	all := append(samples, library...)
	if len(all) == 0 {
		t.Skipf("no reference tasks under %s: skipping (the Julep reference material is not present)", refDir)
	}
	return all
}

func TestReferenceTasksValidate(t *testing.T) {
	t.Parallel()
	for _, f := range referenceTasks(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			d, issues := ParseYAML(f, b)
			if d != nil {
				issues = append(issues, ValidateTask(d)...)
			}
			for _, is := range issues {
				t.Log(is)
			}
		})
	}
}
