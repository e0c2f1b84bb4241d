package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

const messageCols = `id, user_id, julep_user_id, content, status, metadata, created_at, updated_at,
	attempts, lease_owner, lease_until, available_at, execution_id, last_error, delivered_at, trace_parent`

func scanMessage(sc scanner) (*responder.Message, error) {
	var m responder.Message
	var status string
	err := sc.Scan(&m.ID, &m.UserID, &m.JulepUserID, &m.Content, &status, metaCol{&m.Metadata},
		timeCol{&m.CreatedAt}, timeCol{&m.UpdatedAt}, &m.Attempts, &m.LeaseOwner, timeCol{&m.LeaseUntil},
		timeCol{&m.AvailableAt}, &m.ExecutionID, &m.LastError, timeCol{&m.DeliveredAt}, &m.TraceParent)
	if err != nil {
		return nil, err
	}
	m.Status = responder.ParseStatus(status)
	return &m, nil
}

// Enqueue stores m as pending.
func (s *Store) Enqueue(ctx context.Context, m *responder.Message) error {
	id := m.ID
	if id == "" {
		id = responder.NewID()
	} else if norm, ok := normID(id); ok {
		id = norm
	} else {
		return responder.Errorf(responder.EINVALID, "message id %q is not a 24-hex id", m.ID)
	}
	meta, err := encodeMetadata(m.Metadata)
	if err != nil {
		return err
	}
	at := now()
	err = s.write(ctx, func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO outbox (id, user_id, julep_user_id, content, status, metadata,
			created_at, updated_at, attempts, available_at, execution_id, trace_parent)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`,
			id, m.UserID, m.JulepUserID, m.Content, responder.StatusPending, meta,
			at.UnixMilli(), at.UnixMilli(), availableMS(m.AvailableAt), m.ExecutionID, m.TraceParent)
		return err
	})
	if isUnique(err) {
		return responder.Errorf(responder.ECONFLICT, "message %s already exists", id)
	}
	if err != nil {
		return fmt.Errorf("enqueue message: %w", err)
	}
	m.ID, m.Status, m.Attempts, m.CreatedAt, m.UpdatedAt = id, responder.StatusPending, 0, at, at
	m.AvailableAt = msTime(m.AvailableAt)
	m.LeaseOwner, m.LeaseUntil, m.LastError, m.DeliveredAt = "", time.Time{}, "", time.Time{}
	return nil
}

// availableMS is available_at as stored: 0 for "no hold".
func availableMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Message returns one message by id.
func (s *Store) Message(ctx context.Context, id string) (*responder.Message, error) {
	key, ok := normID(id)
	if !ok {
		return nil, notFound("message", id)
	}
	m, err := scanMessage(s.queryRow(ctx, `SELECT `+messageCols+` FROM outbox WHERE id = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("message", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read message %s: %w", id, err)
	}
	return m, nil
}

// UserMessages returns a user's latest messages, newest first.
func (s *Store) UserMessages(ctx context.Context, userID string, limit int) ([]responder.Message, error) {
	return s.userMessages(ctx, userID, limit, userMessagesQuery, userID, limit)
}

// UserMessagesBefore returns a user's messages before m, newest first.
func (s *Store) UserMessagesBefore(ctx context.Context, userID string, m *responder.Message, limit int) ([]responder.Message, error) {
	id, _ := normID(m.ID)
	at := m.CreatedAt.UnixMilli()
	return s.userMessages(ctx, userID, limit, userMessagesBeforeQuery, userID, at, at, id, limit)
}

func (s *Store) userMessages(ctx context.Context, userID string, limit int, q string, args ...any) ([]responder.Message, error) {
	out := []responder.Message{}
	if limit <= 0 {
		return out, nil
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list messages of user %s: %w", userID, err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("list messages of user %s: %w", userID, err)
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list messages of user %s: %w", userID, err)
	}
	return out, nil
}

const (
	// claimQuery's status IN (...) term is what lets SQLite use the
	// outbox_claim partial index, walked in (created_at, id) order; the
	// index carries user_id, so skipping a busy user's rows reads no table
	// row. The users at their cap come first, once per claim, from the
	// outbox_busy partial index of processing rows (few: only rows in work).
	claimQuery = `UPDATE outbox
		SET status = 'processing', lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
		WHERE id = (
			SELECT id FROM outbox INDEXED BY outbox_claim
			WHERE status IN ('pending', 'processing')
			  AND ((status = 'pending' AND available_at <= ?) OR (status = 'processing' AND lease_until <= ?))
			  AND user_id NOT IN (
				SELECT user_id FROM outbox INDEXED BY outbox_busy
				WHERE status = 'processing' AND lease_until > ?
				GROUP BY user_id HAVING COUNT(*) >= ?)
			ORDER BY created_at, id LIMIT 1)
		RETURNING ` + messageCols
	userMessagesQuery = `SELECT ` + messageCols + ` FROM outbox
		WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT (? + 0)`
	userMessagesBeforeQuery = `SELECT ` + messageCols + ` FROM outbox
		WHERE user_id = ? AND (created_at < ? OR (created_at = ? AND id < ?))
		ORDER BY created_at DESC, id DESC LIMIT (? + 0)`
	nextAvailableQuery = `SELECT MIN(CASE WHEN available_at = 0 THEN created_at ELSE available_at END)
		FROM outbox WHERE status = 'pending'`
)

// Claim takes the oldest claimable row of a user below maxPerUser rows in
// work. One UPDATE ... RETURNING inside the single writer's transaction: no
// other write can run between counting, choosing the row and taking it.
func (s *Store) Claim(ctx context.Context, owner string, lease time.Duration, maxPerUser int) (*responder.Message, error) {
	if owner == "" {
		// An empty owner would match the cleared lease_owner of every
		// released, delivered or failed row.
		return nil, responder.Errorf(responder.EINVALID, "claim needs an owner")
	}
	if maxPerUser <= 0 {
		maxPerUser = math.MaxInt32 // no cap: no user is ever at it
	}
	var m *responder.Message
	err := s.write(ctx, func(tx *wtx) error {
		at := now().UnixMilli()
		row := tx.queryRow(claimQuery, owner, at+lease.Milliseconds(), at, at, at, at, maxPerUser)
		var err error
		m, err = scanMessage(row)
		if errors.Is(err, sql.ErrNoRows) {
			m = nil
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox row for %s: %w", owner, err)
	}
	return m, nil
}

// ownerUpdate applies set to row id if owner holds its lease; otherwise it
// tells a missing row (ENOTFOUND) from a lost lease (ECONFLICT).
func (s *Store) ownerUpdate(ctx context.Context, op, id, owner, set string, args ...any) error {
	key, ok := normID(id)
	if !ok {
		return notFound("message", id)
	}
	return s.write(ctx, func(tx *wtx) error {
		res, err := tx.exec(`UPDATE outbox SET `+set+`
			WHERE id = ? AND status = 'processing' AND lease_owner = ?`, append(args, key, owner)...)
		if err != nil {
			return fmt.Errorf("%s outbox row %s: %w", op, id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%s outbox row %s: %w", op, id, err)
		} else if n == 1 {
			return nil
		}
		var status, holder string
		err = tx.queryRow(`SELECT status, lease_owner FROM outbox WHERE id = ?`, key).Scan(&status, &holder)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("message", id)
		}
		if err != nil {
			return fmt.Errorf("%s outbox row %s: %w", op, id, err)
		}
		if responder.ParseStatus(status) != responder.StatusProcessing {
			return responder.Errorf(responder.ECONFLICT, "cannot %s message %s: it is %s", op, id, responder.ParseStatus(status))
		}
		return responder.Errorf(responder.ECONFLICT, "cannot %s message %s: leased by %q, not %q", op, id, holder, owner)
	})
}

// ExtendLease moves LeaseUntil to now+lease.
func (s *Store) ExtendLease(ctx context.Context, id, owner string, lease time.Duration) error {
	at := now()
	return s.ownerUpdate(ctx, "extend lease of", id, owner, `lease_until = ?, updated_at = ?`,
		at.Add(lease).UnixMilli(), at.UnixMilli())
}

// SetExecution records the Julep execution id of a row.
func (s *Store) SetExecution(ctx context.Context, id, owner, executionID string) error {
	return s.ownerUpdate(ctx, "set execution of", id, owner, `execution_id = ?, updated_at = ?`,
		executionID, now().UnixMilli())
}

// SetJulepUser records the Julep user id on a row.
func (s *Store) SetJulepUser(ctx context.Context, id, owner, julepUserID string) error {
	return s.ownerUpdate(ctx, "set julep user of", id, owner, `julep_user_id = ?, updated_at = ?`,
		julepUserID, now().UnixMilli())
}

// Deliver marks a row delivered and clears its lease.
func (s *Store) Deliver(ctx context.Context, id, owner string) error {
	at := now().UnixMilli()
	return s.ownerUpdate(ctx, "deliver", id, owner,
		`status = 'delivered', delivered_at = ?, updated_at = ?, lease_owner = '', lease_until = NULL`, at, at)
}

// Fail marks a row error with reason and clears its lease.
func (s *Store) Fail(ctx context.Context, id, owner, reason string) error {
	return s.ownerUpdate(ctx, "fail", id, owner,
		`status = 'error', last_error = ?, updated_at = ?, lease_owner = '', lease_until = NULL`, reason, now().UnixMilli())
}

// Release puts a row back to pending, claimable again from retryAt.
func (s *Store) Release(ctx context.Context, id, owner string, retryAt time.Time, reason string) error {
	return s.ownerUpdate(ctx, "release", id, owner,
		`status = 'pending', available_at = ?, last_error = ?, updated_at = ?, lease_owner = '', lease_until = NULL`,
		availableMS(retryAt), reason, now().UnixMilli())
}

// CountByStatus returns how many rows are in each status; every known
// status is present, zero or not.
func (s *Store) CountByStatus(ctx context.Context) (map[responder.Status]int, error) {
	out := make(map[responder.Status]int, len(responder.Statuses))
	for _, st := range responder.Statuses {
		out[st] = 0
	}
	rows, err := s.query(ctx, `SELECT status, COUNT(*) FROM outbox GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count outbox rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count outbox rows: %w", err)
		}
		out[responder.ParseStatus(st)] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count outbox rows: %w", err)
	}
	return out, nil
}

// NextAvailable returns when the earliest pending row becomes claimable: its
// hold, or its creation when it has none.
func (s *Store) NextAvailable(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.queryRow(ctx, nextAvailableQuery).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next available outbox row: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return time.UnixMilli(next.Int64).UTC(), nil
}
