package mongo

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/store/ferrettest"
)

// TestIsDuplicate checks that both ways a server reports a unique index
// violation are recognised: 11000 for an insert, and FerretDB's
// InternalError for a duplicate made by an update.
func TestIsDuplicate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	client, err := mongo.Connect(options.Client().ApplyURI(ferrettest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(ctx) })
	coll := client.Database("dup").Collection("things")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "k", Value: k}}); err != nil {
			t.Fatal(err)
		}
	}

	_, err = coll.InsertOne(ctx, bson.D{{Key: "k", Value: "a"}})
	if err == nil || !isDuplicate(err) {
		t.Errorf("duplicate insert: isDuplicate(%v) = false", err)
	}
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "k", Value: "b"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: "a"}}}})
	if err == nil || !isDuplicate(err) {
		t.Errorf("duplicate update: isDuplicate(%v) = false", err)
	}
	t.Logf("update duplicate error: %v", err)

	_, err = coll.InsertOne(ctx, bson.D{{Key: "$bad", Value: 1}})
	if err == nil || isDuplicate(err) {
		t.Errorf("invalid insert: isDuplicate(%v) = true, want false", err)
	}
}
