// Package ferrettest runs an embedded FerretDB (SQLite backend) for tests of
// code that speaks the MongoDB wire protocol. Only tests import it, so
// FerretDB is never linked into the astra binary.
package ferrettest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// newMu serialises ferretdb.New, which sets a package-level variable of
// FerretDB's (its version's Package field) on every call, so parallel tests
// starting servers would race on it.
var newMu sync.Mutex

// Start runs a FerretDB server on a loopback port with its data in a fresh
// temporary directory, stops it when the test ends, and returns its MongoDB
// URI.
//
// The URI carries maxPoolSize=1: FerretDB applies findOneAndUpdate and $inc
// as a read followed by a write, so two concurrent connections can both claim
// one row. A single connection serialises every operation of the client,
// which keeps them atomic as far as that client can observe. Tests that need
// true concurrency must run against a real MongoDB.
//
// FerretDB's own log is discarded unless ASTRA_TEST_FERRETDB_LOG is set.
func Start(t testing.TB) string {
	t.Helper()

	logOut := io.Discard
	if os.Getenv("ASTRA_TEST_FERRETDB_LOG") != "" {
		logOut = os.Stderr
	}

	// FerretDB wants an existing directory and a trailing slash; each
	// database becomes one SQLite file in it. (mode=memory hangs in v1.24.)
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    slog.New(slog.NewTextHandler(logOut, nil)),
		Handler:   "sqlite",
		SQLiteURL: "file:" + t.TempDir() + "/",
	})
	newMu.Unlock()
	if err != nil {
		t.Fatalf("start FerretDB: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx) // only returns, with nil, once ctx is cancelled
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// MongoDBURI is "mongodb://127.0.0.1:PORT/"; the listener is already
	// bound by New, so this does not wait on Run.
	return f.MongoDBURI() + "?maxPoolSize=1"
}
