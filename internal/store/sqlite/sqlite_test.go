package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/store/storetest"
)

func openTemp(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) responder.Store { return openTemp(t) }, storetest.Options{
		Concurrent: true,
		OpenWriters: func(t *testing.T, clocks ...func() time.Time) []responder.Store {
			path := filepath.Join(t.TempDir(), "astra.db")
			var out []responder.Store
			for _, c := range clocks {
				s, err := sqlite.OpenWith(t.Context(), path, sqlite.Options{Now: c})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				out = append(out, s)
			}
			return out
		},
	})
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.db")
	if err := os.WriteFile(corrupt, bytes.Repeat([]byte("not a database "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, reason string }{
		{corrupt, "file is not a database"},
		{filepath.Join(dir, "missing", "astra.db"), "does not exist"},
		{filepath.Join(file, "astra.db"), "is not a directory"},
		{dir, "is a directory"},
		{"", "empty path"},
	}
	for _, c := range cases {
		s, err := sqlite.Open(t.Context(), c.path)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", c.path)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, fmt.Sprintf("open sqlite database %q: ", c.path)) || !strings.Contains(msg, c.reason) || strings.Contains(msg, "\n") {
			t.Errorf("Open(%q) error = %q, want one line naming the path and %q", c.path, msg, c.reason)
		}
	}
	// The corrupt file is left as it was.
	if b, err := os.ReadFile(corrupt); err != nil || !bytes.HasPrefix(b, []byte("not a database")) {
		t.Errorf("corrupt file was modified: %v", err)
	}
}

func TestOpenUnwritableDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only directories; the missing and not-a-directory cases in TestOpenErrors still run")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "astra.db")
	_, err := sqlite.Open(t.Context(), path)
	if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("open sqlite database %q: ", path)) {
		t.Fatalf("Open in a read-only directory = %v, want an error naming the path", err)
	}
}

func TestNewFileIsPrivate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "astra.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group or other access", filepath.Base(p), perm)
		}
	}
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "astra.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	m := &responder.Message{UserID: responder.NewID(), Content: "survive", Metadata: map[string]any{"n": 1}}
	if err := s.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	e := &responder.Event{UserID: m.UserID, Role: responder.RoleUser, Content: "survive", DedupeKey: "k"}
	if _, err := s.AppendEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	migrations := countMigrations(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		s, err = sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		got, err := s.Message(ctx, m.ID)
		if err != nil || got.Content != "survive" || got.Metadata["n"] != int64(1) {
			t.Errorf("message after reopen = %+v, %v", got, err)
		}
		evs, err := s.LatestEvents(ctx, m.UserID, 10)
		if err != nil || len(evs) != 1 || evs[0].ID != e.ID {
			t.Errorf("events after reopen = %v, %v", evs, err)
		}
		if n := countMigrations(t, s); n != migrations || n == 0 {
			t.Errorf("schema_migrations has %d rows after reopen, want %d", n, migrations)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func countMigrations(t *testing.T, s *sqlite.Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "astra.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = sqlite.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Fatalf("Open of a newer schema = %v, want a refusal", err)
	}
}

// TestLegacyFailedStatus: the original app wrote "failed"; it reads as error.
func TestLegacyFailedStatus(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTemp(t)
	m := &responder.Message{UserID: responder.NewID(), Content: "old"}
	if err := s.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, `UPDATE outbox SET status = 'failed' WHERE id = ?`, m.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.Message(ctx, m.ID)
	if err != nil || got.Status != responder.StatusError {
		t.Fatalf("legacy row = %+v, %v; want status error", got, err)
	}
	counts, err := s.CountByStatus(ctx)
	if err != nil || counts[responder.StatusError] != 1 || counts["failed"] != 0 {
		t.Errorf("CountByStatus = %v, %v; want the failed row counted as error", counts, err)
	}
	if c, err := s.Claim(ctx, "w", time.Minute, 0); err != nil || c != nil {
		t.Errorf("Claim = %v, %v; a failed row is not claimable", c, err)
	}
}

// TestTwoStoresOneFile: two Stores on one file (two processes, in effect)
// still claim each row once; SQLite's file locks and the busy timeout
// serialise their writers.
func TestTwoStoresOneFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "astra.db")
	var stores []*sqlite.Store
	for range 2 {
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	const rows = 300
	for i := range rows {
		if err := stores[i%2].Enqueue(ctx, &responder.Message{UserID: "u", Content: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		wg      sync.WaitGroup
	)
	for w := range 6 {
		s := stores[w%2]
		wg.Go(func() {
			for {
				m, err := s.Claim(ctx, fmt.Sprint("w", w), time.Hour, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if m == nil {
					return
				}
				if err := s.Deliver(ctx, m.ID, m.LeaseOwner); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				claimed[m.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != rows {
		t.Errorf("claimed %d rows, want %d", len(claimed), rows)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("row %s claimed %d times", id, n)
		}
	}
}

// TestConcurrentFirstReads: many readers using queries the store has not
// prepared yet, at once, all finish. Preparing a statement while holding a
// read connection once deadlocked the read pool when every connection was
// held that way (seen as a dispatcher that stopped working after a restart).
func TestConcurrentFirstReads(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		s := openTemp(t)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 128)
		for range 96 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := s.UserMessages(ctx, "u", 20)
				errs <- err
			}()
		}
		close(start)
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v (a read waited for a connection that never came back)", round, err)
			}
		}
	}
}
