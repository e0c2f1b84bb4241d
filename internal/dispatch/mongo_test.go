package dispatch_test

import (
	"context"
	"os"
	"testing"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
	"github.com/astra-app/astra/internal/store/mongo"
)

// openMongo is the MongoDB backend on an embedded FerretDB, or on the real
// MongoDB that ASTRA_TEST_MONGODB_URI names (a fresh database per test).
func openMongo(t *testing.T) responder.Store {
	t.Helper()
	uri := os.Getenv("ASTRA_TEST_MONGODB_URI")
	if uri == "" {
		uri = ferrettest.Start(t)
	}
	st, err := mongo.Open(context.Background(), uri, "dispatch_"+responder.NewID(), mongo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("ASTRA_TEST_MONGODB_URI") != "" {
			_ = st.Database().Drop(context.Background())
		}
		st.Close()
	})
	return st
}

func TestHappyPathMongo(t *testing.T) {
	t.Parallel()
	happyPath(t, openMongo(t))
}
