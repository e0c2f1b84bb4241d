// Package enginetest serves the embedded Julep engine over HTTP for other
// packages' tests: state in a SQLite file of the test's own, the offline
// model unless told otherwise, and everything closed when the test ends.
// Only tests import it.
package enginetest

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/sqlitestate"
	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// DefaultKey is the API key when Options.Key is empty.
const DefaultKey = "enginetest-key"

// Server is a running engine and the httptest server in front of it.
type Server struct {
	*httptest.Server
	Engine *engine.Engine
	Key    string
}

// Start serves an engine with o; empty fields get a fresh SQLite state, the
// offline model, DefaultKey and a concurrency of 8.
func Start(t testing.TB, o engine.Options) *Server {
	t.Helper()
	ctx := context.Background()
	if o.State == nil {
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "engine.db"))
		if err != nil {
			t.Fatalf("open engine database: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		if o.State, err = sqlitestate.New(ctx, st); err != nil {
			t.Fatalf("engine state: %v", err)
		}
	}
	if o.Model == nil {
		o.Model = llm.Offline()
	}
	if o.Key == "" {
		o.Key = DefaultKey
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	eng, err := engine.New(o)
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatalf("start engine: %v", err)
	}
	srv := httptest.NewServer(eng.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections() // status streams would hold Close
		srv.Close()
		eng.Close()
	})
	return &Server{Server: srv, Engine: eng, Key: o.Key}
}
