package llm

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The OpenAI-compatible embedder sends the texts and model to /embeddings
// and places each vector by its index, whatever order they come in.
func TestOpenAIEmbedder(t *testing.T) {
	t.Parallel()
	var got struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/embeddings" || r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, "wrong path or key", 400)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","model":"m","data":[
			{"object":"embedding","index":1,"embedding":[0,1]},
			{"object":"embedding","index":0,"embedding":[1,0]}],"usage":{"prompt_tokens":2,"total_tokens":2}}`))
	}))
	defer srv.Close()
	e := NewOpenAIEmbedder(srv.URL+"/v1", "k", "m", nil)
	vs, err := e.Embed(t.Context(), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != "m" || strings.Join(got.Input, ",") != "a,b" || e.Name() != "m" {
		t.Fatalf("request %+v", got)
	}
	if vs[0][0] != 1 || vs[1][1] != 1 {
		t.Fatalf("vectors out of order: %v", vs)
	}
	if _, err := NewOpenAIEmbedder(srv.URL+"/v1", "wrong", "m", nil).Embed(t.Context(), []string{"a"}); err == nil {
		t.Fatal("a refused request gave vectors")
	}
}

func TestOfflineEmbedderIsDeterministicAndNormalised(t *testing.T) {
	t.Parallel()
	a, b := HashEmbedding("the cat sat"), HashEmbedding("the cat sat")
	var n float64
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("offline embedding differs between calls")
		}
		n += a[i] * a[i]
	}
	if len(a) != OfflineDimensions || math.Abs(n-1) > 1e-9 {
		t.Fatalf("dims %d norm² %g", len(a), n)
	}
	cos := func(x, y []float64) float64 {
		var d float64
		for i := range x {
			d += x[i] * y[i]
		}
		return d
	}
	if near, far := cos(a, HashEmbedding("a cat sat down")), cos(a, HashEmbedding("quarterly revenue report")); near <= far {
		t.Fatalf("shared words not closer: %g <= %g", near, far)
	}
	if v := HashEmbedding(""); v[0] != 0 {
		t.Fatal("empty text is not the zero vector")
	}
}
