package expr

import (
	"context"
	"strings"
	"testing"
	"time"
)

func fuzzSeeds(f *testing.F) {
	for _, list := range [][]vector{sampleVectors, libraryVectors, languageVectors} {
		for _, v := range list {
			f.Add(v.src)
		}
	}
	// The attacks of bounds_test.go: the fuzzer mutates them into others.
	for _, a := range attackVectors {
		f.Add(a.src)
	}
	for _, s := range []string{"$ f'{", "$ {", "{{", "}}", "$ f'''{x:{y:{z}}}'''", "$ a ** ** b", "$ 1 < < 2", "$ \\", "$ f'{x!'", "$ (", "$ 'a' % ()"} {
		f.Add(s)
	}
}

// FuzzCompile: compiling any string returns a program or an error, never panics.
func FuzzCompile(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := compileString(s) // not the recovering wrapper: a panic fails the fuzzer
		if err == nil && c == nil {
			t.Fatalf("compileString(%q) returned neither program nor error", s)
		}
		if err := Check(s); err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("Check(%q) error is not one line: %q", s, err)
		}
	})
}

// FuzzEvaluate: evaluating any string with typical vars terminates quickly
// and never hits an internal error.
func FuzzEvaluate(f *testing.F) {
	fuzzSeeds(f)
	vars := map[string]any{
		"_":       map[string]any{"topic": "cats", "n": 3.0, "items": []any{"a", "b"}},
		"steps":   []any{map[string]any{"label": "first", "input": map[string]any{"x": 1.0}, "output": "o"}},
		"inputs":  []any{map[string]any{"x": 1.0}},
		"secrets": map[string]string{"K": "secret-value"},
	}
	lim := limits{timeout: 200 * time.Millisecond, maxSteps: 200_000, maxAlloc: 8 << 20}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Compile(s)
		if err != nil {
			return
		}
		_, err = p.eval(context.Background(), vars, lim)
		if err != nil && strings.Contains(err.Error(), "internal error") {
			t.Fatalf("Evaluate(%q): %v", s, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret-value") {
			t.Fatalf("Evaluate(%q) leaked a secret: %v", s, err)
		}
	})
}
