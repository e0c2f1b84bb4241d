package expr

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// referenceDir finds shared/reference/julep beside the repository (as laid
// out for developers and CI); tests that need it skip when it is absent.
func referenceDir(t *testing.T) string {
	t.Helper()
	for _, dir := range []string{"../../../shared/reference/julep", "/work/shared/reference/julep"} {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		}
	}
	t.Skip("shared/reference/julep not found")
	return ""
}

func taskFiles(t *testing.T, root string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "sample_tasks", "*.yaml"))
	_ = filepath.WalkDir(filepath.Join(root, "library"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yaml") && strings.Contains(filepath.ToSlash(path), "/src/tasks/") {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	return files
}

// stepStrings returns every string inside the step lists of a task (main and
// named sub-workflows), with a path for messages.
func stepStrings(task map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case string:
			out[path] = x
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case map[string]any:
			for k, e := range x {
				walk(path+"."+k, e)
			}
		}
	}
	for key, v := range task {
		switch key {
		case "name", "description", "input_schema", "tools", "metadata", "inherit_tools":
			continue
		}
		if steps, ok := v.([]any); ok {
			walk(key, steps)
		}
	}
	return out
}

// knownInvalid lists task strings that do not compile in Julep either, with
// the reason. Each entry is a file name and a substring of the string.
var knownInvalid = []struct{ file, contains, why string }{
	{"reclaim-example.yaml", "{% for instruction in agent.instructions %}", "Jinja {% %} blocks and raw JSON braces are not f-string syntax"},
	{"hn-newsletter-task.yaml", `{_[\"comment_id\"]}`, `a backslash outside a string literal (\") is not Python`},
	{"email-assistant-task.yaml", "{steps[0].input.from}", "`from` is a Python keyword, so `.from` is a syntax error"},
}

func TestCheckReferenceTasks(t *testing.T) {
	t.Parallel()
	root := referenceDir(t)
	files := taskFiles(t, root)
	if len(files) < 6 {
		t.Fatalf("found only %d task files under %s", len(files), root)
	}
	total := 0
	matched := make([]bool, len(knownInvalid))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var task map[string]any
		if err := yaml.Unmarshal(raw, &task); err != nil {
			t.Logf("%s: not YAML we can read (%v); skipped", f, err)
			continue
		}
		for path, s := range stepStrings(task) {
			total++
			err := Check(s)
			expected := false
			for i, k := range knownInvalid {
				if filepath.Base(f) == k.file && strings.Contains(s, k.contains) {
					expected = true
					if err != nil {
						matched[i] = true
					}
				}
			}
			if err != nil && !expected {
				t.Errorf("%s %s: %v", filepath.Base(f), path, err)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("%s %s: error is not one line: %q", filepath.Base(f), path, err)
			}
		}
	}
	for i, k := range knownInvalid {
		if !matched[i] {
			t.Errorf("%s: expected a string containing %q to fail (%s), but none did", k.file, k.contains, k.why)
		}
	}
	if total < 200 {
		t.Fatalf("checked only %d strings", total)
	}
	t.Logf("checked %d strings in %d task files", total, len(files))
}
