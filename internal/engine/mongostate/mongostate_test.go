package mongostate_test

import (
	"context"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/mongostate"
	"github.com/astra-app/astra/internal/engine/statetest"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
)

// connect opens a client to uri, disconnected when the test ends.
func connect(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Disconnect(ctx)
	})
	return client
}

// newState returns a state on a fresh database of client, dropped when the
// test ends.
func newState(t *testing.T, client *mongo.Client) *mongostate.State {
	t.Helper()
	return newStateOn(t, client, "t"+responder.NewID()).state
}

type testState struct {
	state *mongostate.State
	db    *mongo.Database
}

// newStateOn returns a state on database name of client, dropped when the
// test ends.
func newStateOn(t *testing.T, client *mongo.Client, name string) testState {
	t.Helper()
	db := client.Database(name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
	})
	s, err := mongostate.New(t.Context(), db)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return testState{state: s, db: db}
}

// TestConformanceFerretDB runs the shared suite on an embedded FerretDB,
// each case with its own server and database. The client has one
// connection (see ferrettest), so concurrent Advance calls interleave
// operation by operation rather than truly at once.
func TestConformanceFerretDB(t *testing.T) {
	t.Parallel()
	statetest.Run(t, func(t *testing.T) engine.State {
		return newState(t, connect(t, ferrettest.Start(t)))
	})
}

// TestConformanceMongoDB runs the shared suite on a real MongoDB, where
// concurrent Advance calls really race.
func TestConformanceMongoDB(t *testing.T) {
	t.Parallel()
	uri := os.Getenv("ASTRA_TEST_MONGODB_URI")
	if uri == "" {
		t.Skip("ASTRA_TEST_MONGODB_URI is not set: no real MongoDB to run the suite (and true concurrent Advance races) against")
	}
	client := connect(t, uri)
	statetest.Run(t, func(t *testing.T) engine.State { return newState(t, client) })
}
