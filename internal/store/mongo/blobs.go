package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/astra-app/astra/internal/responder"
)

// blobsCollection holds spoken replies and other user-owned binaries; one
// document each, well under MongoDB's 16 MiB document limit.
const blobsCollection = "responder_blobs"

type blobDoc struct {
	ID          bson.ObjectID `bson:"_id"`
	UserID      string        `bson:"userId"`
	ContentType string        `bson:"contentType"`
	Size        int           `bson:"size"`
	Data        []byte        `bson:"data"`
	CreatedAt   time.Time     `bson:"createdAt"`
}

// PutBlob stores a blob.
func (s *Store) PutBlob(ctx context.Context, b *responder.Blob) error {
	if err := responder.CheckBlob(b); err != nil {
		return err
	}
	d := blobDoc{ID: bson.NewObjectID(), UserID: b.UserID, ContentType: b.ContentType, Size: len(b.Data),
		Data: b.Data, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if _, err := s.blobs.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("store blob: %w", err)
	}
	b.ID, b.CreatedAt = d.ID.Hex(), d.CreatedAt
	return nil
}

// Blob returns one blob.
func (s *Store) Blob(ctx context.Context, id string) (*responder.Blob, error) {
	oid, ok := objectID(id)
	if !ok {
		return nil, notFound("blob", id)
	}
	var d blobDoc
	if err := s.blobs.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, notFound("blob", id)
		}
		return nil, fmt.Errorf("read blob %s: %w", id, err)
	}
	return &responder.Blob{ID: d.ID.Hex(), UserID: d.UserID, ContentType: d.ContentType, Data: d.Data, CreatedAt: d.CreatedAt.UTC()}, nil
}
