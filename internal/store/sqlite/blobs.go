package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/astra-app/astra/internal/responder"
)

// PutBlob stores a blob.
func (s *Store) PutBlob(ctx context.Context, b *responder.Blob) error {
	if err := responder.CheckBlob(b); err != nil {
		return err
	}
	id, at := responder.NewID(), now()
	err := s.write(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO blobs (id, user_id, content_type, data, created_at) VALUES (?, ?, ?, ?, ?)`,
			id, b.UserID, b.ContentType, b.Data, at.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("store blob: %w", err)
	}
	b.ID, b.CreatedAt = id, at
	return nil
}

// Blob returns one blob.
func (s *Store) Blob(ctx context.Context, id string) (*responder.Blob, error) {
	key, ok := normID(id)
	if !ok {
		return nil, notFound("blob", id)
	}
	b := responder.Blob{ID: key}
	err := s.queryRow(ctx, `SELECT user_id, content_type, data, created_at FROM blobs WHERE id = ?`, key).
		Scan(&b.UserID, &b.ContentType, &b.Data, timeCol{&b.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("blob", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", id, err)
	}
	return &b, nil
}
