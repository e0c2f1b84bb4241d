package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// AppendDeltas stores a batch of reply fragments in one write.
func (s *Store) AppendDeltas(ctx context.Context, ds []responder.Delta) (int, error) {
	if err := responder.CheckDeltas(ds); err != nil {
		return 0, err
	}
	if len(ds) == 0 {
		return 0, nil
	}
	at := now()
	ids := make([]string, len(ds))
	stored := make([]bool, len(ds))
	n := 0
	err := s.write(ctx, func(tx *wtx) error {
		n = 0
		for i, d := range ds {
			// NewID rises within a process, so (created_at, id) keeps the
			// batch's order.
			ids[i] = responder.NewID()
			res, err := tx.exec(`INSERT INTO responder_deltas (execution_id, idx, id, user_id, outbox_id, text, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (execution_id, idx) DO NOTHING`,
				d.ExecutionID, d.Index, ids[i], d.UserID, d.OutboxID, d.Text, at.UnixMilli())
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			stored[i] = k == 1
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store deltas: %w", err)
	}
	for i := range ds {
		if stored[i] {
			ds[i].ID, ds[i].CreatedAt = ids[i], at
		}
	}
	return n, nil
}

// DeltasAfter reads the fragments after (at, afterID) in (created_at, id) order.
func (s *Store) DeltasAfter(ctx context.Context, at time.Time, afterID string, limit int) ([]responder.Delta, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, `SELECT id, user_id, outbox_id, execution_id, idx, text, created_at FROM responder_deltas
		WHERE created_at > ? OR (created_at = ? AND id > ?) ORDER BY created_at, id LIMIT ?`,
		at.UnixMilli(), at.UnixMilli(), afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("read deltas: %w", err)
	}
	defer rows.Close()
	var out []responder.Delta
	for rows.Next() {
		var d responder.Delta
		if err := rows.Scan(&d.ID, &d.UserID, &d.OutboxID, &d.ExecutionID, &d.Index, &d.Text, timeCol{&d.CreatedAt}); err != nil {
			return nil, fmt.Errorf("read deltas: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read deltas: %w", err)
	}
	return out, nil
}

// PruneDeltas deletes the fragments created before t.
func (s *Store) PruneDeltas(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM responder_deltas WHERE created_at < ?`, before.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune deltas: %w", err)
	}
	return int(n), nil
}
