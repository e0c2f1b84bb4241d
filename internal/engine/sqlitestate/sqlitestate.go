// Package sqlitestate keeps the embedded engine's state in engine_* tables of
// a SQLite database (the project store's own file, through its *sql.DB).
package sqlitestate

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/store/sqlite"
)

const schema = `
CREATE TABLE IF NOT EXISTS engine_resources (
	kind TEXT NOT NULL, id TEXT NOT NULL, parent TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
	metadata TEXT NOT NULL DEFAULT '{}', body TEXT NOT NULL,
	PRIMARY KEY (kind, id));
CREATE INDEX IF NOT EXISTS engine_resources_parent ON engine_resources (kind, parent, created_at);
CREATE INDEX IF NOT EXISTS engine_resources_updated ON engine_resources (kind, parent, updated_at);
CREATE TABLE IF NOT EXISTS engine_tasks (
	id TEXT NOT NULL, version INTEGER NOT NULL, agent_id TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
	metadata TEXT NOT NULL DEFAULT '{}', body TEXT NOT NULL,
	PRIMARY KEY (id, version));
CREATE INDEX IF NOT EXISTS engine_tasks_agent ON engine_tasks (agent_id, created_at);
CREATE TABLE IF NOT EXISTS engine_executions (
	id TEXT PRIMARY KEY, task_id TEXT NOT NULL, task_version INTEGER NOT NULL,
	status TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
	metadata TEXT NOT NULL DEFAULT '{}', input TEXT NOT NULL, output TEXT NOT NULL DEFAULT 'null',
	error TEXT NOT NULL DEFAULT '', transition_count INTEGER NOT NULL DEFAULT 0,
	checkpoint TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS engine_executions_task ON engine_executions (task_id, created_at);
CREATE INDEX IF NOT EXISTS engine_executions_status ON engine_executions (status);
ALTER TABLE engine_executions ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE engine_executions ADD COLUMN lease_token TEXT NOT NULL DEFAULT '';
ALTER TABLE engine_executions ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS engine_executions_lease ON engine_executions (status, lease_until);
ALTER TABLE engine_executions ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE engine_executions ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS engine_transitions (
	id TEXT PRIMARY KEY, execution_id TEXT NOT NULL, seq INTEGER NOT NULL,
	type TEXT NOT NULL, created_at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS engine_transitions_seq ON engine_transitions (execution_id, seq);
`

// State is the SQLite engine.State.
type State struct {
	db *sql.DB
	// rdb reads. On a file database it is a pool of read-only connections
	// of its own: the store's *sql.DB is its single writer connection, and
	// reads queued behind group commits there (WAL lets them run beside).
	rdb *sql.DB
	// mu serialises this process's write transactions: SQLite has one writer,
	// and a deferred transaction upgrading to a write lock can fail with
	// SQLITE_BUSY without waiting; queuing here avoids that entirely.
	mu sync.Mutex

	// store group-commits the hot writes (executions, transitions,
	// resources) together with the store's own: a hundred executions
	// advancing at once cost a handful of commits, not a hundred.
	store *sqlite.Store

	// Prepared statements of the hot paths (an execution's writes and
	// reads), so each is parsed once per connection, not once per use.
	wstmts, rstmts *stmtCache
}

// stmtCache prepares each query once on its pool.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (c *stmtCache) get(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.m[q] = st
	return st, nil
}

// maxCachedQueries bounds a cache: list queries vary with their metadata
// filters (and the order Go iterates them in), and a query beyond the bound
// is simply run unprepared.
const maxCachedQueries = 128

// query runs a read through q's prepared statement, preparing it on first
// use while the cache has room.
func (c *stmtCache) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := c.cached(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.db.QueryContext(ctx, q, args...)
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is query for a single row.
func (c *stmtCache) queryRow(ctx context.Context, q string, args ...any) (*sql.Row, error) {
	st, err := c.cached(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.db.QueryRowContext(ctx, q, args...), nil
	}
	return st.QueryRowContext(ctx, args...), nil
}

// cached returns q's statement, or nil when the cache is full.
func (c *stmtCache) cached(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.m[q]
	full := len(c.m) >= maxCachedQueries
	c.mu.Unlock()
	if ok {
		return st, nil
	}
	if full {
		return nil, nil
	}
	return c.get(ctx, q)
}

// lookup returns q's statement if it is prepared already.
func (c *stmtCache) lookup(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[q]
}

// The writer's statements are prepared in New: preparing one inside a
// batch would wait for the writer's only connection, which the batch holds.
const (
	insertExecutionSQL = `INSERT INTO engine_executions (id, task_id, task_version, status, created_at, updated_at,
		metadata, input, output, error, transition_count, checkpoint, lease_owner, lease_token, lease_until, crashes, trace_parent)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// A lease still named (not released) but run out means its owner
	// stopped; that counts as a crash when the execution was under way.
	claimSQL = `UPDATE engine_executions SET lease_owner = ?, lease_token = ?, lease_until = ?,
		crashes = crashes + (lease_owner != '' AND status IN ('starting', 'running'))
		WHERE id = ? AND status IN ('queued', 'starting', 'running') AND lease_until <= ?
		RETURNING ` + execCols
	// claimableSQL finds the sweep's candidates through the (status,
	// lease_until) index, which every instance queries twice a second.
	claimableSQL = `SELECT id FROM engine_executions
		WHERE status IN ('queued', 'starting', 'running') AND lease_until <= ? ORDER BY created_at LIMIT (? + 0)`
	extendSQL           = `UPDATE engine_executions SET lease_until = ? WHERE id = ? AND lease_token = ?`
	fenceSQL            = `SELECT 1 FROM engine_executions WHERE id = ? AND lease_token = ?`
	insertTransitionSQL = `INSERT INTO engine_transitions (id, execution_id, seq, type, created_at, body)
		VALUES (?, ?, ?, ?, ?, ?)`
	putResourceSQL = `INSERT INTO engine_resources (kind, id, parent, created_at, updated_at, metadata, body)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, id) DO UPDATE SET parent = excluded.parent, updated_at = excluded.updated_at,
			metadata = excluded.metadata, body = excluded.body`
)

// advanceSQL updates an execution expected in one of n statuses. A fenced
// update also expects the writer's lease token (the last argument) and
// keeps the lease; an unfenced one (the API's) clears it.
func advanceSQL(n int, fenced bool) string {
	set, guard := ", lease_owner = '', lease_token = '', lease_until = 0", ""
	if fenced {
		set, guard = "", " AND lease_token = ?"
	}
	return `UPDATE engine_executions SET status = ?, updated_at = ?, metadata = ?, output = ?,
		error = ?, transition_count = ?, checkpoint = ?, crashes = ?` + set + ` WHERE id = ? AND transition_count = ? AND status IN (?` +
		strings.Repeat(", ?", max(n-1, 0)) + `)` + guard
}

func writerStatements() []string {
	qs := []string{insertExecutionSQL, insertTransitionSQL, putResourceSQL, claimSQL, extendSQL, fenceSQL}
	for n := 1; n <= 4; n++ {
		qs = append(qs, advanceSQL(n, false), advanceSQL(n, true))
	}
	return qs
}

// txExec runs q in tx, through its prepared statement when there is one.
func (s *State) txExec(tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st := s.wstmts.lookup(q); st != nil {
		return tx.Stmt(st).Exec(args...)
	}
	return tx.Exec(q, args...)
}

var _ engine.State = (*State)(nil)

// New creates the engine_* tables in the store's database when missing and
// returns the state, which writes through the store's group commit.
func New(ctx context.Context, st *sqlite.Store) (*State, error) {
	db := st.DB()
	for _, stmt := range strings.Split(schema, ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			// Tables made before leases gain the columns; later opens find them.
			if strings.Contains(stmt, "ADD COLUMN") && strings.Contains(err.Error(), "duplicate column") {
				continue
			}
			return nil, fmt.Errorf("create engine tables: %w", err)
		}
	}
	s := &State{db: db, rdb: db, store: st}
	if r, err := openReaders(ctx, db); err != nil {
		return nil, err
	} else if r != nil {
		s.rdb = r
		// A State has no owner that closes it; its readers close when it
		// is collected (and idle ones close themselves meanwhile).
		runtime.AddCleanup(s, func(r *sql.DB) { r.Close() }, r)
	}
	s.wstmts = &stmtCache{db: db, m: map[string]*sql.Stmt{}}
	s.rstmts = &stmtCache{db: s.rdb, m: map[string]*sql.Stmt{}}
	for _, q := range writerStatements() {
		if _, err := s.wstmts.get(ctx, q); err != nil {
			return nil, fmt.Errorf("prepare engine statements: %w", err)
		}
	}
	return s, nil
}

// openReaders opens read-only connections to db's file, or returns nil
// when db is not a WAL file database (in memory, or another journal mode,
// where a second connection would see less or block).
func openReaders(ctx context.Context, db *sql.DB) (*sql.DB, error) {
	var file, mode string
	if err := db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		return nil, fmt.Errorf("find the database file: %w", err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, fmt.Errorf("read the journal mode: %w", err)
	}
	if file == "" || !strings.EqualFold(mode, "wal") {
		return nil, nil
	}
	esc := strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F").Replace(filepath.ToSlash(file))
	r, err := sql.Open("sqlite", "file:"+esc+"?_pragma=busy_timeout(10000)&_query_only=1")
	if err != nil {
		return nil, fmt.Errorf("open engine readers: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(time.Minute)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("open engine readers: %w", err)
	}
	return r, nil
}

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }
func fromNanos(n int64) time.Time {
	return time.Unix(0, n).UTC()
}

func jsonText(v any) (string, error) {
	if v == nil {
		return "null", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func metaText(m map[string]any) (string, error) {
	if m == nil {
		return "{}", nil
	}
	return jsonText(m)
}

func decodeMeta(s string) map[string]any {
	m := map[string]any{}
	_ = json.Unmarshal([]byte(s), &m)
	return m
}

// limitNote: LIMIT and OFFSET are bound as (? + 0), not ?. SQLite's planner
// reads a bare bound LIMIT, so each new value re-prepares the statement
// (the responder task lists docs with limits 5, 5 and 30 in turn: a tenth of
// the list's CPU went to re-preparing); an expression it leaves alone.

// filterSQL turns a ListQuery into WHERE/ORDER/LIMIT clauses. Metadata keys
// go into a JSON path as quoted members so any key text is safe.
//
// A metadata value's text is the string itself, or for any other non-null
// value its JSON text (true, 42, {"a":1}): the text the engine's API makes of
// a typed filter value. (CAST(json_extract(...) AS TEXT) would give "1" for
// true.) JSON null has no text and never matches.
func filterSQL(q engine.ListQuery, where []string, args []any) (string, []any) {
	for k, v := range q.MetadataFilter {
		path := `$."` + strings.ReplaceAll(k, `"`, `\"`) + `"`
		where = append(where, `(CASE json_type(metadata, ?) WHEN 'text' THEN json_extract(metadata, ?)
			WHEN 'null' THEN NULL ELSE metadata -> ? END) = ?`)
		args = append(args, path, path, path, v)
	}
	s := ""
	if len(where) > 0 {
		s = " WHERE " + strings.Join(where, " AND ")
	}
	col := "created_at"
	if q.SortBy == "updated_at" {
		col = "updated_at"
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	s += fmt.Sprintf(" ORDER BY %s %s, rowid %s", col, dir, dir)
	if q.Limit > 0 {
		s += " LIMIT (? + 0) OFFSET (? + 0)" // see limitNote
		args = append(args, q.Limit, q.Offset)
	} else if q.Offset > 0 {
		s += " LIMIT -1 OFFSET (? + 0)"
		args = append(args, q.Offset)
	}
	return s, args
}

// PutResource inserts or replaces a resource, keeping its first created_at.
func (s *State) PutResource(ctx context.Context, r engine.Resource) error {
	meta, err := metaText(r.Metadata)
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	err = s.batch(ctx, func(tx *sql.Tx) error {
		_, err := s.txExec(tx, putResourceSQL, r.Kind, r.ID, r.Parent, nanos(r.CreatedAt), nanos(r.UpdatedAt), meta, string(r.Body))
		return err
	})
	if err != nil {
		return fmt.Errorf("put %s %s: %w", r.Kind, r.ID, err)
	}
	return nil
}

func scanResource(sc interface{ Scan(...any) error }) (engine.Resource, error) {
	var (
		r          engine.Resource
		ca, ua     int64
		meta, body string
	)
	if err := sc.Scan(&r.Kind, &r.ID, &r.Parent, &ca, &ua, &meta, &body); err != nil {
		return r, err
	}
	r.CreatedAt, r.UpdatedAt = fromNanos(ca), fromNanos(ua)
	r.Metadata, r.Body = decodeMeta(meta), json.RawMessage(body)
	return r, nil
}

const resourceCols = "kind, id, parent, created_at, updated_at, metadata, body"

// GetResource reads one resource.
func (s *State) GetResource(ctx context.Context, kind, id string) (engine.Resource, error) {
	row, err := s.rstmts.queryRow(ctx, "SELECT "+resourceCols+" FROM engine_resources WHERE kind = ? AND id = ?", kind, id)
	if err != nil {
		return engine.Resource{}, fmt.Errorf("get %s %s: %w", kind, id, err)
	}
	r, err := scanResource(row)
	if errors.Is(err, sql.ErrNoRows) {
		return r, engine.ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("get %s %s: %w", kind, id, err)
	}
	return r, nil
}

// ListResources pages resources of one kind (and parent).
func (s *State) ListResources(ctx context.Context, q engine.ListQuery) ([]engine.Resource, error) {
	where, args := []string{"kind = ?"}, []any{q.Kind}
	if q.Parent != "" {
		where, args = append(where, "parent = ?"), append(args, q.Parent)
	}
	tail, args := filterSQL(q, where, args)
	rows, err := s.rstmts.query(ctx, "SELECT "+resourceCols+" FROM engine_resources"+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", q.Kind, err)
	}
	defer rows.Close()
	var out []engine.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", q.Kind, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteResource removes a resource; a missing one is ErrNotFound.
func (s *State) DeleteResource(ctx context.Context, kind, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.db.ExecContext(ctx, "DELETE FROM engine_resources WHERE kind = ? AND id = ?", kind, id)
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return engine.ErrNotFound
	}
	return nil
}

// PutTask stores a new version of a task.
func (s *State) PutTask(ctx context.Context, t engine.Task) (engine.Task, error) {
	meta, err := metaText(t.Metadata)
	if err != nil {
		return t, fmt.Errorf("encode task metadata: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return t, fmt.Errorf("put task %s: %w", t.ID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	// In the write transaction, so callers putting one definition at once
	// (instances deploying tasks/ together) all see the first one's version.
	latest, err := scanTask(tx.QueryRowContext(ctx, "SELECT "+taskCols+" FROM engine_tasks WHERE id = ? ORDER BY version DESC LIMIT 1", t.ID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		t.Version = 1
	case err != nil:
		return t, fmt.Errorf("put task %s: %w", t.ID, err)
	default:
		var stored string
		if err := tx.QueryRowContext(ctx, "SELECT metadata FROM engine_tasks WHERE id = ? AND version = ?", t.ID, latest.Version).
			Scan(&stored); err != nil {
			return t, fmt.Errorf("put task %s: %w", t.ID, err)
		}
		if latest.AgentID == t.AgentID && string(latest.Body) == string(t.Body) && stored == meta {
			return latest, nil
		}
		var created int64
		if err := tx.QueryRowContext(ctx, "SELECT MIN(created_at) FROM engine_tasks WHERE id = ?", t.ID).Scan(&created); err != nil {
			return t, fmt.Errorf("put task %s: %w", t.ID, err)
		}
		t.Version, t.CreatedAt = latest.Version+1, fromNanos(created)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO engine_tasks (id, version, agent_id, created_at, updated_at, metadata, body)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, t.ID, t.Version, t.AgentID, nanos(t.CreatedAt), nanos(t.UpdatedAt), meta, string(t.Body)); err != nil {
		return t, fmt.Errorf("put task %s: %w", t.ID, err)
	}
	return t, tx.Commit()
}

const taskCols = "id, version, agent_id, created_at, updated_at, metadata, body"

func scanTask(sc interface{ Scan(...any) error }) (engine.Task, error) {
	var (
		t          engine.Task
		ca, ua     int64
		meta, body string
	)
	if err := sc.Scan(&t.ID, &t.Version, &t.AgentID, &ca, &ua, &meta, &body); err != nil {
		return t, err
	}
	t.CreatedAt, t.UpdatedAt = fromNanos(ca), fromNanos(ua)
	t.Metadata, t.Body = decodeMeta(meta), json.RawMessage(body)
	return t, nil
}

// GetTask reads a version of a task (0: the latest).
func (s *State) GetTask(ctx context.Context, id string, version int) (engine.Task, error) {
	q := "SELECT " + taskCols + " FROM engine_tasks WHERE id = ? ORDER BY version DESC LIMIT 1"
	args := []any{id}
	if version > 0 {
		q = "SELECT " + taskCols + " FROM engine_tasks WHERE id = ? AND version = ?"
		args = append(args, version)
	}
	row, err := s.rstmts.queryRow(ctx, q, args...)
	if err != nil {
		return engine.Task{}, fmt.Errorf("get task %s: %w", id, err)
	}
	t, err := scanTask(row)
	if errors.Is(err, sql.ErrNoRows) {
		return t, engine.ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("get task %s: %w", id, err)
	}
	return t, nil
}

// ListTasks lists the latest version of each task of an agent.
func (s *State) ListTasks(ctx context.Context, q engine.ListQuery) ([]engine.Task, error) {
	where := []string{"version = (SELECT MAX(version) FROM engine_tasks t2 WHERE t2.id = engine_tasks.id)"}
	var args []any
	if q.Parent != "" {
		where, args = append(where, "agent_id = ?"), append(args, q.Parent)
	}
	tail, args := filterSQL(q, where, args)
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+taskCols+" FROM engine_tasks"+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	defer rows.Close()
	var out []engine.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// CreateExecution inserts a new execution.
func (s *State) CreateExecution(ctx context.Context, e engine.Execution) error {
	meta, err := metaText(e.Metadata)
	if err != nil {
		return fmt.Errorf("encode execution metadata: %w", err)
	}
	in, err := jsonText(e.Input)
	if err != nil {
		return fmt.Errorf("encode execution input: %w", err)
	}
	out, err := jsonText(e.Output)
	if err != nil {
		return fmt.Errorf("encode execution output: %w", err)
	}
	err = s.batch(ctx, func(tx *sql.Tx) error {
		_, err := s.txExec(tx, insertExecutionSQL,
			e.ID, e.TaskID, e.TaskVersion, e.Status, nanos(e.CreatedAt), nanos(e.UpdatedAt), meta, in, out, e.Error,
			e.TransitionCount, string(e.Checkpoint), e.LeaseOwner, e.LeaseToken, leaseNanos(e.LeaseUntil), e.Crashes, e.TraceParent)
		return err
	})
	if err != nil {
		return fmt.Errorf("create execution %s: %w", e.ID, err)
	}
	return nil
}

const execCols = "id, task_id, task_version, status, created_at, updated_at, metadata, input, output, error, " +
	"transition_count, checkpoint, lease_owner, lease_token, lease_until, crashes, trace_parent"

// leaseNanos stores a lease's end; no lease is 0, which every claim's now
// passes.
func leaseNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return nanos(t)
}

func scanExecution(sc interface{ Scan(...any) error }) (engine.Execution, error) {
	var (
		e                   engine.Execution
		ca, ua, lu          int64
		meta, in, out, ckpt string
	)
	if err := sc.Scan(&e.ID, &e.TaskID, &e.TaskVersion, &e.Status, &ca, &ua, &meta, &in, &out, &e.Error,
		&e.TransitionCount, &ckpt, &e.LeaseOwner, &e.LeaseToken, &lu, &e.Crashes, &e.TraceParent); err != nil {
		return e, err
	}
	if lu != 0 {
		e.LeaseUntil = fromNanos(lu)
	}
	e.CreatedAt, e.UpdatedAt = fromNanos(ca), fromNanos(ua)
	e.Metadata = decodeMeta(meta)
	e.Input = map[string]any{}
	_ = unmarshalNumbers([]byte(in), &e.Input)
	_ = unmarshalNumbers([]byte(out), &e.Output)
	if ckpt != "" {
		e.Checkpoint = json.RawMessage(ckpt)
	}
	return e, nil
}

// GetExecution reads one execution.
func (s *State) GetExecution(ctx context.Context, id string) (engine.Execution, error) {
	st, err := s.rstmts.get(ctx, "SELECT "+execCols+" FROM engine_executions WHERE id = ?")
	if err != nil {
		return engine.Execution{}, fmt.Errorf("get execution %s: %w", id, err)
	}
	e, err := scanExecution(st.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, engine.ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("get execution %s: %w", id, err)
	}
	return e, nil
}

func (s *State) queryExecutions(ctx context.Context, q string, args ...any) ([]engine.Execution, error) {
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	defer rows.Close()
	var out []engine.Execution
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return nil, fmt.Errorf("list executions: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListExecutions pages the executions of a task.
func (s *State) ListExecutions(ctx context.Context, q engine.ListQuery) ([]engine.Execution, error) {
	tail, args := filterSQL(q, []string{"task_id = ?"}, []any{q.Parent})
	return s.queryExecutions(ctx, "SELECT "+execCols+" FROM engine_executions"+tail, args...)
}

// ExecutionsByStatus lists executions in the given statuses, oldest first.
func (s *State) ExecutionsByStatus(ctx context.Context, statuses ...string) ([]engine.Execution, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	args := make([]any, len(statuses))
	for i, st := range statuses {
		args[i] = st
	}
	return s.queryExecutions(ctx, "SELECT "+execCols+" FROM engine_executions WHERE status IN (?"+
		strings.Repeat(", ?", len(statuses)-1)+") ORDER BY created_at", args...)
}

// Advance updates an execution and appends transitions in one transaction,
// guarded by the expected current status.
func (s *State) Advance(ctx context.Context, e engine.Execution, from []string, trs []engine.Transition) error {
	if len(from) == 0 {
		return engine.ErrConflict // no status is expected, so none matches
	}
	meta, err := metaText(e.Metadata)
	if err != nil {
		return fmt.Errorf("encode execution metadata: %w", err)
	}
	out, err := jsonText(e.Output)
	if err != nil {
		return fmt.Errorf("encode execution output: %w", err)
	}
	bodies := make([]string, len(trs))
	for i, tr := range trs {
		b, err := json.Marshal(transitionBody{tr.Output, tr.Current, tr.Next, tr.StepLabel, tr.Metadata})
		if err != nil {
			return fmt.Errorf("encode transition: %w", err)
		}
		bodies[i] = string(b)
	}
	// The count guard makes a writer that read the execution before another
	// one advanced it lose with ErrConflict even when the status is unchanged.
	args := []any{e.Status, nanos(e.UpdatedAt), meta, out, e.Error, e.TransitionCount, string(e.Checkpoint), e.Crashes, e.ID,
		e.TransitionCount - len(trs)}
	for _, st := range from {
		args = append(args, st)
	}
	fenced := e.LeaseToken != ""
	if fenced {
		args = append(args, e.LeaseToken)
	}
	err = s.batch(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(tx, advanceSQL(len(from), fenced), args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return engine.ErrConflict
		}
		for i, tr := range trs {
			if _, err := s.txExec(tx, insertTransitionSQL, tr.ID, e.ID, tr.Seq, tr.Type, nanos(tr.CreatedAt), bodies[i]); err != nil {
				return fmt.Errorf("append transition %d: %w", tr.Seq, err)
			}
		}
		return nil
	})
	if errors.Is(err, engine.ErrConflict) {
		return err
	}
	if err != nil {
		return fmt.Errorf("advance execution %s: %w", e.ID, err)
	}
	return nil
}

// ClaimExecution takes the lease of one claimable execution.
func (s *State) ClaimExecution(ctx context.Context, id, owner, token string, until, now time.Time) (engine.Execution, error) {
	var e engine.Execution
	err := s.batch(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = scanExecution(s.txQueryRow(tx, claimSQL, owner, token, nanos(until), id, nanos(now)))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return e, engine.ErrConflict
	}
	if err != nil {
		return e, fmt.Errorf("claim execution %s: %w", id, err)
	}
	return e, nil
}

// ClaimExecutions claims up to limit executions. Candidates are found by a
// read first, so a sweep that finds nothing costs no write; each is then
// claimed with the same condition as ClaimExecution, in one transaction.
func (s *State) ClaimExecutions(ctx context.Context, owner string, now, until time.Time, limit int) ([]engine.Execution, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.rstmts.query(ctx, claimableSQL, nanos(now), limit)
	if err != nil {
		return nil, fmt.Errorf("find claimable executions: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find claimable executions: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return nil, err
	}
	var out []engine.Execution
	err = s.batch(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		for _, id := range ids {
			e, err := scanExecution(s.txQueryRow(tx, claimSQL, owner, uuid.NewString(), nanos(until), id, nanos(now)))
			if errors.Is(err, sql.ErrNoRows) {
				continue // another engine took it meanwhile
			}
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim executions: %w", err)
	}
	return out, nil
}

// ExtendLease moves a held lease on.
func (s *State) ExtendLease(ctx context.Context, id, token string, until time.Time) error {
	return s.leaseWrite(ctx, "extend lease of", id, extendSQL, nanos(until), id, token)
}

// LeaseToken reads the token of an execution's lease.
func (s *State) LeaseToken(ctx context.Context, id string) (string, error) {
	row, err := s.rstmts.queryRow(ctx, "SELECT lease_token FROM engine_executions WHERE id = ?", id)
	if err != nil {
		return "", fmt.Errorf("read lease of %s: %w", id, err)
	}
	var token string
	err = row.Scan(&token)
	if errors.Is(err, sql.ErrNoRows) {
		return "", engine.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read lease of %s: %w", id, err)
	}
	return token, nil
}

// ReleaseLease clears a held lease.
func (s *State) ReleaseLease(ctx context.Context, id, token string) error {
	return s.leaseWrite(ctx, "release lease of", id,
		`UPDATE engine_executions SET lease_owner = '', lease_token = '', lease_until = 0 WHERE id = ? AND lease_token = ?`, id, token)
}

func (s *State) leaseWrite(ctx context.Context, what, id, q string, args ...any) error {
	if args[len(args)-1] == "" {
		return engine.ErrConflict // no claim is named, so none is held
	}
	err := s.batch(ctx, func(tx *sql.Tx) error {
		res, err := s.txExec(tx, q, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return engine.ErrConflict
		}
		return nil
	})
	if err != nil && !errors.Is(err, engine.ErrConflict) {
		return fmt.Errorf("%s execution %s: %w", what, id, err)
	}
	return err
}

// fenced runs write in the transaction that checks f, so a run fenced out
// by a later claim cannot write after the check.
func (s *State) fenced(ctx context.Context, f engine.Fence, write func(tx *sql.Tx) error) error {
	if f.Token == "" {
		return engine.ErrConflict
	}
	return s.batch(ctx, func(tx *sql.Tx) error {
		var one int
		if err := s.txQueryRow(tx, fenceSQL, f.ExecutionID, f.Token).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return engine.ErrConflict
			}
			return err
		}
		return write(tx)
	})
}

// PutResourceFenced puts a resource while f holds its execution's lease.
func (s *State) PutResourceFenced(ctx context.Context, r engine.Resource, f engine.Fence) error {
	meta, err := metaText(r.Metadata)
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	err = s.fenced(ctx, f, func(tx *sql.Tx) error {
		_, err := s.txExec(tx, putResourceSQL, r.Kind, r.ID, r.Parent, nanos(r.CreatedAt), nanos(r.UpdatedAt), meta, string(r.Body))
		return err
	})
	if err != nil && !errors.Is(err, engine.ErrConflict) {
		return fmt.Errorf("put %s %s: %w", r.Kind, r.ID, err)
	}
	return err
}

// DeleteResourceFenced deletes a resource while f holds its execution's
// lease; a missing one is ErrNotFound.
func (s *State) DeleteResourceFenced(ctx context.Context, kind, id string, f engine.Fence) error {
	err := s.fenced(ctx, f, func(tx *sql.Tx) error {
		res, err := tx.Exec("DELETE FROM engine_resources WHERE kind = ? AND id = ?", kind, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return engine.ErrNotFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, engine.ErrConflict) && !errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("delete %s %s: %w", kind, id, err)
	}
	return err
}

// txQueryRow queries one row in tx, through its prepared statement when
// there is one.
func (s *State) txQueryRow(tx *sql.Tx, q string, args ...any) *sql.Row {
	if st := s.wstmts.lookup(q); st != nil {
		return tx.Stmt(st).QueryRow(args...)
	}
	return tx.QueryRow(q, args...)
}

// batch runs fn as one write of the store's group commit. ctx only
// decides whether fn starts: once in the shared transaction, statements run
// uninterrupted.
func (s *State) batch(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.store.Batch(func(tx *sql.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(tx)
	})
}

type transitionBody struct {
	Output    any            `json:"output"`
	Current   engine.Cursor  `json:"current"`
	Next      *engine.Cursor `json:"next"`
	StepLabel string         `json:"step_label,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

// ListTransitions pages an execution's transitions by position.
func (s *State) ListTransitions(ctx context.Context, executionID string, limit, offset int, desc bool) ([]engine.Transition, error) {
	dir := "ASC"
	if desc {
		dir = "DESC"
	}
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.rstmts.query(ctx, `SELECT id, seq, type, created_at, body FROM engine_transitions
		WHERE execution_id = ? ORDER BY seq `+dir+` LIMIT (? + 0) OFFSET (? + 0)`, executionID, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list transitions of %s: %w", executionID, err)
	}
	defer rows.Close()
	var out []engine.Transition
	for rows.Next() {
		var (
			tr   engine.Transition
			ca   int64
			body string
			tb   transitionBody
		)
		if err := rows.Scan(&tr.ID, &tr.Seq, &tr.Type, &ca, &body); err != nil {
			return nil, fmt.Errorf("list transitions of %s: %w", executionID, err)
		}
		if err := unmarshalNumbers([]byte(body), &tb); err != nil {
			return nil, fmt.Errorf("decode transition %s: %w", tr.ID, err)
		}
		tr.ExecutionID, tr.CreatedAt = executionID, fromNanos(ca)
		tr.Output, tr.Current, tr.Next, tr.StepLabel, tr.Metadata = tb.Output, tb.Current, tb.Next, tb.StepLabel, tb.Metadata
		out = append(out, tr)
	}
	return out, rows.Err()
}

// unmarshalNumbers decodes JSON keeping numbers as json.Number, so that a
// whole float (2.0) stays a float and a big int stays exact, as in Julep.
func unmarshalNumbers(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}
