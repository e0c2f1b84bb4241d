package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/responder"
)

// deltasCollection holds reply fragments shared between instances
// (responder.Deltas), pruned by age.
const deltasCollection = "responder_deltas"

type deltaDoc struct {
	ID          bson.ObjectID `bson:"_id"`
	UserID      string        `bson:"userId"`
	OutboxID    string        `bson:"outboxId,omitempty"`
	ExecutionID string        `bson:"executionId"`
	Index       int           `bson:"idx"`
	Text        string        `bson:"text"`
	CreatedAt   time.Time     `bson:"createdAt"`
}

// AppendDeltas stores a batch of reply fragments in one unordered insert;
// the unique (executionId, idx) index drops repeats.
func (s *Store) AppendDeltas(ctx context.Context, ds []responder.Delta) (int, error) {
	if err := responder.CheckDeltas(ds); err != nil {
		return 0, err
	}
	if len(ds) == 0 {
		return 0, nil
	}
	at := s.now().UTC().Truncate(time.Millisecond)
	docs := make([]deltaDoc, len(ds))
	for i, d := range ds {
		// ObjectIDs made here rise in the batch's order, so (createdAt,
		// _id) keeps it.
		docs[i] = deltaDoc{ID: bson.NewObjectID(), UserID: d.UserID, OutboxID: d.OutboxID,
			ExecutionID: d.ExecutionID, Index: d.Index, Text: d.Text, CreatedAt: at}
	}
	stored := make([]bool, len(ds))
	for i := range stored {
		stored[i] = true
	}
	_, err := s.db.Collection(deltasCollection).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err != nil {
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
			return 0, fmt.Errorf("store deltas: %w", err)
		}
		for _, we := range bwe.WriteErrors {
			if (we.Code != 11000 && !isDuplicate(we)) || we.Index < 0 || we.Index >= len(ds) {
				return 0, fmt.Errorf("store deltas: %w", err)
			}
			stored[we.Index] = false
		}
	}
	n := 0
	for i := range ds {
		if stored[i] {
			ds[i].ID, ds[i].CreatedAt = docs[i].ID.Hex(), at
			n++
		}
	}
	return n, nil
}

// DeltasAfter reads the fragments after (at, afterID) in (createdAt, _id) order.
func (s *Store) DeltasAfter(ctx context.Context, at time.Time, afterID string, limit int) ([]responder.Delta, error) {
	if limit <= 0 {
		return nil, nil
	}
	at = at.UTC().Truncate(time.Millisecond)
	var oid bson.ObjectID // zero: before every id
	if afterID != "" {
		var ok bool
		if oid, ok = objectID(afterID); !ok {
			return nil, notFound("delta", afterID)
		}
	}
	filter := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "createdAt", Value: bson.D{{Key: "$gt", Value: at}}}},
		bson.D{{Key: "createdAt", Value: at}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: oid}}}},
	}}}
	opts := options.Find().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit))
	cur, err := s.db.Collection(deltasCollection).Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("read deltas: %w", err)
	}
	var docs []deltaDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read deltas: %w", err)
	}
	out := make([]responder.Delta, len(docs))
	for i, d := range docs {
		out[i] = responder.Delta{ID: d.ID.Hex(), UserID: d.UserID, OutboxID: d.OutboxID, ExecutionID: d.ExecutionID,
			Index: d.Index, Text: d.Text, CreatedAt: d.CreatedAt.UTC()}
	}
	return out, nil
}

// PruneDeltas deletes the fragments created before t.
func (s *Store) PruneDeltas(ctx context.Context, before time.Time) (int, error) {
	res, err := s.db.Collection(deltasCollection).DeleteMany(ctx, bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: before.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("prune deltas: %w", err)
	}
	return int(res.DeletedCount), nil
}
