package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

const eventCols = `id, user_id, outbox_id, execution_id, role, content, metadata, created_at, dedupe_key, user_seq, trace_parent`

// The event reads: keyset pages, each served in order by an index that
// ends in its order's columns (see TestQueryPlans): a user's order is
// (user_seq, created_at, id), user_seq 0 (unnumbered) first; the global
// feed's is (created_at, id). LIMIT is bound as (? + 0): SQLite
// re-prepares a statement whose bare bound LIMIT changes value, and
// callers pass different limits.
const (
	latestEventsQuery = `SELECT ` + eventCols + ` FROM events
		WHERE user_id = ? ORDER BY user_seq DESC, created_at DESC, id DESC LIMIT (? + 0)`
	userEventsAfterQuery = `SELECT ` + eventCols + ` FROM events
		WHERE user_id = ? AND (user_seq, created_at, id) > (?, ?, ?) ORDER BY user_seq, created_at, id LIMIT (? + 0)`
	eventsAfterQuery = `SELECT ` + eventCols + ` FROM events
		WHERE (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT (? + 0)`
	lastEventQuery = `SELECT ` + eventCols + ` FROM events ORDER BY created_at DESC, id DESC LIMIT 1`
)

func scanEvent(sc scanner) (*responder.Event, error) {
	var e responder.Event
	var role string
	err := sc.Scan(&e.ID, &e.UserID, &e.OutboxID, &e.ExecutionID, &role, &e.Content, metaCol{&e.Metadata},
		timeCol{&e.CreatedAt}, &e.DedupeKey, &e.Seq, &e.TraceParent)
	if err != nil {
		return nil, err
	}
	e.Role = responder.Role(role)
	return &e, nil
}

func scanEvents(rows *sql.Rows) ([]responder.Event, error) {
	defer rows.Close()
	out := []responder.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, rows.Err()
}

// AppendEvent stores e unless its DedupeKey is taken.
//
// The id, time and user_seq of an event are chosen inside the write
// transaction, and SQLite lets one writer in at a time (across processes
// too), so user_seq is the user's commit order. created_at comes from this
// process's clock: another process sharing the file may disagree, which is
// why a user's cursor follows user_seq, not created_at.
func (s *Store) AppendEvent(ctx context.Context, e *responder.Event) (bool, error) {
	if e.DedupeKey == "" {
		return false, responder.Errorf(responder.EINVALID, "event has no dedupe key")
	}
	if e.ID != "" {
		if _, ok := normID(e.ID); !ok {
			return false, responder.Errorf(responder.EINVALID, "event id %q is not a 24-hex id", e.ID)
		}
	}
	meta, err := encodeMetadata(e.Metadata)
	if err != nil {
		return false, err
	}
	var (
		created bool
		stored  = *e
	)
	err = s.write(ctx, func(tx *wtx) error {
		stored = *e
		if stored.ID == "" {
			stored.ID = responder.NewID()
		} else {
			stored.ID, _ = normID(stored.ID)
		}
		numbered := stored.CreatedAt.IsZero() // a caller-chosen time is an import
		if numbered {
			stored.CreatedAt = msTime(s.now())
		} else {
			stored.CreatedAt = msTime(stored.CreatedAt)
		}
		res, err := tx.exec(`INSERT INTO events (id, user_id, outbox_id, execution_id, role, content, metadata, created_at, dedupe_key, user_seq, trace_parent)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,
				CASE WHEN ? THEN (SELECT COALESCE(MAX(user_seq), 0) + 1 FROM events WHERE user_id = ?) ELSE 0 END, ?)
			ON CONFLICT (dedupe_key) DO NOTHING`,
			stored.ID, stored.UserID, stored.OutboxID, stored.ExecutionID, string(stored.Role), stored.Content, meta,
			stored.CreatedAt.UnixMilli(), stored.DedupeKey, numbered, stored.UserID, stored.TraceParent)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			created = true
			if numbered {
				return tx.queryRow(`SELECT user_seq FROM events WHERE id = ?`, stored.ID).Scan(&stored.Seq)
			}
			return nil
		}
		prev, err := scanEvent(tx.queryRow(`SELECT `+eventCols+` FROM events WHERE dedupe_key = ?`, stored.DedupeKey))
		if err != nil {
			return fmt.Errorf("read duplicate: %w", err)
		}
		stored = *prev
		return nil
	})
	if isUnique(err) {
		return false, responder.Errorf(responder.ECONFLICT, "event %s already exists", e.ID)
	}
	if err != nil {
		return false, fmt.Errorf("append event %q: %w", e.DedupeKey, err)
	}
	*e = stored
	return created, nil
}

// LatestEvents returns a user's latest n events, oldest first.
func (s *Store) LatestEvents(ctx context.Context, userID string, n int) ([]responder.Event, error) {
	if n <= 0 {
		return []responder.Event{}, nil
	}
	rows, err := s.query(ctx, latestEventsQuery, userID, n)
	if err != nil {
		return nil, fmt.Errorf("latest events of user %s: %w", userID, err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("latest events of user %s: %w", userID, err)
	}
	slices.Reverse(out)
	return out, nil
}

// cursor is the position of event after, which must belong to userID
// unless userID is empty.
func (s *Store) cursor(ctx context.Context, userID, after string) (responder.Position, error) {
	key, ok := normID(after)
	if !ok {
		return responder.Position{}, notFound("event", after)
	}
	var at, seq int64
	var owner string
	err := s.queryRow(ctx, `SELECT created_at, user_seq, user_id FROM events WHERE id = ?`, key).Scan(&at, &seq, &owner)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && userID != "" && owner != userID) {
		return responder.Position{}, notFound("event", after)
	}
	if err != nil {
		return responder.Position{}, fmt.Errorf("read event cursor %s: %w", after, err)
	}
	return responder.Position{Seq: seq, CreatedAt: time.UnixMilli(at), ID: key}, nil
}

// UserEventsAfter returns up to limit of a user's events after the event
// with id after, in user order: a keyset page on (user_seq, created_at,
// id), exact however many events share a millisecond.
func (s *Store) UserEventsAfter(ctx context.Context, userID, after string, limit int) ([]responder.Event, error) {
	if userID == "" {
		return nil, responder.Errorf(responder.EINVALID, "no user")
	}
	return s.eventsAfter(ctx, userID, after, limit)
}

// EventsAfter returns up to limit events of all users after the event with
// id after, oldest first.
func (s *Store) EventsAfter(ctx context.Context, after string, limit int) ([]responder.Event, error) {
	return s.eventsAfter(ctx, "", after, limit)
}

func (s *Store) eventsAfter(ctx context.Context, userID, after string, limit int) ([]responder.Event, error) {
	var seq, at int64 = -1, -1 << 63
	id := ""
	if after != "" {
		p, err := s.cursor(ctx, userID, after)
		if err != nil {
			return nil, err
		}
		seq, at, id = p.Seq, p.CreatedAt.UnixMilli(), p.ID
	}
	if limit <= 0 {
		return []responder.Event{}, nil
	}
	var (
		rows *sql.Rows
		err  error
	)
	if userID != "" {
		rows, err = s.query(ctx, userEventsAfterQuery, userID, seq, at, id, limit)
	} else {
		rows, err = s.query(ctx, eventsAfterQuery, at, id, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("events after %q: %w", after, err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("events after %q: %w", after, err)
	}
	return out, nil
}

// LastEvent returns the newest event of all users, or nil when there is none.
func (s *Store) LastEvent(ctx context.Context) (*responder.Event, error) {
	e, err := scanEvent(s.queryRow(ctx, lastEventQuery))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last event: %w", err)
	}
	return e, nil
}
