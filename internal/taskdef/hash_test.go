package taskdef

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHashIgnoresFormatting(t *testing.T) {
	t.Parallel()
	a := "name: t # the name\nmain:\n  - log: hi\n    label: first\n"
	b := "# leading comment\nmain: [{label: first, log: 'hi'}]\nname: \"t\"\n"
	c := "name: t\nmain:\n  - log: hello\n    label: first\n"
	hash := func(src string) string {
		d, issues := ParseYAML("x.yaml", []byte(src))
		if d == nil || len(issues) > 0 {
			t.Fatalf("parse %q: %v", src, issues)
		}
		h, err := Hash(d.Value)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if hash(a) != hash(b) {
		t.Error("comments, key order or quoting changed the hash")
	}
	if hash(a) == hash(c) {
		t.Error("a content change kept the hash")
	}
	// Anchors and merge keys hash as their expansion.
	if hash("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n") != hash("base: {x: 1}\nother: {x: 1, y: 2}\n") {
		t.Error("merge keys not expanded")
	}
}

func TestCanonicalJSONTypes(t *testing.T) {
	t.Parallel()
	d, issues := ParseYAML("x.yaml", []byte("i: 3\nf: 1.5\nb: yes\nn: ~\ns: '3'\nt: 2024-01-02\nbig: 123456789012345678901234567890\n"))
	if len(issues) > 0 {
		t.Fatal(issues)
	}
	got, err := CanonicalJSON(d.Value)
	if err != nil {
		t.Fatal(err)
	}
	// YAML 1.2 (yaml.v3): "yes" is a string; dates stay text.
	want := `{"b":"yes","big":1.2345678901234568e+29,"f":1.5,"i":3,"n":null,"s":"3","t":"2024-01-02"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestPositions(t *testing.T) {
	t.Parallel()
	src := "name: t\nmain:\n  - prompt: hi\n    unwrap: true\n  - evaluate:\n      x: $ 1\n"
	d, _ := ParseYAML("x.yaml", []byte(src))
	for path, want := range map[string][2]int{
		"main":               {3, 3},
		"main[0].prompt":     {3, 13},
		"main[1].evaluate.x": {6, 10},
		"main[1].evaluate.y": {6, 7}, // missing: its parent mapping
	} {
		l, c := d.Pos(path)
		if [2]int{l, c} != want {
			t.Errorf("Pos(%s) = %d:%d, want %d:%d", path, l, c, want[0], want[1])
		}
	}
	if l, c := d.KeyPos("main[0].unwrap"); l != 4 || c != 5 {
		t.Errorf("KeyPos = %d:%d", l, c)
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	// A billion-laughs alias bomb is refused by its expanded size with one issue.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + itoa(i) + ": &a" + itoa(i) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + itoa(i-1))
		}
		b.WriteString("]\n")
	}
	_, issues := ParseYAML("bomb.yaml", []byte(b.String()))
	if len(issues) != 1 || !strings.Contains(issues[0].Message, "YAML aliases expand the document to 2.3 GB") {
		t.Errorf("issues = %v", issues)
	}
	_, issues = ParseYAML("two.yaml", []byte("a: 1\n---\nb: 2\n"))
	if len(issues) != 1 || issues[0].String() != "two.yaml:2:1: more than one YAML document in the file" {
		t.Errorf("issues = %v", strs(issues))
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestLockRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), LockName)
	l, err := ReadLock(path)
	if err != nil || l.LockfileVersion != LockfileVersion || len(l.Agents)+len(l.Tasks) != 0 {
		t.Fatalf("missing lock: %+v %v", l, err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	agentID, taskID := NewID(), NewID()
	l.Record(KindTask, "responder.yaml", taskID, "h1", at)
	l.Record(KindAgent, "agents/responder.yaml", agentID, "h0", at)
	l.RelateTask(taskID, agentID)
	l.Record(KindTask, "responder.yaml", taskID, "h2", at) // update in place
	if err := WriteLock(path, l); err != nil {
		t.Fatal(err)
	}
	back, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	if err := WriteLock(path, back); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.ReadFile(path); string(first) != string(second) {
		t.Errorf("read and write changed the lock:\n%s\n%s", first, second)
	}
	if id, ok := back.ID(KindTask, "responder.yaml"); !ok || id != taskID || back.Tasks[0].RevisionHash != "h2" ||
		back.Tasks[0].LastSynced != "2026-03-01T11:00:00Z" || back.TaskAgent(taskID) != agentID || len(back.Tasks) != 1 {
		t.Errorf("lock = %+v", back)
	}
	raw, _ := os.ReadFile(path)
	for _, key := range []string{`"lockfile_version": "0.1.0"`, `"relationships": {`, `"path": "agents/responder.yaml"`, `"revision_hash": "h2"`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("lock file lacks %s:\n%s", key, raw)
		}
	}
	if err := os.WriteFile(path, []byte(`{"agents":[{"path":"a.yaml","id":"not-a-uuid"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLock(path); err == nil || !strings.Contains(err.Error(), `"not-a-uuid", not a UUID`) {
		t.Errorf("bad id accepted: %v", err)
	}
}

// FuzzParseYAML: the loader and the checks never panic, and every issue
// names a position inside the input.
func FuzzParseYAML(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "..", "tasks", "*.yaml"))
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("name: t\nmain:\n  - over: $ _\n    map: {evaluate: {x: '{'}}\n  - switch: [{case: _, then: {log: x}}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add(scalarBomb(2000, 100))
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b]\n"))
	f.Add(manySteps(200))
	f.Add([]byte("<<: {x: 1}\nmain: [{if: $ 1, then: {workflow: main}, else: {parallel: [{get: x}]}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, issues := ParseYAML("f.yaml", data)
		if d != nil {
			issues = append(issues, ValidateTask(d)...)
			_, _ = Hash(d.Value)
		}
		// YAML breaks lines at \r\n, \n and a lone \r alike.
		lines := strings.Count(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") + strings.Count(strings.ReplaceAll(string(data), "\r\n", ""), "\r") + 2
		for _, is := range issues {
			if is.Line < 0 || is.Line > lines || is.Message == "" {
				t.Fatalf("issue out of range: %+v", is)
			}
		}
	})
}

// BenchmarkValidateTask measures the checks the engine runs at task create,
// on the repository's responder task.
func BenchmarkValidateTask(b *testing.B) {
	src, err := os.ReadFile(filepath.Join("..", "..", "tasks", "responder.yaml"))
	if err != nil {
		b.Skip(err)
	}
	d, _ := ParseYAML("responder.yaml", src)
	def := d.Value.(map[string]any)
	for b.Loop() {
		if is := ValidateDefinition(def); len(is) != 0 {
			b.Fatal(is)
		}
	}
}
