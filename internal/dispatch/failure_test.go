package dispatch_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
)

// fast are options that keep retries and leases short in tests.
func fast(o dispatch.Options) dispatch.Options {
	o.RetryBase, o.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	if o.Lease == 0 {
		o.Lease = 2 * time.Second
	}
	return o
}

// onlyEvent asserts the row has exactly one event, of role, and returns it.
func onlyEvent(t *testing.T, st responder.Store, m *responder.Message, role responder.Role) responder.Event {
	t.Helper()
	evs := eventsOf(t, st, m.UserID, m.ID)
	if len(evs) != 1 || evs[0].Role != role {
		t.Fatalf("events %+v, want exactly one %s event", evs, role)
	}
	return evs[0]
}

func TestTaskErrorFailsRowAndTellsThePerson(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ms := newModelServer(t, func(string) string { return "!status 400 the model refuses this prompt" }, summarise)
	je := startEngine(t, ms.Model())
	u := newUser(t, st, "Ravi")
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID}))
	m := enqueue(t, st, u, "hello", nil)
	r.d.Wake()
	got := terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusError || got.Attempts != 1 {
		t.Fatalf("status %s attempts %d, want error after 1", got.Status, got.Attempts)
	}
	if !strings.Contains(got.LastError, "execution "+got.ExecutionID+" failed") || !strings.Contains(got.LastError, "the model refuses this prompt") {
		t.Fatalf("lastError %q", got.LastError)
	}
	e := onlyEvent(t, st, got, responder.RoleSystem)
	if !strings.Contains(e.Content, "something went wrong") || e.Metadata["executionId"] != got.ExecutionID {
		t.Fatalf("system event %+v", e)
	}
	if n := len(executionsOf(t, je.Client, je.TaskID)[m.ID]); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
}

func TestRejectedCreateFailsAtOnce(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	je := startEngine(t, nil)
	u := newUser(t, st, "Meera")
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID}))
	// The task's input schema allows 2000 characters: the engine answers 400.
	m := enqueue(t, st, u, strings.Repeat("a", 2500), nil)
	r.d.Wake()
	got := terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusError || got.Attempts != 1 || got.ExecutionID != "" {
		t.Fatalf("status %s attempts %d execution %q, want error at the first attempt", got.Status, got.Attempts, got.ExecutionID)
	}
	if !strings.Contains(got.LastError, "Julep refused it (400)") {
		t.Fatalf("lastError %q", got.LastError)
	}
	onlyEvent(t, st, got, responder.RoleSystem)
	if n := len(executionsOf(t, je.Client, je.TaskID)[m.ID]); n != 0 {
		t.Fatalf("%d executions, want none", n)
	}
}

func TestTransientCreateFailuresAreRetried(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	je := startEngine(t, nil)
	var creates atomic.Int64
	// 500, then 429, then a reset after the engine did create it (the
	// answer is lost). The create carries an Idempotency-Key, so net/http
	// sends it again on the broken connection and the engine answers the
	// execution it made: the third attempt delivers, with one execution.
	px := newFaultProxy(t, je.URL, func(r *http.Request) fault {
		if !isCreateExecution(r) {
			return passThrough
		}
		switch creates.Add(1) {
		case 1:
			return status500
		case 2:
			return status429
		case 3:
			return resetAfter
		}
		return passThrough
	})
	u := newUser(t, st, "Kabir")
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: newClient(t, px.URL()), TaskID: je.TaskID}))
	m := enqueue(t, st, u, "namaste", nil)
	r.d.Wake()
	got := terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusDelivered || got.Attempts != 3 {
		t.Fatalf("status %s attempts %d (%s), want delivered at attempt 3", got.Status, got.Attempts, got.LastError)
	}
	if c := creates.Load(); c != 4 {
		t.Fatalf("%d creates, want 4 (the reset one sent again with its key)", c)
	}
	onlyEvent(t, st, got, responder.RoleAssistant)
	if xs := executionsOf(t, je.Client, je.TaskID)[m.ID]; len(xs) != 1 || xs[0].Id != got.ExecutionID {
		t.Fatalf("executions %v, want exactly the recorded one", xs)
	}
}

func TestAttemptsExhausted(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	je := startEngine(t, nil)
	px := newFaultProxy(t, je.URL, func(r *http.Request) fault {
		if isCreateExecution(r) {
			return status500
		}
		return passThrough
	})
	u := newUser(t, st, "Anaya")
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: newClient(t, px.URL()), TaskID: je.TaskID, MaxAttempts: 3}))
	m := enqueue(t, st, u, "namaste", nil)
	r.d.Wake()
	got := terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusError || got.Attempts != 3 || !strings.HasPrefix(got.LastError, "gave up after 3 attempts") {
		t.Fatalf("status %s attempts %d lastError %q", got.Status, got.Attempts, got.LastError)
	}
	if px.count(status500) != 3 {
		t.Fatalf("%d creates, want 3", px.count(status500))
	}
	e := onlyEvent(t, st, got, responder.RoleSystem)
	if !strings.Contains(e.Content, "kept failing") {
		t.Fatalf("event %q", e.Content)
	}
}

// A row claimed by an owner that created its execution and died before
// recording it: the next owner finds it by metadata, starts no other.
func TestRecoveryFindsUnrecordedExecution(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	je := startEngine(t, nil)
	u := newUser(t, st, "Dev")
	m := enqueue(t, st, u, "kya haal hai", nil)
	ctx := context.Background()
	claimed, err := st.Claim(ctx, "crashed-owner", 300*time.Millisecond, 0)
	if err != nil || claimed == nil || claimed.ID != m.ID {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	crashedOwnerEnsuresUser(t, je, m)
	x, err := je.Client.CreateExecution(ctx, je.TaskID,
		map[string]any{"user_id": m.JulepUserID, "message": m.Content, "outbox_id": m.ID},
		map[string]any{"outbox_id": m.ID, "user_id": u.ID, "source": "astra"})
	if err != nil {
		t.Fatal(err)
	}
	// Other rows' executions around it must not confuse the search.
	for range 3 {
		other := enqueue(t, st, u, "other", nil)
		if _, err := je.Client.CreateExecution(ctx, je.TaskID,
			map[string]any{"user_id": m.JulepUserID, "message": "other", "outbox_id": other.ID},
			map[string]any{"outbox_id": other.ID}); err != nil {
			t.Fatal(err)
		}
	}
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID}))
	r.d.Wake()
	got := terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusDelivered || got.ExecutionID != x.Id || got.Attempts != 2 {
		t.Fatalf("status %s execution %s attempts %d (%s), want delivered from %s at attempt 2", got.Status, got.ExecutionID, got.Attempts, got.LastError, x.Id)
	}
	if n := len(executionsOf(t, je.Client, je.TaskID)[m.ID]); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
	onlyEvent(t, st, got, responder.RoleAssistant)
}

// A row whose execution was recorded, then its owner died: the next owner
// follows that execution.
func TestRecoveryFollowsRecordedExecution(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	je := startEngine(t, nil)
	u := newUser(t, st, "Isha")
	m := enqueue(t, st, u, "good morning", nil)
	ctx := context.Background()
	if _, err := st.Claim(ctx, "crashed-owner", 300*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	crashedOwnerEnsuresUser(t, je, m)
	x, err := je.Client.CreateExecution(ctx, je.TaskID,
		map[string]any{"user_id": m.JulepUserID, "message": m.Content, "outbox_id": m.ID}, map[string]any{"outbox_id": m.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetExecution(ctx, m.ID, "crashed-owner", x.Id); err != nil {
		t.Fatal(err)
	}
	runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID}))
	got := terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusDelivered || got.ExecutionID != x.Id {
		t.Fatalf("status %s execution %s (%s)", got.Status, got.ExecutionID, got.LastError)
	}
	if n := len(executionsOf(t, je.Client, je.TaskID)[m.ID]); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
	onlyEvent(t, st, got, responder.RoleAssistant)
}

// A server without status or delta streams (a real Julep has no deltas)
// is followed by polling.
func TestPollsWithoutStreams(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	je := startEngine(t, nil)
	px := newFaultProxy(t, je.URL, func(r *http.Request) fault {
		if strings.HasSuffix(r.URL.Path, ".stream") {
			return notFound
		}
		return passThrough
	})
	u := newUser(t, st, "Zoya")
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: newClient(t, px.URL()), TaskID: je.TaskID}))
	for i := range 3 {
		m := enqueue(t, st, u, "message "+string(rune('a'+i)), nil)
		r.d.Wake()
		got := terminal(t, st, m.ID, 20*time.Second)
		if got.Status != responder.StatusDelivered {
			t.Fatalf("status %s (%s)", got.Status, got.LastError)
		}
		onlyEvent(t, st, got, responder.RoleAssistant)
	}
	// Once known missing, the status stream is not asked for again.
	if n := px.count(notFound); n != 1 {
		t.Fatalf("%d stream requests, want 1 (then polling only)", n)
	}
}

func TestStillWorkingOnce(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ms := newModelServer(t, replyTo, summarise)
	ms.delay = 150 * time.Millisecond
	je := startEngine(t, ms.Model())
	u := newUser(t, st, "Tara")
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID, StillWorking: 50 * time.Millisecond}))
	m := enqueue(t, st, u, "slow one", nil)
	r.d.Wake()
	got := terminal(t, st, m.ID, 20*time.Second)
	evs := eventsOf(t, st, u.ID, m.ID)
	if got.Status != responder.StatusDelivered || len(evs) != 2 || evs[0].Role != responder.RoleSystem || evs[1].Role != responder.RoleAssistant {
		t.Fatalf("status %s events %+v, want one progress then one answer", got.Status, evs)
	}
}

// Shutdown releases rows it cannot finish in time; another instance picks
// them up at once and follows the same execution.
func TestShutdownReleasesRowsInFlight(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ms := newModelServer(t, replyTo, summarise)
	ms.delay = 500 * time.Millisecond
	je := startEngine(t, ms.Model())
	u := newUser(t, st, "Neel")
	a := dispatch.New(fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID, Owner: "a"}))
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	m := enqueue(t, st, u, "leaving soon", nil)
	a.Wake()
	waitFor(t, 10*time.Second, "execution recorded", func() bool {
		got, _ := st.Message(context.Background(), m.ID)
		return got.ExecutionID != ""
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown: %v, want the deadline (a row was released)", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, _ := st.Message(context.Background(), m.ID)
	if got.Status != responder.StatusPending || got.LeaseOwner != "" || got.AvailableAt.After(time.Now()) {
		t.Fatalf("after shutdown: %+v, want pending and claimable now", got)
	}
	runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID, Owner: "b"}))
	got = terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusDelivered {
		t.Fatalf("status %s", got.Status)
	}
	if n := len(executionsOf(t, je.Client, je.TaskID)[m.ID]); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
	onlyEvent(t, st, got, responder.RoleAssistant)
}

// crashedOwnerEnsuresUser does what an owner does before creating the
// execution: the Julep user exists (its docs are the task's memory).
func crashedOwnerEnsuresUser(t *testing.T, je *julepEnv, m *responder.Message) {
	t.Helper()
	if _, err := je.Client.CreateOrUpdateUser(context.Background(), m.JulepUserID, julep.UserInput{Name: "x"}); err != nil {
		t.Fatal(err)
	}
}
