package dispatch_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// The chaos test runs the dispatcher as a child process (this test binary,
// re-executed into TestHelperDispatcher) so it can be SIGKILLed at any
// instruction, as a crashed or OOM-killed instance would be.
const helperEnv = "ASTRA_DISPATCH_HELPER"

// TestHelperDispatcher is the child process's main: a dispatcher on the
// SQLite file and Julep URL the parent names, until SIGTERM (or SIGKILL).
func TestHelperDispatcher(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process of TestChaos")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	st, err := sqlite.Open(ctx, os.Getenv("ASTRA_HELPER_DB"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := newClient(t, os.Getenv("ASTRA_HELPER_JULEP"))
	d := dispatch.New(dispatch.Options{
		Store: st, Julep: c, TaskID: os.Getenv("ASTRA_HELPER_TASK"), Owner: os.Getenv("ASTRA_HELPER_OWNER"),
		Lease: time.Second, Sweep: 20 * time.Millisecond, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		ShutdownGrace: 2 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	// Tell the parent SIGTERM is handled from now on: one sent earlier
	// would kill the process instead of shutting it down.
	if f := os.Getenv("ASTRA_HELPER_READY"); f != "" {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintln(os.Stderr, "helper: running")
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// child is one running dispatcher process.
type child struct {
	cmd   *exec.Cmd
	logs  *bytes.Buffer
	done  chan struct{}
	ready string // a file the child creates once it handles SIGTERM
}

func startChild(t *testing.T, db, julepURL, taskID string, n int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDispatcher$", "-test.count=1", "-test.v")
	ready := filepath.Join(t.TempDir(), "ready")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "ASTRA_HELPER_DB="+db, "ASTRA_HELPER_JULEP="+julepURL,
		"ASTRA_HELPER_TASK="+taskID, fmt.Sprintf("ASTRA_HELPER_OWNER=child-%d", n), "ASTRA_HELPER_READY="+ready)
	c := &child{cmd: cmd, logs: &bytes.Buffer{}, done: make(chan struct{}), ready: ready}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

func (c *child) terminate(t *testing.T) {
	t.Helper()
	// When the work is done before the child has even started (fast
	// runs), SIGTERM must still find its handler installed.
	waitFor(t, 20*time.Second, "the child to handle SIGTERM", func() bool {
		_, err := os.Stat(c.ready)
		return err == nil
	})
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.kill(t)
		t.Errorf("child did not stop on SIGTERM; logs:\n%s", c.logs)
	}
	if !c.cmd.ProcessState.Success() {
		t.Errorf("child exited with %v; logs:\n%s", c.cmd.ProcessState, c.logs)
	}
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test: skipped with -short")
	}
	if os.Getenv(helperEnv) == "1" {
		t.Skip("in the helper process")
	}
	t.Run("kills", func(t *testing.T) { chaos(t, 0) })
	t.Run("kills and julep faults", func(t *testing.T) { chaos(t, 0.2) })
}

// chaos sends 200 messages while a child dispatcher is SIGKILLed at random
// moments 10 times and restarted, with faultRate of the Julep calls failing.
func chaos(t *testing.T, faultRate float64) {
	const messages, kills = 200, 10
	je := startEngine(t, nil)
	julepURL := je.URL
	var px *faultProxy
	if faultRate > 0 {
		px = newFaultProxy(t, je.URL, randomFaults(faultRate))
		julepURL = px.URL()
	}
	db := filepath.Join(t.TempDir(), "astra.db")
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users := make([]*responder.User, 10)
	for i := range users {
		users[i] = newUser(t, st, fmt.Sprintf("Chaos User %d", i))
	}

	// Messages arrive over the whole kill window.
	var wg sync.WaitGroup
	ids := make([]string, 0, messages)
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range messages {
			m := enqueue(t, st, users[i%len(users)], fmt.Sprintf("chaos message %d", i), nil)
			mu.Lock()
			ids = append(ids, m.ID)
			mu.Unlock()
			if i%10 == 9 {
				time.Sleep(150 * time.Millisecond)
			}
		}
	}()

	var logs []*bytes.Buffer
	for n := range kills {
		c := startChild(t, db, julepURL, je.TaskID, n)
		logs = append(logs, c.logs)
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		c.kill(t)
	}
	wg.Wait()
	final := startChild(t, db, julepURL, je.TaskID, kills)
	logs = append(logs, final.logs)
	// A bound on liveness, not a speed figure: under the race detector,
	// beside other packages' tests, 200 rows through 10 kills took over 60 s.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		counts, err := st.CountByStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if counts[responder.StatusDelivered]+counts[responder.StatusError] == messages {
			break
		}
		if time.Now().After(deadline) {
			final.kill(t)
			byStatus := map[julep.ExecutionStatus]int{}
			for _, xs := range executionsOf(t, je.Client, je.TaskID) {
				for _, x := range xs {
					byStatus[x.Status]++
				}
			}
			t.Logf("executions by status: %v", byStatus)
			if byStatus[julep.StatusQueued] > 0 {
				// Seen with the engine of 2026-11-26: a client that disconnects
				// during POST /tasks/{id}/executions leaves the execution stored
				// but never run (createExecution writes with the request's
				// context, gets ctx.Err() while the insert commits, and skips
				// enqueue), so its row waits for ExecutionTimeout.
				t.Errorf("%d executions never left queued: the engine did not run them", byStatus[julep.StatusQueued])
			}
			t.Fatalf("rows not terminal after 3m: %v; last child's logs:\n%s", counts, final.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	final.terminate(t)

	execs := executionsOf(t, je.Client, je.TaskID)
	delivered, failed := 0, 0
	for _, id := range ids {
		m, err := st.Message(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		// A row that took longer than StillWorking (kills, backoff) also
		// has its one "still working" notice; the outcome is what counts.
		evs := slices.DeleteFunc(eventsOf(t, st, m.UserID, id), func(e responder.Event) bool {
			return e.Metadata["progress"] == true
		})
		xs := execs[id]
		switch m.Status {
		case responder.StatusDelivered:
			delivered++
			if len(evs) != 1 || evs[0].Role != responder.RoleAssistant {
				t.Errorf("delivered row %s has events %+v, want exactly one assistant event", id, evs)
			}
			if len(xs) != 1 || xs[0].Id != m.ExecutionID || xs[0].Status != julep.StatusSucceeded {
				t.Errorf("delivered row %s (execution %s) has executions %v, want exactly that one", id, m.ExecutionID, xs)
			}
		case responder.StatusError:
			failed++
			if len(evs) != 1 || evs[0].Role != responder.RoleSystem {
				t.Errorf("error row %s (%s) has events %+v, want exactly one system event", id, m.LastError, evs)
			}
			if len(xs) > 1 {
				t.Errorf("error row %s has %d executions", id, len(xs))
			}
		default:
			t.Errorf("row %s is %s", id, m.Status)
		}
	}
	if len(execs) > messages {
		t.Errorf("%d outbox ids have executions, but only %d messages were sent", len(execs), messages)
	}
	if faultRate == 0 && failed > 0 {
		t.Errorf("%d rows failed with no Julep faults", failed)
	}
	t.Logf("%d delivered, %d error, %d executions", delivered, failed, len(execs))
	if px != nil {
		t.Logf("faults injected: 500=%d 429=%d reset=%d reset-after=%d 502-after=%d", px.count(status500), px.count(status429),
			px.count(resetBefore), px.count(resetAfter), px.count(status502After))
	}
	if t.Failed() {
		for i, l := range logs {
			t.Logf("child %d logs:\n%s", i, l)
		}
	}
}
