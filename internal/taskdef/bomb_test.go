package taskdef

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// scalarBomb is a task whose one anchored scalar of n characters is
// repeated by aliases: small on disk, huge once expanded.
func scalarBomb(n, aliases int) []byte {
	var b strings.Builder
	b.WriteString("name: bomb\nbig: &big " + strings.Repeat("x", n) + "\nmain:\n")
	for i := 0; i < aliases; i++ {
		b.WriteString("  - log: *big\n")
	}
	return []byte(b.String())
}

// manySteps is a task of n steps, each of an unknown kind.
func manySteps(n int) []byte {
	var b strings.Builder
	b.WriteString("name: many\nmain:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - bogus%d: 1\n", i)
	}
	return []byte(b.String())
}

func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestAliasBombRefused(t *testing.T) {
	// Not parallel: TotalAlloc is process-wide.
	for _, c := range []struct {
		name           string
		n, aliases     int
		want           string
		maxAllocations uint64
	}{
		{"209 KB", 200_000, 1_000, "bomb.yaml:23:10: YAML aliases expand the document to 190.9 MB, over the limit of 4.0 MB", 64 << 20},
		{"1 MB", 1_000_000, 1_000, "bomb.yaml:7:10: YAML aliases expand the document to 954.6 MB, over the limit of 4.0 MB", 64 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := scalarBomb(c.n, c.aliases)
			var issues []Issue
			var d *Doc
			got := allocated(func() { d, issues = ParseYAML("bomb.yaml", data) })
			if d != nil || len(issues) != 1 {
				t.Fatalf("doc %v, issues %v", d != nil, strs(issues))
			}
			if msg := issues[0].String(); !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Errorf("issue %q, want %q", msg, c.want)
			}
			if got > c.maxAllocations {
				t.Errorf("parsing the bomb allocated %d MB", got>>20)
			}
		})
	}
}

// A file of aliases within the limit still loads, aliases expanded.
func TestAliasesWithinLimit(t *testing.T) {
	t.Parallel()
	d, issues := ParseYAML("ok.yaml", scalarBomb(1000, 100))
	if d == nil || HasErrors(issues) {
		t.Fatalf("issues %v", strs(issues))
	}
	main := d.Value.(map[string]any)["main"].([]any)
	if len(main) != 100 || main[99].(map[string]any)["log"] != strings.Repeat("x", 1000) {
		t.Fatalf("aliases not expanded: %d steps", len(main))
	}
}

func TestIssuesCapped(t *testing.T) {
	t.Parallel()
	for _, n := range []int{60, 100_000} {
		d, issues := ParseYAML("many.yaml", manySteps(n))
		if d != nil {
			issues = append(issues, ValidateTask(d)...)
		}
		if len(issues) > maxIssues+2 {
			t.Fatalf("%d steps: %d issues", n, len(issues))
		}
		last := issues[len(issues)-1].String()
		if !strings.Contains(last, " more errors") {
			t.Errorf("%d steps: last issue %q, want a count of the rest", n, last)
		}
	}
	d, issues := ParseYAML("many.yaml", manySteps(60))
	issues = append(issues, ValidateTask(d)...)
	if last := issues[len(issues)-1].String(); last != "many.yaml:53:5: and 10 more errors" {
		t.Errorf("last issue %q", last)
	}
}
