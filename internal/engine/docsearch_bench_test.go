package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/llm"
)

// BenchmarkDocSearch measures one user's doc search over 500 docs (two
// chunks each, offline 1024-dimension embeddings) on SQLite, per mode.
// Search is computed in the engine over every doc of the owner, so its
// cost grows with the owner's docs. Reports searches/s.
func BenchmarkDocSearch(b *testing.B) {
	state := benchState(b)
	eng, err := engine.New(engine.Options{Key: testKey, State: state, Model: llm.Offline()})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	h := eng.Handler()
	call := func(method, path string, body any) (int, []byte) {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, path, bytes.NewReader(raw))
		req.Header.Set("X-Auth-Key", testKey)
		req.Header.Set("Content-Type", "application/json")
		w := &recorder{header: http.Header{}}
		h.ServeHTTP(w, req)
		return w.status, w.body.Bytes()
	}
	const uid = "6f1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0e01"
	call("POST", "/users/"+uid, map[string]any{"name": "U"})
	words := []string{"cat", "dog", "rain", "sun", "code", "tea", "river", "stone", "music", "book"}
	for i := range 500 {
		w1, w2 := words[i%10], words[(i/10)%10]
		if s, body := call("POST", "/users/"+uid+"/docs", map[string]any{"title": fmt.Sprintf("doc %d", i),
			"content": []any{"a note about " + w1 + " and " + w2, fmt.Sprintf("entry %d mentions %s", i, w2)}}); s != 201 {
			b.Fatalf("create doc: %d %s", s, body)
		}
	}
	vec := llm.HashEmbedding("a note about cat and rain")
	for _, mode := range []struct {
		name string
		body map[string]any
	}{
		{"text", map[string]any{"text": "cat rain"}},
		{"vector", map[string]any{"vector": vec, "confidence": -1}},
		{"hybrid", map[string]any{"text": "cat rain", "vector": vec, "confidence": -1}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				if s, body := call("POST", "/users/"+uid+"/search", mode.body); s != 200 {
					b.Fatalf("search: %d %s", s, body)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "searches/s")
		})
	}
}
