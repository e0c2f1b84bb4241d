// Package sqlite is the embedded responder.Store: one SQLite file through the
// pure-Go modernc.org/sqlite driver, so `astra serve` needs no database server.
//
// Connections: SQLite lets one writer in at a time, so every write goes
// through a pool of exactly one connection (each write a BEGIN IMMEDIATE
// transaction). Writers queue in Go instead of spinning in SQLite's busy
// handler, and the order in which writes commit is the order in which they
// ran. Reads use a separate pool of read-only connections which, in WAL mode,
// never wait for the writer.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/astra-app/astra/internal/responder"
)

// Store is the SQLite responder.Store.
type Store struct {
	path string
	w    *sql.DB // one connection: every write
	r    *sql.DB // read-only connections

	wstmts, rstmts *stmtCache
	batch          *batcher // every write of this process goes through it

	ckpt    *sql.DB       // the checkpointer's connection
	commits atomic.Int64  // commits since the last checkpoint
	wrote   chan struct{} // wakes the checkpointer early
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	clock func() time.Time // stamps events; Options.Now
}

// Options configures OpenWith.
type Options struct {
	// Now is the clock events are stamped with; default time.Now. Tests
	// give two stores on one file clocks that disagree.
	Now func() time.Time
}

var _ responder.Store = (*Store)(nil)

// busyTimeoutMS bounds how long a connection waits for a lock another
// process holds (in-process writers queue for the single write connection).
const busyTimeoutMS = 10000

// Open opens (creating if needed) the database at path, applies pending
// migrations and returns the store. Any failure is one error naming the path.
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenWith(ctx, path, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, opts Options) (*Store, error) {
	s, err := open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %s", path, describe(err))
	}
	s.clock = opts.Now
	if s.clock == nil {
		s.clock = time.Now
	}
	return s, nil
}

func open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("empty path")
	}
	if strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil, errors.New("want a file path, not a URI")
	}
	if dir := filepath.Dir(path); dir != "" {
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("directory %q does not exist", dir)
		case err != nil:
			return nil, err
		case !fi.IsDir():
			return nil, fmt.Errorf("%q is not a directory", dir)
		}
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, errors.New("is a directory")
	}
	// The file holds session and OAuth tokens: create it private. SQLite
	// gives its -wal and -shm files the database file's permissions.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}

	// wal_autocheckpoint(0): the checkpointer goroutine, on its own
	// connection, copies the WAL back into the database, so a commit never
	// pays for a checkpoint's writes and fsyncs (they were 40% of a write).
	w, err := sql.Open("sqlite", dsn(path,
		"_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"+
			"&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(%d)&_txlock=immediate",
		busyTimeoutMS, walSizeLimit))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}

	// Readers open after the writer has made the file a WAL database, so
	// they need no journal pragma of their own.
	r, err := sql.Open("sqlite", dsn(path, "_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_query_only=1", busyTimeoutMS))
	if err != nil {
		w.Close()
		return nil, err
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	c, err := sql.Open("sqlite", dsn(path, "_pragma=busy_timeout(%d)&_pragma=synchronous(NORMAL)", busyTimeoutMS))
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	c.SetMaxOpenConns(1)
	s := &Store{
		path: path, w: w, r: r, ckpt: c,
		wstmts: newStmtCache(w), rstmts: newStmtCache(r),
		wrote: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	s.batch = &batcher{db: w, stmts: s.wstmts, onCommit: s.committed}
	go s.checkpointer()
	return s, nil
}

// walSizeLimit is the size the WAL file is truncated back to after a
// checkpoint lets SQLite start it over.
const walSizeLimit = 64 << 20

// checkpointEvery is how many commits may pile up in the WAL before the
// checkpointer is woken early; it also runs on a timer.
const checkpointEvery = 200

// checkpointer runs PASSIVE checkpoints, which never block readers or the
// writer, whenever enough commits have accumulated or a second has passed.
func (s *Store) checkpointer() {
	defer close(s.stopped)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		case <-s.wrote:
		}
		// Runs on every tick even without commits of ours: the engine writes
		// through DB() too. With nothing to copy it is a cheap no-op.
		s.commits.Store(0)
		// A failed checkpoint is retried on the next round; the WAL just
		// grows meanwhile, which costs space, not correctness.
		_, _ = s.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// committed tells the checkpointer about a commit.
func (s *Store) committed() {
	if s.commits.Add(1)%checkpointEvery == 0 {
		select {
		case s.wrote <- struct{}{}:
		default:
		}
	}
}

// dsn is a modernc DSN for path: a SQLite URI, so a path containing '%' or
// '#' is escaped rather than misread.
func dsn(path, query string, args ...any) string {
	esc := strings.NewReplacer("%", "%25", "#", "%23").Replace(filepath.ToSlash(path))
	return "file:" + esc + "?" + fmt.Sprintf(query, args...)
}

var trailingCode = regexp.MustCompile(`\s*\(\d+\)$`)

// describe turns a driver error into the short readable reason SQLite gives
// ("file is not a database"), without the numeric code.
func describe(err error) string {
	var se *sqlite.Error
	if errors.As(err, &se) {
		msg := trailingCode.ReplaceAllString(se.Error(), "")
		// The legacy form is "errstr: errmsg"; keep the more specific half.
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		if se.Code()&0xff == sqlite3.SQLITE_CANTOPEN {
			msg += " (can this user create and write files in its directory?)"
		}
		return msg
	}
	return err.Error()
}

// DB returns the write connection pool, so the embedded Julep engine can
// keep its own tables in the same file (in WAL mode, foreign keys on, BEGIN
// meaning BEGIN IMMEDIATE). The pool has exactly one connection, shared with
// the store's own writes: while you hold a transaction or unclosed rows from
// it, do not call Store methods or use DB() again from the same goroutine,
// or it waits for itself forever. Keep transactions on it short.
func (s *Store) DB() *sql.DB { return s.w }

// QueryPlan returns the steps of the plan SQLite chooses for query (the
// details of EXPLAIN QUERY PLAN), for tests and diagnosis.
func (s *Store) QueryPlan(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.w.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, err
		}
		plan = append(plan, detail)
	}
	return plan, rows.Err()
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Ping checks that both pools answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite readers: %w", err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite writer: %w", err)
	}
	return nil
}

// Close closes both pools.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		<-s.stopped
		// Closing the last connection checkpoints the WAL and removes it.
		err = errors.Join(s.rstmts.close(), s.wstmts.close(), s.ckpt.Close(), s.r.Close(), s.w.Close())
	})
	return err
}

// write runs fn as one write of a group commit (see batcher), committed
// when fn returns nil. ctx is checked before fn starts; fn's statements run
// without it, since cancelling one would interrupt the shared transaction.
func (s *Store) write(ctx context.Context, fn func(tx *wtx) error) error {
	err := s.batch.do(func(tx *sql.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(&wtx{ctx: context.WithoutCancel(ctx), tx: tx, s: s})
	})
	// The connection is free again once the transaction ends: prepare what
	// it ran unprepared, for the next time.
	s.wstmts.preparePending(ctx)
	return err
}

// Batch runs fn as one write of the store's group commit, on the writer
// connection, and returns fn's error or the commit's. The embedded engine
// writes its state through it, so its writes and the store's share commits.
// fn's statements must not use a cancellable context (see batcher.do).
func (s *Store) Batch(fn func(tx *sql.Tx) error) error {
	return s.batch.do(fn)
}

// wtx is a write transaction whose statements come from the store's cache
// of prepared statements: parsing SQL was a quarter of a claim's CPU time.
type wtx struct {
	ctx context.Context
	tx  *sql.Tx
	s   *Store
}

func (t *wtx) exec(query string, args ...any) (sql.Result, error) {
	if st := t.s.wstmts.lookup(query); st != nil {
		return t.tx.StmtContext(t.ctx, st).ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, query, args...)
}

func (t *wtx) queryRow(query string, args ...any) *sql.Row {
	if st := t.s.wstmts.lookup(query); st != nil {
		return t.tx.StmtContext(t.ctx, st).QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, query, args...)
}

// queryRow and query read through the read pool's prepared statements.
// A statement missing from the cache is prepared before the query runs, not
// after: the rows of a query hold a read connection until the caller is
// done with them, and preparing while holding one could wait forever for
// another when every connection of the pool is held the same way.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.rstmts.prepared(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, query, args...)
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.rstmts.prepared(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, query, args...)
}

// stmtCache holds one prepared statement per query text (the queries are
// constants of this package, so it stays small). A query missing from it is
// run unprepared and noted, and prepared later by preparePending, which
// must run with no transaction of the pool open: on the one-connection write
// pool, preparing inside a transaction would wait for the connection that
// transaction holds.
type stmtCache struct {
	db      *sql.DB
	mu      sync.Mutex
	m       map[string]*sql.Stmt
	pending map[string]bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt), pending: make(map[string]bool)}
}

// lookup returns the prepared statement for query, or nil after noting it.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.m[query]
	if st == nil {
		c.pending[query] = true
	}
	return st
}

// prepared returns the statement for query, preparing it now on a miss
// (for pools with connections to spare: the read pool). It returns nil when
// preparing fails; the query then runs unprepared and reports its own error.
func (c *stmtCache) prepared(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	st := c.m[query]
	c.mu.Unlock()
	if st != nil {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query) // borrows a connection and gives it back
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[query]; old != nil {
		st.Close() // another caller prepared it first
		return old
	}
	c.m[query] = st
	return st
}

func (c *stmtCache) preparePending(ctx context.Context) {
	c.mu.Lock()
	var todo []string
	for q := range c.pending {
		todo = append(todo, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range todo {
		// Not under mu: a writer holding the connection may need lookup.
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue // the query runs unprepared and reports its own error
		}
		c.mu.Lock()
		if c.m[q] == nil {
			c.m[q] = st
			st = nil
		}
		c.mu.Unlock()
		if st != nil {
			st.Close()
		}
	}
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// normID returns id lowercased (ids are stored as NewID makes them) and
// whether it is an id at all; a malformed id can match nothing.
func normID(id string) (string, bool) {
	if !responder.ValidID(id) {
		return "", false
	}
	return strings.ToLower(id), true
}

func notFound(what, id string) error {
	return responder.Errorf(responder.ENOTFOUND, "%s %q not found", what, id)
}

// ---- times: integer Unix milliseconds, UTC ----

// now is the current time at the precision the store keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// now is the store's clock (Options.Now), for stamping events.
func (s *Store) now() time.Time { return s.clock() }

// msTime is t at stored precision.
func msTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// optMS is an optional time as stored: NULL when unset.
func optMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// timeCol scans a millisecond column into a time; NULL and 0 are the zero
// time (0 is outbox.available_at's "no hold").
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		if x == 0 {
			*c.t = time.Time{}
		} else {
			*c.t = time.UnixMilli(x).UTC()
		}
	default:
		return fmt.Errorf("time column holds %T, want integer milliseconds", v)
	}
	return nil
}

// ---- metadata: a JSON object, NULL when nil ----

func encodeMetadata(m map[string]any) (any, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, responder.Errorf(responder.EINVALID, "metadata is not JSON: %v", err)
	}
	return string(b), nil
}

// metaCol scans a JSON column back into a map. Numbers come back as int64
// when they are integers (as they went in, and as MongoDB returns them) and
// float64 otherwise.
type metaCol struct{ m *map[string]any }

func (c metaCol) Scan(v any) error {
	var b []byte
	switch x := v.(type) {
	case nil:
		*c.m = nil
		return nil
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		return fmt.Errorf("metadata column holds %T", v)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("decode metadata: %w", err)
	}
	*c.m = numbers(m).(map[string]any)
	return nil
}

// numbers replaces every json.Number in v with an int64 or a float64.
func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
		return x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	default:
		return v
	}
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }
