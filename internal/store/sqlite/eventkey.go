package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/astra-app/astra/internal/responder"
)

// eventByKeyQuery is served by the unique index on dedupe_key.
const eventByKeyQuery = `SELECT ` + eventCols + ` FROM events WHERE dedupe_key = ?`

// EventByDedupeKey returns the event stored under key.
func (s *Store) EventByDedupeKey(ctx context.Context, key string) (*responder.Event, error) {
	if key == "" {
		return nil, notFound("event with dedupe key", key)
	}
	e, err := scanEvent(s.queryRow(ctx, eventByKeyQuery, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("event with dedupe key", key)
	}
	if err != nil {
		return nil, fmt.Errorf("read event %q: %w", key, err)
	}
	return e, nil
}
