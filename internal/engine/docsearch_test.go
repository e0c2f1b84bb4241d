package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/mongostate"
	"github.com/astra-app/astra/internal/engine/sqlitestate"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// newEnvOnState serves an engine over the given state (the doc search
// cases run on both backends).
func newEnvOnState(t *testing.T, state engine.State) *env {
	t.Helper()
	eng, err := engine.New(engine.Options{Key: testKey, State: state, Model: llm.Offline(), Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/julep/", http.StripPrefix("/julep", eng.Handler()))
	srv := httptest.NewServer(mux)
	e := &env{t: t, eng: eng, srv: srv, base: srv.URL + "/julep"}
	t.Cleanup(e.stop)
	return e
}

func TestDocSearchModesSQLite(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	state, err := sqlitestate.New(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	testDocSearchModes(t, newEnvOnState(t, state))
}

func TestDocSearchModesFerretDB(t *testing.T) {
	t.Parallel()
	client, err := mongo.Connect(options.Client().ApplyURI(ferrettest.Start(t)).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Disconnect(ctx)
	})
	state, err := mongostate.New(t.Context(), client.Database("t"+responder.NewID()))
	if err != nil {
		t.Fatal(err)
	}
	testDocSearchModes(t, newEnvOnState(t, state))
}

func vectorOf(e *env, text string) []any {
	e.t.Helper()
	return e.must(200, "POST", "/embed", map[string]any{"text": text})["vectors"].([]any)[0].([]any)
}

func titles(res map[string]any) []string {
	var out []string
	for _, d := range res["docs"].([]any) {
		out = append(out, d.(map[string]any)["title"].(string))
	}
	return out
}

func testDocSearchModes(t *testing.T, e *env) {
	const uid = "6f1c2a8e-0d5b-4c8e-9a57-2a1f1d1f0d01"
	e.must(201, "POST", "/users/"+uid, map[string]any{"name": "U"})
	for _, d := range []map[string]any{
		{"title": "cats", "content": "cats purr and sleep all day", "metadata": map[string]any{"k": "pets"}},
		{"title": "cats again", "content": "cats purr and sleep all day long", "metadata": map[string]any{"k": "pets"}},
		{"title": "dogs", "content": "dogs bark loudly at the mailman", "metadata": map[string]any{"k": "pets"}},
		{"title": "mixed", "content": []any{"birds sing at dawn", "fish swim in rivers"}, "metadata": map[string]any{"k": "other"}},
	} {
		doc := e.must(201, "POST", "/users/"+uid+"/docs", d)
		if doc["embedding_dimensions"] != float64(1024) || doc["embeddings"] == nil {
			t.Fatalf("doc without embeddings: %v", doc["embedding_dimensions"])
		}
	}
	search := func(body map[string]any) map[string]any {
		return e.must(200, "POST", "/users/"+uid+"/search", body)
	}
	// Vector: nearest first, every chunk a candidate, embeddings included.
	res := search(map[string]any{"vector": vectorOf(e, "fish swim"), "confidence": -1, "mmr_strength": 0, "limit": 3})
	docs := res["docs"].([]any)
	first := docs[0].(map[string]any)
	if first["title"] != "mixed" || first["snippet"].(map[string]any)["index"] != float64(1) || len(first["snippet"].(map[string]any)["embedding"].([]any)) != 1024 {
		t.Fatalf("vector search: %v", titles(res))
	}
	for i := 1; i < len(docs); i++ {
		if docs[i].(map[string]any)["distance"].(float64) < docs[i-1].(map[string]any)["distance"].(float64) {
			t.Fatalf("vector results not nearest first: %v", jsonString(docs))
		}
	}
	// confidence keeps only chunks within 1-confidence.
	if got := search(map[string]any{"vector": vectorOf(e, "fish swim"), "confidence": 0.95})["docs"].([]any); len(got) != 0 {
		t.Fatalf("confidence 0.95 kept %d", len(got))
	}
	// include_embeddings false; metadata filter.
	res = search(map[string]any{"vector": vectorOf(e, "cats purr"), "confidence": -1, "include_embeddings": false, "metadata_filter": map[string]any{"k": "other"}})
	for _, d := range res["docs"].([]any) {
		sn := d.(map[string]any)["snippet"].(map[string]any)
		if _, ok := sn["embedding"]; ok || d.(map[string]any)["title"] != "mixed" {
			t.Fatalf("filtered, no embeddings: %v", jsonString(res))
		}
	}
	// MMR: without it the two near-duplicates come first; with a strong
	// one the second pick is a different doc.
	q := vectorOf(e, "cats purr and sleep")
	plain := titles(search(map[string]any{"vector": q, "confidence": -1, "mmr_strength": 0, "limit": 2}))
	diverse := titles(search(map[string]any{"vector": q, "confidence": -1, "mmr_strength": 0.9, "limit": 2}))
	if strings.Join(plain, ",") != "cats,cats again" && strings.Join(plain, ",") != "cats again,cats" {
		t.Fatalf("plain vector top 2: %v", plain)
	}
	if len(diverse) != 2 || strings.HasPrefix(diverse[1], "cats") {
		t.Fatalf("mmr top 2: %v", diverse)
	}
	// Hybrid: text and vector fused.
	res = search(map[string]any{"text": "dogs bark", "vector": vectorOf(e, "dogs bark"), "confidence": -1, "alpha": 0.5, "mmr_strength": 0})
	if titles(res)[0] != "dogs" {
		t.Fatalf("hybrid: %v", titles(res))
	}
	// Text still works, and bad parameters are named.
	if got := titles(search(map[string]any{"text": "mailman"})); len(got) != 1 || got[0] != "dogs" {
		t.Fatalf("text: %v", got)
	}
	for field, body := range map[string]map[string]any{
		"confidence": {"vector": q, "confidence": 2},
		"alpha":      {"vector": q, "text": "x", "alpha": -1},
		"vector":     {"vector": []any{1, 2}},
		"text":       {},
	} {
		if s, v := e.do("POST", "/users/"+uid+"/search", body); s != 422 || !strings.Contains(jsonString(v), field) {
			t.Fatalf("bad %s: %d %v", field, s, v)
		}
	}
	// Agent docs: their own search, and docs.get serves any doc.
	agent := e.agent(map[string]any{"name": "A"})
	ad := e.must(201, "POST", "/agents/"+agent+"/docs", map[string]any{"title": "manual", "content": "press the red button"})
	res = e.must(200, "POST", "/agents/"+agent+"/search", map[string]any{"vector": vectorOf(e, "red button"), "confidence": -1})
	if got := titles(res); len(got) != 1 || got[0] != "manual" || res["docs"].([]any)[0].(map[string]any)["owner"].(map[string]any)["role"] != "agent" {
		t.Fatalf("agent search: %v", jsonString(res))
	}
	got := e.must(200, "GET", "/docs/"+ad["id"].(string), nil)
	if got["title"] != "manual" || len(got["embeddings"].([]any)) != 1024 {
		t.Fatalf("docs.get: %v", got["title"])
	}
	if n := len(e.must(200, "GET", "/agents/"+agent+"/docs", nil)["items"].([]any)); n != 1 {
		t.Fatalf("agent docs: %d", n)
	}
	if got := e.must(200, "GET", "/docs/"+ad["id"].(string)+"?include_embeddings=false", nil); got["embeddings"] != nil {
		t.Fatalf("docs.get without embeddings: %v", got["embeddings"] != nil)
	}
	for _, d := range e.must(200, "GET", "/users/"+uid+"/docs?include_embeddings=false", nil)["items"].([]any) {
		if d.(map[string]any)["embeddings"] != nil {
			t.Fatal("docs list with include_embeddings=false has embeddings")
		}
	}
	e.must(202, "DELETE", "/agents/"+agent+"/docs/"+ad["id"].(string), nil)
	if s, _ := e.do("GET", "/docs/"+ad["id"].(string), nil); s != 404 {
		t.Fatalf("deleted doc: %d", s)
	}
}

// Vectors round-trip through their stored form, whether the body is the
// plain JSON the engine writes or JSON a backend re-encoded (spaced, keys
// reordered, '/' escaped).
func TestDocVectorsRoundTrip(t *testing.T) {
	t.Parallel()
	vs := [][]float32{{1, -0.5, 3.25e-7}, {0}, {float32(math.Pi), 1e30}}
	plain, _ := json.Marshal(map[string]any{"id": "d", "vectors": engine.EncodeVectors(vs)})
	var m map[string]any
	_ = json.Unmarshal(plain, &m)
	pretty, _ := json.MarshalIndent(map[string]any{"vectors": m["vectors"], "id": "d"}, "", "  ")
	escaped := bytes.Replace(plain, []byte(`"id":"d"`), []byte(`"id":"d\/"`), 1)
	if !bytes.Contains(escaped, []byte(`\/`)) {
		t.Fatalf("no escape in %s", escaped)
	}
	for name, raw := range map[string][]byte{"plain": plain, "pretty": pretty, "escaped": escaped} {
		got, err := engine.DecodeVectors(raw)
		if err != nil || !reflect.DeepEqual(got, vs) {
			t.Errorf("%s: %v %v", name, got, err)
		}
	}
	if _, err := engine.DecodeVectors([]byte(`{"vectors":["abc"]}`)); err == nil {
		t.Error("a vector of 2 bytes decodes")
	}
}
