package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/astra-app/astra/internal/config"
	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/readiness"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/taskdef"
)

// readyChecks are the dependencies this instance's roles need, each a
// named check of /readyz: the store always; with the dispatch role (or the
// embedded engine) the Julep API (reachable, key accepted) or the engine;
// with the dispatch role the responder task deployed as the lock says.
// taskID is empty until start has deployed (or found) the task.
func readyChecks(cfg *config.Config, st responder.Store, julepURL, julepKey, julepHeader string, taskID *atomic.Pointer[string]) ([]readiness.Check, error) {
	checks := []readiness.Check{{Name: "store", Run: st.Ping}}
	if !cfg.HasRole("dispatch") && !cfg.EmbeddedEngine() {
		return checks, nil
	}
	// A client of its own: one try, a short timeout, so a dead endpoint
	// answers the probe rather than sitting in retries.
	jc, err := julep.New(julepURL, julepKey, julep.WithAuthHeader(julepHeader),
		julep.WithRetry(julep.RetryPolicy{MaxAttempts: 1}), julep.WithTimeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("JULEP_BASE_URL: %w", err)
	}
	name := "julep"
	if cfg.EmbeddedEngine() {
		name = "engine"
	}
	task := func() string {
		if p := taskID.Load(); p != nil {
			return *p
		}
		return ""
	}
	checks = append(checks, readiness.Check{Name: name, Run: func(ctx context.Context) error {
		id := task()
		if id == "" {
			// Before the deploy: any id shows whether the server answers
			// and accepts the key (404 is an answer).
			id = "00000000-0000-0000-0000-000000000000"
		}
		_, err := jc.GetTask(ctx, id)
		switch code := julep.StatusCode(err); {
		case err == nil, code == http.StatusNotFound:
			return nil
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return fmt.Errorf("%s refused the API key (%d)", julepURL, code)
		case code != 0:
			return fmt.Errorf("%s answered %d", julepURL, code)
		default:
			return fmt.Errorf("%s unreachable: %w", julepURL, err)
		}
	}})
	if !cfg.HasRole("dispatch") {
		return checks, nil
	}
	checks = append(checks, readiness.Check{Name: "tasks", Run: func(ctx context.Context) error {
		id := task()
		if id == "" {
			return errors.New("the responder task is not deployed yet")
		}
		if _, err := jc.GetTask(ctx, id); err != nil {
			if julep.IsNotFound(err) {
				return fmt.Errorf("the responder task %s (from the lock) is not on the Julep server: run astra tasks push", id)
			}
			return err
		}
		if cfg.EmbeddedEngine() {
			return nil // deployed from tasks/ at start, under the lock's ids
		}
		return lockCurrent(cfg.TasksDir)
	}})
	return checks, nil
}

// lockCurrent reports whether the responder task in tasks/ is the revision
// the lock says was pushed: if not, the server runs an older definition
// than the files (or the lock was not committed after a push).
func lockCurrent(dir string) error {
	p, issues := taskdef.LoadProject(dir)
	if p == nil || taskdef.HasErrors(issues) {
		return fmt.Errorf("cannot load %s", dir)
	}
	lock, err := taskdef.ReadLock(filepath.Join(dir, taskdef.LockName))
	if err != nil {
		return err
	}
	for _, t := range p.Tasks {
		if t == nil || t.Path != dispatch.ResponderTaskPath {
			continue
		}
		le := lock.Entry(taskdef.KindTask, t.Path)
		switch {
		case le == nil:
			return fmt.Errorf("%s is not in the lock: run astra tasks push", t.Path)
		case le.RevisionHash != t.Hash:
			return fmt.Errorf("%s changed since the last push (lock revision %.12s, files %.12s): run astra tasks push", t.Path, le.RevisionHash, t.Hash)
		}
		return nil
	}
	return nil
}
