package ferrettest_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/store/ferrettest"
)

// TestStart checks that the embedded FerretDB answers a round trip, which
// also catches a clash between FerretDB and the SQLite driver versions the
// module graph lifts it to.
func TestStart(t *testing.T) {
	t.Parallel()
	uri := ferrettest.Start(t)

	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })

	coll := client.Database("ferrettest").Collection("things")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "name", Value: "one"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var got struct {
		Name string `bson:"name"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "name", Value: "one"}}).Decode(&got); err != nil {
		t.Fatalf("find: %v", err)
	}
	if got.Name != "one" {
		t.Fatalf("name = %q, want one", got.Name)
	}
}

// TestNotInBinary keeps FerretDB a test-only dependency: the astra command
// must never link it (nor this helper).
func TestNotInBinary(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH: cannot list the astra binary's dependencies")
	}
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-e", "-deps", "github.com/astra-app/astra/cmd/astra").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := strings.Fields(string(out))
	if !slices.Contains(pkgs, "github.com/astra-app/astra/cmd/astra") {
		t.Fatalf("go list did not list cmd/astra itself: %q", out)
	}
	for _, pkg := range pkgs {
		if strings.HasPrefix(pkg, "github.com/FerretDB/") || strings.HasSuffix(pkg, "/ferrettest") {
			t.Errorf("cmd/astra depends on %s", pkg)
		}
	}
}

// TestSerializedClaimsOnce races claims of one document from several
// clients (as several processes would) through the serialising proxy:
// exactly one findOneAndUpdate may win.
func TestSerializedClaimsOnce(t *testing.T) {
	t.Parallel()
	uri := ferrettest.Serialized(t, ferrettest.Start(t))
	ctx := context.Background()
	const clients, rounds = 4, 10
	colls := make([]*mongo.Collection, clients)
	for i := range colls {
		c, err := mongo.Connect(options.Client().ApplyURI(uri + "?maxPoolSize=4"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
		colls[i] = c.Database("ferrettest").Collection("claims")
	}
	for r := range rounds {
		if _, err := colls[0].InsertOne(ctx, bson.D{{Key: "_id", Value: r}, {Key: "owner", Value: ""}}); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	wins := make([]int, rounds)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, coll := range colls {
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					err := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: r}, {Key: "owner", Value: ""}},
						bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: fmt.Sprint(i, "/", g)}}}}).Err()
					switch {
					case err == nil:
						mu.Lock()
						wins[r]++
						mu.Unlock()
					case !errors.Is(err, mongo.ErrNoDocuments):
						t.Errorf("claim: %v", err)
					}
				}
			}()
		}
	}
	wg.Wait()
	for r, n := range wins {
		if n != 1 {
			t.Errorf("document %d was claimed %d times, want once", r, n)
		}
	}
}
