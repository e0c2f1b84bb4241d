package engine_test

import (
	"testing"

	"github.com/astra-app/astra/internal/engine"
)

// The hand-written parsers of the chat and docs paths never panic: stored
// vectors read from whatever a backend hands back (what decodes is whole
// float32s), and the template limits' check of any template source. One
// target for both keeps `make fuzz` to one instrumented build.
func FuzzVectorsAndTemplates(f *testing.F) {
	f.Add(`{"id":"d","vectors":["AACAPw==","AAAAAA=="]}`)
	f.Add(`{"vectors": [ "AACAPw==" , ]}`)
	f.Add(`{"vectors":["\/\/\/\/"]}`)
	f.Add(`{"vectors":[`)
	f.Add("{% for i in range(3) %}{{ i }}{% endfor %}")
	f.Add("{{ 'x' * 3 }}{%")
	f.Add("{{{{%%}}}")
	f.Fuzz(func(t *testing.T, s string) {
		if vs, err := engine.DecodeVectors([]byte(s)); err == nil {
			for _, v := range vs {
				_ = len(v)
			}
		}
		_ = engine.CheckTemplate(s)
	})
}
