package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Writes queued while a commit is under way share the next commit, and a
// write that fails inside it is undone alone: the others still commit.
func TestBatchSharesCommitsAndIsolatesFailures(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Batch(func(tx *sql.Tx) error {
		_, err := tx.Exec(`CREATE TABLE batch_probe (n INTEGER PRIMARY KEY)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Count commits here: the checkpointer resets the store's own counter.
	var commits atomic.Int64
	onCommit := s.batch.onCommit
	s.batch.onCommit = func() { commits.Add(1); onCommit() }

	// The first write holds its commit open until the others have queued.
	entered, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Batch(func(tx *sql.Tx) error {
			close(entered)
			<-release
			_, err := tx.Exec(`INSERT INTO batch_probe VALUES (0)`)
			return err
		}); err != nil {
			t.Error(err)
		}
	}()
	<-entered
	const n = 20
	errs := make([]error, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i-1] = s.Batch(func(tx *sql.Tx) error {
				if _, err := tx.Exec(`INSERT INTO batch_probe VALUES (?)`, i); err != nil {
					return err
				}
				if i%2 == 0 {
					return fmt.Errorf("write %d fails after its insert", i)
				}
				return nil
			})
		}()
	}
	for { // wait until all n are queued behind the held commit
		s.batch.mu.Lock()
		queued := len(s.batch.queue)
		s.batch.mu.Unlock()
		if queued == n {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()

	var got []int
	rows, err := s.r.Query(`SELECT n FROM batch_probe ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		_ = rows.Scan(&v)
		got = append(got, v)
	}
	rows.Close()
	want := []int{0}
	for i := 1; i <= n; i++ {
		if i%2 == 0 {
			if errs[i-1] == nil || errors.Is(errs[i-1], sql.ErrTxDone) {
				t.Errorf("write %d: err %v, want its own failure", i, errs[i-1])
			}
			continue
		}
		if errs[i-1] != nil {
			t.Errorf("write %d: %v", i, errs[i-1])
		}
		want = append(want, i)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	if c := commits.Load(); c != 2 {
		t.Errorf("%d commits for %d writes, want 2 (the held one, then all the queued ones together)", c, n+1)
	}
}
