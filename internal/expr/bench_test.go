package expr

import (
	"context"
	"testing"
)

func BenchmarkEvaluate(b *testing.B) {
	vars := map[string]any{
		"_":     map[string]any{"topic": "  the history of tea  ", "price": 3.5},
		"steps": []any{map[string]any{"input": map[string]any{"topic": "tea"}, "output": "ok"}},
	}
	cases := []struct{ name, src string }{
		{"expr_strip", "$ _.topic.strip()"},
		{"fstring", "Write about {_.topic.strip()} for {steps[0].input.topic!r}, price {_.price:.2f}"},
		{"comprehension", "$ [w.upper() for w in _.topic.split() if len(w) > 2]"},
	}
	ctx := context.Background()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if _, err := Evaluate(ctx, c.src, vars); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Evaluate(ctx, c.src, vars); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("compile_uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := compileString("Write about {_.topic.strip()} for {steps[0].input.topic!r}"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
