package statetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
)

// Lease cases: several engines (owners) share one state; an execution is
// run only by the holder of its lease, and every write of a run presents
// its claim's token.

func claim(t *testing.T, s engine.State, id, owner, token string, until, now time.Time) engine.Execution {
	t.Helper()
	x, err := s.ClaimExecution(t.Context(), id, owner, token, until, now)
	must(t, fmt.Sprintf("ClaimExecution %s by %s", id, owner), err)
	if x.ID != id || x.LeaseOwner != owner || x.LeaseToken != token {
		t.Fatalf("claim of %s returned id %q owner %q token %q", id, x.ID, x.LeaseOwner, x.LeaseToken)
	}
	sameTime(t, "claimed LeaseUntil", x.LeaseUntil, until)
	return x
}

// testLeaseCreateRoundTrip: an execution created already claimed keeps its
// lease, and cannot be claimed by another owner before it runs out.
func testLeaseCreateRoundTrip(t *testing.T, s engine.State) {
	e := newExecution("e1", "t1", 1, engine.StatusQueued)
	e.LeaseOwner, e.LeaseToken, e.LeaseUntil = "a", "tok-a", at(10)
	createExecution(t, s, e)
	got := getExecution(t, s, "e1")
	if got.LeaseOwner != "a" || got.LeaseToken != "tok-a" {
		t.Errorf("lease read back as owner %q token %q", got.LeaseOwner, got.LeaseToken)
	}
	sameTime(t, "LeaseUntil", got.LeaseUntil, at(10))
	_, err := s.ClaimExecution(t.Context(), "e1", "b", "tok-b", at(20), at(5))
	wantErr(t, "claim of a held execution", err, engine.ErrConflict)
	claim(t, s, "e1", "b", "tok-b", at(20), at(10))

	bare := createExecution(t, s, newExecution("e2", "t1", 2, engine.StatusQueued))
	if got := getExecution(t, s, bare.ID); got.LeaseOwner != "" || got.LeaseToken != "" || !got.LeaseUntil.IsZero() {
		t.Errorf("an unclaimed execution reads back with lease %q %q %v", got.LeaseOwner, got.LeaseToken, got.LeaseUntil)
	}
}

// testLeaseClaimRace: many owners claim one execution at once; exactly one
// wins.
func testLeaseClaimRace(t *testing.T, s engine.State) {
	createExecution(t, s, newExecution("e1", "t1", 1, engine.StatusQueued))
	const n = 16
	errs := raceN(n, func(i int) error {
		_, err := s.ClaimExecution(t.Context(), "e1", name("owner", i), name("tok", i), at(10), at(1))
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("owners %d and %d both claimed e1", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, engine.ErrConflict):
			t.Errorf("claim by owner %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no owner claimed e1")
	}
	if got := getExecution(t, s, "e1"); got.LeaseToken != name("tok", winner) {
		t.Errorf("stored token %q, want the winner's %q", got.LeaseToken, name("tok", winner))
	}
}

// testLeaseClaimManyRace: owners sweeping at once claim each claimable
// execution exactly once, and never one that is held, paused or finished.
func testLeaseClaimManyRace(t *testing.T, s engine.State) {
	const n = 12
	for i := range n {
		createExecution(t, s, newExecution(name("e", i), "t1", i, engine.StatusQueued))
	}
	held := newExecution("held", "t1", 50, engine.StatusRunning)
	held.LeaseOwner, held.LeaseToken, held.LeaseUntil = "x", "tok-x", at(100)
	createExecution(t, s, held)
	createExecution(t, s, newExecution("paused", "t1", 51, engine.StatusAwaitingInput))
	createExecution(t, s, newExecution("done", "t1", 52, engine.StatusSucceeded))

	const owners = 4
	got := make([][]engine.Execution, owners)
	errs := raceN(owners, func(o int) error {
		for {
			xs, err := s.ClaimExecutions(t.Context(), name("owner", o), at(60), at(70), 3)
			if err != nil || len(xs) == 0 {
				return err
			}
			got[o] = append(got[o], xs...)
		}
	})
	seen := map[string]string{}
	tokens := map[string]bool{}
	for o := range owners {
		must(t, fmt.Sprintf("ClaimExecutions by owner %d", o), errs[o])
		for _, x := range got[o] {
			if prev, ok := seen[x.ID]; ok {
				t.Errorf("%s claimed by %s and by owner%02d", x.ID, prev, o)
			}
			seen[x.ID] = name("owner", o)
			if x.LeaseOwner != name("owner", o) || x.LeaseToken == "" || tokens[x.LeaseToken] {
				t.Errorf("%s claimed with owner %q token %q (want owner%02d and a token of its own)", x.ID, x.LeaseOwner, x.LeaseToken, o)
			}
			tokens[x.LeaseToken] = true
			sameTime(t, x.ID+" LeaseUntil", x.LeaseUntil, at(70))
		}
	}
	if len(seen) != n {
		t.Errorf("%d executions claimed, want %d: %v", len(seen), n, seen)
	}
	for _, id := range []string{"held", "paused", "done"} {
		if _, ok := seen[id]; ok {
			t.Errorf("%s was claimed", id)
		}
	}
	if xs, err := s.ClaimExecutions(t.Context(), "late", at(60), at(70), 0); err != nil || len(xs) != 0 {
		t.Errorf("ClaimExecutions with limit 0 = %d executions, %v", len(xs), err)
	}
}

// testLeaseExpiryHandOff: once a lease runs out another owner claims the
// execution; the first owner's writes with its old token are refused and
// change nothing.
func testLeaseExpiryHandOff(t *testing.T, s engine.State) {
	createExecution(t, s, newExecution("e1", "t1", 1, engine.StatusQueued))
	a := claim(t, s, "e1", "a", "tok-a", at(10), at(1))
	_, err := s.ClaimExecution(t.Context(), "e1", "b", "tok-b", at(15), at(5))
	wantErr(t, "claim before the lease ran out", err, engine.ErrConflict)
	must(t, "ExtendLease by the holder", s.ExtendLease(t.Context(), "e1", "tok-a", at(12)))
	_, err = s.ClaimExecution(t.Context(), "e1", "b", "tok-b", at(15), at(11))
	wantErr(t, "claim before the extended lease ran out", err, engine.ErrConflict)

	// A advances once while it holds the lease.
	a.Status = engine.StatusStarting
	a1, trs := transitions(a, 1, "init", 2)
	must(t, "Advance by the holder", s.Advance(t.Context(), a1, []string{engine.StatusQueued}, trs))

	b := claim(t, s, "e1", "b", "tok-b", at(30), at(12))
	if b.TransitionCount != 1 || b.Status != engine.StatusStarting {
		t.Errorf("claimed execution has count %d status %q, want 1 starting", b.TransitionCount, b.Status)
	}

	// A, fenced out, tries to advance from what it last wrote.
	stale := a1
	stale.Status = engine.StatusRunning
	stale, trs = transitions(stale, 1, "step", 3)
	wantErr(t, "Advance with the old token", s.Advance(t.Context(), stale, []string{engine.StatusStarting}, trs), engine.ErrConflict)
	wantErr(t, "ExtendLease with the old token", s.ExtendLease(t.Context(), "e1", "tok-a", at(40)), engine.ErrConflict)
	wantErr(t, "ReleaseLease with the old token", s.ReleaseLease(t.Context(), "e1", "tok-a"), engine.ErrConflict)
	got := getExecution(t, s, "e1")
	if got.TransitionCount != 1 || got.Status != engine.StatusStarting || got.LeaseToken != "tok-b" {
		t.Errorf("after the stale writes: count %d status %q token %q, want 1 starting tok-b", got.TransitionCount, got.Status, got.LeaseToken)
	}
	sameTime(t, "LeaseUntil after the stale writes", got.LeaseUntil, at(30))
	sameIDs(t, "transitions after the stale writes", seqs(listTransitions(t, s, "e1", 0, 0, false)), []string{"1"})

	// B's advance under its own token goes through and keeps its lease.
	b.Status = engine.StatusRunning
	b2, trs := transitions(b, 1, "step", 4)
	must(t, "Advance by the new holder", s.Advance(t.Context(), b2, []string{engine.StatusStarting}, trs))
	got = getExecution(t, s, "e1")
	if got.TransitionCount != 2 || got.LeaseToken != "tok-b" || got.LeaseOwner != "b" {
		t.Errorf("after B's advance: count %d owner %q token %q", got.TransitionCount, got.LeaseOwner, got.LeaseToken)
	}
}

// testLeaseRelease: a released execution is claimable at once.
func testLeaseRelease(t *testing.T, s engine.State) {
	createExecution(t, s, newExecution("e1", "t1", 1, engine.StatusRunning))
	claim(t, s, "e1", "a", "tok-a", at(100), at(1))
	wantErr(t, "ReleaseLease with another token", s.ReleaseLease(t.Context(), "e1", "tok-z"), engine.ErrConflict)
	wantErr(t, "ReleaseLease with no token", s.ReleaseLease(t.Context(), "e1", ""), engine.ErrConflict)
	must(t, "ReleaseLease", s.ReleaseLease(t.Context(), "e1", "tok-a"))
	claim(t, s, "e1", "b", "tok-b", at(100), at(2))
	wantErr(t, "ExtendLease of a missing execution", s.ExtendLease(t.Context(), "missing", "tok-b", at(3)), engine.ErrConflict)
	_, err := s.ClaimExecution(t.Context(), "missing", "b", "tok-c", at(100), at(2))
	wantErr(t, "claim of a missing execution", err, engine.ErrConflict)
}

// testLeaseUnfencedAdvanceClears: the API's writes (no token) keep their
// status and count guards, fence the holder out and clear the lease, so a
// resumed execution is claimable at once.
func testLeaseUnfencedAdvanceClears(t *testing.T, s engine.State) {
	createExecution(t, s, newExecution("e1", "t1", 1, engine.StatusRunning))
	a := claim(t, s, "e1", "a", "tok-a", at(100), at(1))
	paused := a
	paused.Status = engine.StatusAwaitingInput
	paused, trs := transitions(paused, 1, "wait", 2)
	must(t, "pause under the lease", s.Advance(t.Context(), paused, []string{engine.StatusRunning}, trs))

	resumed := getExecution(t, s, "e1")
	resumed.Status = engine.StatusRunning
	resumed.LeaseOwner, resumed.LeaseToken, resumed.LeaseUntil = "", "", time.Time{}
	resumed, trs = transitions(resumed, 1, "resume", 3)
	must(t, "resume without a lease", s.Advance(t.Context(), resumed, []string{engine.StatusAwaitingInput}, trs))
	if got := getExecution(t, s, "e1"); got.LeaseToken != "" || got.LeaseOwner != "" || !got.LeaseUntil.IsZero() {
		t.Errorf("after the resume the lease is %q %q %v, want none", got.LeaseOwner, got.LeaseToken, got.LeaseUntil)
	}
	b := claim(t, s, "e1", "b", "tok-b", at(100), at(4))

	// The API cancels while B holds it: B's next write is refused.
	cancelled := b
	cancelled.Status = engine.StatusCancelled
	cancelled.LeaseOwner, cancelled.LeaseToken, cancelled.LeaseUntil = "", "", time.Time{}
	cancelled, trs = transitions(cancelled, 1, "cancelled", 5)
	must(t, "cancel without a lease", s.Advance(t.Context(), cancelled, []string{engine.StatusRunning}, trs))
	b.Status = engine.StatusSucceeded
	b, trs = transitions(b, 1, "finish", 6)
	wantErr(t, "Advance by the holder after a cancel", s.Advance(t.Context(), b, []string{engine.StatusRunning}, trs), engine.ErrConflict)
	wantErr(t, "ExtendLease after a cancel", s.ExtendLease(t.Context(), "e1", "tok-b", at(200)), engine.ErrConflict)
	if got := getExecution(t, s, "e1"); got.Status != engine.StatusCancelled {
		t.Errorf("status %q, want cancelled", got.Status)
	}
}

// testLeaseFencedDocWrites: a run's doc writes go through while it holds
// the lease and are refused, writing nothing, once it was fenced out.
func testLeaseFencedDocWrites(t *testing.T, s engine.State) {
	createExecution(t, s, newExecution("e1", "t1", 1, engine.StatusRunning))
	claim(t, s, "e1", "a", "tok-a", at(10), at(1))
	fa := engine.Fence{ExecutionID: "e1", Token: "tok-a"}
	doc := func(id, title string) engine.Resource {
		return engine.Resource{Kind: engine.KindDoc, ID: id, Parent: "u1", CreatedAt: at(2), UpdatedAt: at(2),
			Body: json.RawMessage(fmt.Sprintf(`{"id":%q,"title":%q}`, id, title))}
	}
	must(t, "PutResourceFenced by the holder", s.PutResourceFenced(t.Context(), doc("d1", "by a"), fa))
	must(t, "PutResourceFenced d2 by the holder", s.PutResourceFenced(t.Context(), doc("d2", "by a"), fa))
	must(t, "DeleteResourceFenced d2 by the holder", s.DeleteResourceFenced(t.Context(), engine.KindDoc, "d2", fa))
	wantErr(t, "DeleteResourceFenced of a missing doc", s.DeleteResourceFenced(t.Context(), engine.KindDoc, "d2", fa), engine.ErrNotFound)

	claim(t, s, "e1", "b", "tok-b", at(30), at(11))
	wantErr(t, "PutResourceFenced with the old token", s.PutResourceFenced(t.Context(), doc("d3", "by a, late"), fa), engine.ErrConflict)
	wantErr(t, "PutResourceFenced over d1 with the old token", s.PutResourceFenced(t.Context(), doc("d1", "by a, late"), fa), engine.ErrConflict)
	wantErr(t, "DeleteResourceFenced with the old token", s.DeleteResourceFenced(t.Context(), engine.KindDoc, "d1", fa), engine.ErrConflict)
	wantErr(t, "PutResourceFenced with no token", s.PutResourceFenced(t.Context(), doc("d4", "nobody"), engine.Fence{ExecutionID: "e1"}), engine.ErrConflict)
	_, err := s.GetResource(t.Context(), engine.KindDoc, "d3")
	wantErr(t, "the refused doc", err, engine.ErrNotFound)
	sameJSON(t, "d1 body after the refused writes", getResource(t, s, engine.KindDoc, "d1").Body, doc("d1", "by a").Body)
	must(t, "PutResourceFenced by the new holder", s.PutResourceFenced(t.Context(), doc("d3", "by b"),
		engine.Fence{ExecutionID: "e1", Token: "tok-b"}))
}

// testTaskConcurrentSameBody: callers putting one definition at once (N
// instances deploying tasks/) end with one version and no error.
func testTaskConcurrentSameBody(t *testing.T, s engine.State) {
	const n = 12
	got := make([]engine.Task, n)
	body := json.RawMessage(`{"name":"same","main":[{"return":{"x":"1"}}]}`)
	errs := raceN(n, func(i int) (err error) {
		got[i], err = s.PutTask(t.Context(), engine.Task{ID: "t1", AgentID: "ag", CreatedAt: at(i), UpdatedAt: at(i),
			Metadata: map[string]any{"rev": "one"}, Body: body})
		return err
	})
	for i := range n {
		must(t, fmt.Sprintf("PutTask %d", i), errs[i])
		if got[i].Version != 1 {
			t.Errorf("PutTask %d returned version %d, want 1", i, got[i].Version)
		}
	}
	if latest := getTask(t, s, "t1", 0); latest.Version != 1 {
		t.Errorf("latest version %d, want 1", latest.Version)
	}

	// Only a change makes a version; going back is a change too.
	v2 := putTask(t, s, "t1", "ag", 50, map[string]any{"rev": "two"}, string(body))
	v3 := putTask(t, s, "t1", "ag", 51, map[string]any{"rev": "one"}, string(body))
	v3again := putTask(t, s, "t1", "ag", 52, map[string]any{"rev": "one"}, string(body))
	v4 := putTask(t, s, "t1", "other", 53, map[string]any{"rev": "one"}, string(body))
	if v2.Version != 2 || v3.Version != 3 || v3again.Version != 3 || v4.Version != 4 {
		t.Errorf("versions %d %d %d %d, want 2 3 3 4", v2.Version, v3.Version, v3again.Version, v4.Version)
	}
	sameTime(t, "unchanged put UpdatedAt", v3again.UpdatedAt, at(51))
}

// testResourceConcurrentPut: puts of one new id at once all succeed.
func testResourceConcurrentPut(t *testing.T, s engine.State) {
	errs := raceN(12, func(i int) error {
		return s.PutResource(t.Context(), engine.Resource{Kind: engine.KindAgent, ID: "a1", CreatedAt: at(i), UpdatedAt: at(i),
			Body: json.RawMessage(fmt.Sprintf(`{"id":"a1","n":%d}`, i))})
	})
	for i, err := range errs {
		must(t, fmt.Sprintf("PutResource %d", i), err)
	}
	getResource(t, s, engine.KindAgent, "a1")
}

// testLeaseCrashCount: a claim that takes over a lease that ran out while
// the execution was starting or running counts a crash; one after a
// release, or of a queued execution, does not; Advance writes the count
// as given (the executor resets it when a step commits).
func testLeaseCrashCount(t *testing.T, s engine.State) {
	createExecution(t, s, newExecution("e1", "t1", 1, engine.StatusRunning))
	crashes := func(what string, x engine.Execution, want int) {
		t.Helper()
		if x.Crashes != want {
			t.Errorf("%s: claim returned Crashes %d, want %d", what, x.Crashes, want)
		}
		if got := getExecution(t, s, x.ID); got.Crashes != want {
			t.Errorf("%s: Crashes read back as %d, want %d", what, got.Crashes, want)
		}
	}
	crashes("first claim", claim(t, s, "e1", "a", "tok-a", at(10), at(1)), 0)
	crashes("claim after a's lease ran out", claim(t, s, "e1", "b", "tok-b", at(20), at(10)), 1)
	c := claim(t, s, "e1", "c", "tok-c", at(30), at(20))
	crashes("claim after b's lease ran out", c, 2)

	// A step commits: the run resets the count.
	c.Crashes = 0
	c1, trs := transitions(c, 1, "step", 21)
	must(t, "Advance resetting Crashes", s.Advance(t.Context(), c1, []string{engine.StatusRunning}, trs))
	if got := getExecution(t, s, "e1"); got.Crashes != 0 {
		t.Errorf("after the advance: Crashes %d, want 0", got.Crashes)
	}
	must(t, "ReleaseLease", s.ReleaseLease(t.Context(), "e1", "tok-c"))
	crashes("claim after a release", claim(t, s, "e1", "d", "tok-d", at(40), at(22)), 0)

	// Many claims count one each.
	createExecution(t, s, newExecution("e2", "t1", 2, engine.StatusStarting))
	claim(t, s, "e2", "a", "tok-a2", at(10), at(1))
	xs, err := s.ClaimExecutions(t.Context(), "b", at(50), at(60), 10)
	must(t, "ClaimExecutions", err)
	for _, x := range xs {
		want := map[string]int{"e1": 1, "e2": 1}[x.ID]
		crashes("ClaimExecutions of "+x.ID, x, want)
	}
	if len(xs) != 2 {
		t.Errorf("ClaimExecutions claimed %d, want 2", len(xs))
	}

	// A queued execution never started work: no crash.
	q := newExecution("e3", "t1", 3, engine.StatusQueued)
	q.LeaseOwner, q.LeaseToken, q.LeaseUntil = "a", "tok-a3", at(10)
	createExecution(t, s, q)
	crashes("claim of a queued execution", claim(t, s, "e3", "b", "tok-b3", at(100), at(70)), 0)
}

// testLeaseTokenRead: LeaseToken reads the current claim's token, "" once
// an unfenced Advance (a cancel) cleared it, ErrNotFound for no execution.
func testLeaseTokenRead(t *testing.T, s engine.State) {
	createExecution(t, s, newExecution("e1", "t1", 1, engine.StatusRunning))
	read := func(what, want string) {
		t.Helper()
		got, err := s.LeaseToken(t.Context(), "e1")
		must(t, "LeaseToken "+what, err)
		if got != want {
			t.Errorf("LeaseToken %s: %q, want %q", what, got, want)
		}
	}
	read("before any claim", "")
	x := claim(t, s, "e1", "a", "tok-a", at(10), at(1))
	read("after a's claim", "tok-a")
	claim(t, s, "e1", "b", "tok-b", at(20), at(10))
	read("after b took over", "tok-b")
	cancelled := x
	cancelled.Status, cancelled.LeaseToken = engine.StatusCancelled, ""
	cancelled, trs := transitions(cancelled, 1, "cancelled", 11)
	must(t, "unfenced Advance", s.Advance(t.Context(), cancelled, []string{engine.StatusRunning}, trs))
	read("after the cancel", "")
	_, err := s.LeaseToken(t.Context(), "nope")
	wantErr(t, "LeaseToken of no execution", err, engine.ErrNotFound)
}
