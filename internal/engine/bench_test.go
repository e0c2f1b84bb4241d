package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/sqlitestate"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// BenchmarkExecutions measures whole executions of a 3-step task (evaluate,
// offline prompt, return) created over HTTP, 100 in flight, each followed
// to its end on the engine's change feed. Reports executions/s.
func BenchmarkExecutions(b *testing.B) {
	ctx := context.Background()
	state := benchState(b)
	eng, err := engine.New(engine.Options{Key: testKey, State: state, Model: llm.Offline(), Concurrency: 100})
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	h := eng.Handler()
	call := func(method, path string, body any) map[string]any {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, path, bytes.NewReader(raw))
		req.Header.Set("X-Auth-Key", testKey)
		req.Header.Set("Content-Type", "application/json")
		w := &recorder{header: http.Header{}}
		h.ServeHTTP(w, req)
		var m map[string]any
		_ = json.Unmarshal(w.body.Bytes(), &m)
		if w.status >= 300 {
			b.Fatalf("%s %s: %d %v", method, path, w.status, m)
		}
		return m
	}
	agent := call("POST", "/agents", map[string]any{"name": "bench"})["id"].(string)
	task := call("POST", "/agents/"+agent+"/tasks", map[string]any{"name": "bench", "main": []any{
		map[string]any{"evaluate": map[string]any{"greeting": "$ 'hello ' + _.who"}},
		map[string]any{"prompt": "$ _.greeting", "unwrap": true},
		map[string]any{"return": map[string]any{"reply": "$ _"}},
	}})["id"].(string)

	b.ResetTimer()
	var (
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				id := call("POST", "/tasks/"+task+"/executions", map[string]any{"input": map[string]any{"who": "bench"}})["id"].(string)
				if status := eng.WaitTerminal(ctx, id); status != engine.StatusSucceeded {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d executions did not succeed", n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "executions/s")
}

type recorder struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(p []byte) (int, error) { return r.body.Write(p) }
func (r *recorder) WriteHeader(s int)           { r.status = s }

// benchState is engine state on a fresh SQLite file, closed with b.
func benchState(b *testing.B) engine.State {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "astra.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	state, err := sqlitestate.New(ctx, st)
	if err != nil {
		b.Fatal(err)
	}
	return state
}
