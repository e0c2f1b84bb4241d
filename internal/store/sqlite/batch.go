package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// batcher group-commits the writes of this process on the one writer
// connection. A write queues; whichever caller finds no commit under way
// leads: it runs every queued write in one transaction, each in a savepoint
// of its own (so one write's failure undoes only that write), commits, and
// goes on until the queue is empty. Under load a commit carries many writes:
// the store's and the embedded engine's (which writes through Batch) alike.
type batcher struct {
	db       *sql.DB
	stmts    *stmtCache
	onCommit func()

	mu      sync.Mutex
	queue   []*batchOp
	writing bool
}

type batchOp struct {
	fn   func(tx *sql.Tx) error
	done chan error
}

// Savepoint statements, prepared with the writer's statements at open.
const (
	savepointSQL  = "SAVEPOINT op"
	rollbackToSQL = "ROLLBACK TO op"
	releaseSQL    = "RELEASE op"
)

// do runs fn in a write transaction shared with other writes and returns
// fn's error, or the commit's. It always waits for the outcome: a write
// either committed or did not when do returns. fn must not use a context
// that can be cancelled for its statements: an interrupted statement can
// roll back the whole shared transaction.
func (b *batcher) do(fn func(tx *sql.Tx) error) error {
	o := &batchOp{fn: fn, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, o)
	lead := !b.writing
	b.writing = true
	b.mu.Unlock()
	if lead {
		for {
			b.mu.Lock()
			ops := b.queue
			b.queue = nil
			if len(ops) == 0 {
				b.writing = false
				b.mu.Unlock()
				break
			}
			b.mu.Unlock()
			b.commit(ops)
		}
	}
	return <-o.done
}

func (b *batcher) commit(ops []*batchOp) {
	fail := func(err error) {
		for _, o := range ops {
			o.done <- err
		}
	}
	// Not any caller's context: the transaction carries everyone's writes.
	tx, err := b.db.BeginTx(context.Background(), nil)
	if err != nil {
		fail(fmt.Errorf("begin write: %w", err))
		return
	}
	exec := func(q string) error {
		if st := b.stmts.lookup(q); st != nil {
			_, err := tx.Stmt(st).Exec()
			return err
		}
		_, err := tx.Exec(q)
		return err
	}
	// A write alone in the transaction needs no savepoint: its failure
	// rolls the transaction back (two statements fewer on a quiet commit).
	alone := len(ops) == 1
	errs := make([]error, len(ops))
	for i, o := range ops {
		if !alone {
			if err := exec(savepointSQL); err != nil {
				_ = tx.Rollback()
				fail(err)
				return
			}
		}
		errs[i] = o.fn(tx)
		switch {
		case errs[i] != nil && alone:
			_ = tx.Rollback()
			fail(errs[i])
			return
		case errs[i] != nil:
			err = exec(rollbackToSQL)
		}
		if err == nil && !alone {
			err = exec(releaseSQL)
		}
		if err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	b.onCommit()
	for i, o := range ops {
		o.done <- errs[i]
	}
}
