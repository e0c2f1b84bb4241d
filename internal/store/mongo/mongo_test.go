package mongo_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
	"github.com/astra-app/astra/internal/store/mongo"
	"github.com/astra-app/astra/internal/store/storetest"
)

// openStore opens a store on a fresh database at uri and drops the database
// when the test ends.
func openStore(t testing.TB, uri string, opts mongo.Options) *mongo.Store {
	t.Helper()
	s, err := mongo.Open(t.Context(), uri, "t"+responder.NewID(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Database().Drop(ctx)
		_ = s.Close()
	})
	return s
}

// openWriters opens one store per clock on one fresh database at uri:
// instances sharing a database whose clocks disagree.
func openWriters(t *testing.T, uri string, clocks []func() time.Time) []responder.Store {
	t.Helper()
	db := "t" + responder.NewID()
	var out []responder.Store
	for _, c := range clocks {
		s, err := mongo.Open(t.Context(), uri, db, mongo.Options{Now: c})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.Database().Drop(ctx)
			_ = s.Close()
		})
		out = append(out, s)
	}
	return out
}

// newFerretStore gives the test its own FerretDB server and database.
func newFerretStore(t testing.TB, opts mongo.Options) *mongo.Store {
	t.Helper()
	return openStore(t, ferrettest.Start(t), opts)
}

func TestConformanceFerretDB(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) responder.Store {
		return newFerretStore(t, mongo.Options{})
	}, storetest.Options{Concurrent: false, OpenWriters: func(t *testing.T, clocks ...func() time.Time) []responder.Store {
		return openWriters(t, ferrettest.Start(t), clocks)
	}})
}

// realMongoURI is a real MongoDB (ideally a replica set) to test against
// too, for what FerretDB cannot show: truly concurrent atomic claims.
func realMongoURI(t *testing.T) string {
	uri := os.Getenv("ASTRA_TEST_MONGODB_URI")
	if uri == "" {
		t.Skip("ASTRA_TEST_MONGODB_URI is not set: no real MongoDB to run the concurrent conformance suite against")
	}
	return uri
}

func TestConformanceMongoDB(t *testing.T) {
	t.Parallel()
	uri := realMongoURI(t)
	storetest.Run(t, func(t *testing.T) responder.Store {
		return openStore(t, uri, mongo.Options{})
	}, storetest.Options{Concurrent: true, OpenWriters: func(t *testing.T, clocks ...func() time.Time) []responder.Store {
		return openWriters(t, uri, clocks)
	}})
}

func TestUnreachableServerFailsFast(t *testing.T) {
	t.Parallel()
	// A loopback port nobody listens on: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	uri := "mongodb://astra:sup3rs3cret@" + addr + "/"
	s, err := mongo.Open(t.Context(), uri, "astra", mongo.Options{ServerSelectionTimeout: 200 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	want := "connect to MongoDB: server selection timed out after 200ms (check MONGODB_URI)"
	if err.Error() != want {
		t.Errorf("Open error = %q, want %q", err, want)
	}
	if strings.Contains(err.Error(), "sup3rs3cret") {
		t.Errorf("Open error shows the password: %q", err)
	}
	if code := responder.ErrorCode(err); code != responder.EUNAVAILABLE {
		t.Errorf("Open error code = %q, want %q", code, responder.EUNAVAILABLE)
	}
}

func TestOpenRejectsBadURIWithoutPassword(t *testing.T) {
	t.Parallel()
	_, err := mongo.Open(t.Context(), "mongodb://astra:sup3rs3cret@127.0.0.1:1/?authMechanism=NOPE", "astra", mongo.Options{})
	if err == nil {
		t.Fatal("Open with an unknown auth mechanism succeeded")
	}
	if strings.Contains(err.Error(), "sup3rs3cret") {
		t.Errorf("Open error shows the password: %q", err)
	}
}
