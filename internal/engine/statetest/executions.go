package statetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/astra-app/astra/internal/engine"
)

func newExecution(id, task string, when int, status string) engine.Execution {
	return engine.Execution{
		ID: id, TaskID: task, TaskVersion: 1, Status: status,
		Input:     map[string]any{"message": "hi " + id},
		Metadata:  map[string]any{"outbox_id": "ob-" + id},
		CreatedAt: at(when), UpdatedAt: at(when),
	}
}

func createExecution(t *testing.T, s engine.State, e engine.Execution) engine.Execution {
	t.Helper()
	must(t, "CreateExecution "+e.ID, s.CreateExecution(t.Context(), e))
	return e
}

func getExecution(t *testing.T, s engine.State, id string) engine.Execution {
	t.Helper()
	e, err := s.GetExecution(t.Context(), id)
	must(t, "GetExecution "+id, err)
	return e
}

func sameExecution(t *testing.T, got, want engine.Execution) {
	t.Helper()
	what := "execution " + want.ID
	if got.ID != want.ID || got.TaskID != want.TaskID || got.TaskVersion != want.TaskVersion ||
		got.Status != want.Status || got.Error != want.Error || got.TransitionCount != want.TransitionCount {
		t.Errorf("%s: got id %q task %q v%d status %q error %q count %d, want %q %q v%d %q %q %d", what,
			got.ID, got.TaskID, got.TaskVersion, got.Status, got.Error, got.TransitionCount,
			want.ID, want.TaskID, want.TaskVersion, want.Status, want.Error, want.TransitionCount)
	}
	sameTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, what+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	sameMetadata(t, what, got.Metadata, want.Metadata)
	if len(got.Input) != 0 || len(want.Input) != 0 {
		sameValue(t, what+" input", got.Input, want.Input)
	}
	sameValue(t, what+" output", got.Output, want.Output)
	sameJSON(t, what+" checkpoint", got.Checkpoint, want.Checkpoint)
}

func listExecutions(t *testing.T, s engine.State, q engine.ListQuery) []string {
	t.Helper()
	es, err := s.ListExecutions(t.Context(), q)
	must(t, fmt.Sprintf("ListExecutions %+v", q), err)
	for _, e := range es {
		if e.TaskID != q.Parent {
			t.Errorf("ListExecutions of task %q returned %s of task %q", q.Parent, e.ID, e.TaskID)
		}
	}
	return ids(es, func(e engine.Execution) string { return e.ID })
}

func testExecutionCreateGet(t *testing.T, s engine.State) {
	e := newExecution("e1", "t1", 1, "queued")
	e.TaskVersion = 3
	e.Input = map[string]any{"message": "hello", "n": 3.0, "nested": map[string]any{"list": []any{"a", true, nil}}}
	e.Checkpoint = json.RawMessage(`{"workflow":"main","step":0}`)
	createExecution(t, s, e)
	sameExecution(t, getExecution(t, s, "e1"), e)

	// Nil input, metadata and output, and an empty checkpoint.
	bare := engine.Execution{ID: "e2", TaskID: "t1", TaskVersion: 1, Status: "queued", CreatedAt: at(2), UpdatedAt: at(2)}
	createExecution(t, s, bare)
	sameExecution(t, getExecution(t, s, "e2"), bare)

	_, err := s.GetExecution(t.Context(), "missing")
	wantErr(t, "GetExecution of a missing id", err, engine.ErrNotFound)
}

func testExecutionDuplicate(t *testing.T, s engine.State) {
	first := createExecution(t, s, newExecution("e1", "t1", 1, "running"))
	dup := newExecution("e1", "t2", 5, "queued")
	if err := s.CreateExecution(t.Context(), dup); err == nil {
		t.Errorf("CreateExecution of an existing id succeeded")
	}
	sameExecution(t, getExecution(t, s, "e1"), first)
}

func testExecutionList(t *testing.T, s engine.State) {
	// e00..e05 of task t1, created in order, updated in reverse order; e99 of t2.
	for i := range 6 {
		e := newExecution(name("e", i), "t1", i, "queued")
		e.UpdatedAt = at(100 - i)
		createExecution(t, s, e)
	}
	createExecution(t, s, newExecution("e99", "t2", 3, "queued"))

	q := func(sortBy string, desc bool, limit, offset int) engine.ListQuery {
		return engine.ListQuery{Parent: "t1", SortBy: sortBy, Desc: desc, Limit: limit, Offset: offset}
	}
	all := []string{"e00", "e01", "e02", "e03", "e04", "e05"}
	rev := []string{"e05", "e04", "e03", "e02", "e01", "e00"}
	for _, c := range []struct {
		name string
		q    engine.ListQuery
		want []string
	}{
		{"created_at asc", q("", false, 0, 0), all},
		{"created_at desc", q("created_at", true, 0, 0), rev},
		{"updated_at asc", q("updated_at", false, 0, 0), rev},
		{"updated_at desc limit 2 offset 1", q("updated_at", true, 2, 1), all[1:3]},
		{"limit 4 offset 4", q("", false, 4, 4), all[4:]},
		{"offset 2", q("", false, 0, 2), all[2:]},
		{"offset past the end", q("", false, 3, 6), nil},
	} {
		sameIDs(t, c.name, listExecutions(t, s, c.q), c.want)
	}
	sameIDs(t, "executions of t2", listExecutions(t, s, engine.ListQuery{Parent: "t2"}), []string{"e99"})
	sameIDs(t, "executions of t3", listExecutions(t, s, engine.ListQuery{Parent: "t3"}), nil)

	es, err := s.ListExecutions(t.Context(), engine.ListQuery{Parent: "t2"})
	must(t, "ListExecutions t2", err)
	if len(es) == 1 {
		sameExecution(t, es[0], newExecution("e99", "t2", 3, "queued"))
	}
}

func testExecutionsByStatus(t *testing.T, s engine.State) {
	statuses := []string{"running", "queued", "succeeded", "running", "failed", "awaiting_input", "queued"}
	for i, st := range statuses {
		createExecution(t, s, newExecution(name("e", i), name("t", i%2), i, st))
	}
	byStatus := func(sts ...string) []string {
		es, err := s.ExecutionsByStatus(t.Context(), sts...)
		must(t, fmt.Sprintf("ExecutionsByStatus %v", sts), err)
		for _, e := range es {
			found := false
			for _, st := range sts {
				found = found || e.Status == st
			}
			if !found {
				t.Errorf("ExecutionsByStatus %v returned %s in status %q", sts, e.ID, e.Status)
			}
		}
		return ids(es, func(e engine.Execution) string { return e.ID })
	}
	sameIDs(t, "queued or running", byStatus("queued", "running"), []string{"e00", "e01", "e03", "e06"})
	sameIDs(t, "awaiting_input", byStatus("awaiting_input"), []string{"e05"})
	sameIDs(t, "cancelled", byStatus("cancelled"), nil)
	sameIDs(t, "no statuses", byStatus(), nil)

	// Status changes move executions between the sets.
	e := getExecution(t, s, "e00")
	e.Status, e.UpdatedAt = "succeeded", at(50)
	must(t, "Advance e00", s.Advance(t.Context(), e, []string{"running"}, nil))
	sameIDs(t, "queued or running after advance", byStatus("running", "queued"), []string{"e01", "e03", "e06"})
	sameIDs(t, "succeeded after advance", byStatus("succeeded"), []string{"e00", "e02"})
}

// transitions builds n transitions continuing e's log, and the execution
// record that goes with them, as the executor does.
func transitions(e engine.Execution, n int, typ string, when int) (engine.Execution, []engine.Transition) {
	trs := make([]engine.Transition, n)
	for i := range trs {
		e.TransitionCount++
		seq := e.TransitionCount
		trs[i] = engine.Transition{
			ID: fmt.Sprintf("%s-tr%03d-%s", e.ID, seq, typ), ExecutionID: e.ID, Seq: seq, Type: typ,
			Output:    map[string]any{"seq": float64(seq), "text": fmt.Sprintf("step %d", seq)},
			Current:   engine.Cursor{Workflow: "main", Step: seq - 1, ScopeID: "scope-" + e.ID},
			Next:      &engine.Cursor{Workflow: "main", Step: seq, ScopeID: "scope-" + e.ID},
			StepLabel: fmt.Sprintf("label %d", seq),
			Metadata:  map[string]any{"attempt": 1.0},
			CreatedAt: at(when + seq),
		}
	}
	e.UpdatedAt = at(when + e.TransitionCount)
	return e, trs
}

func listTransitions(t *testing.T, s engine.State, id string, limit, offset int, desc bool) []engine.Transition {
	t.Helper()
	trs, err := s.ListTransitions(t.Context(), id, limit, offset, desc)
	must(t, fmt.Sprintf("ListTransitions %s limit %d offset %d desc %v", id, limit, offset, desc), err)
	return trs
}

func seqs(trs []engine.Transition) []string {
	return ids(trs, func(tr engine.Transition) string { return fmt.Sprint(tr.Seq) })
}

func sameTransition(t *testing.T, got, want engine.Transition) {
	t.Helper()
	what := fmt.Sprintf("transition %d of %s", want.Seq, want.ExecutionID)
	if got.ID != want.ID || got.ExecutionID != want.ExecutionID || got.Seq != want.Seq || got.Type != want.Type ||
		got.StepLabel != want.StepLabel || got.Current != want.Current {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
	switch {
	case (got.Next == nil) != (want.Next == nil):
		t.Errorf("%s next = %v, want %v", what, got.Next, want.Next)
	case got.Next != nil && *got.Next != *want.Next:
		t.Errorf("%s next = %+v, want %+v", what, *got.Next, *want.Next)
	}
	sameValue(t, what+" output", got.Output, want.Output)
	sameMetadata(t, what, got.Metadata, want.Metadata)
	sameTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
}

func testAdvance(t *testing.T, s engine.State) {
	e := createExecution(t, s, newExecution("e1", "t1", 1, "queued"))
	createExecution(t, s, newExecution("e2", "t1", 2, "queued"))

	next, trs := transitions(e, 2, "init", 10)
	next.Status = "running"
	next.Metadata = map[string]any{"outbox_id": "ob-e1", "worker": "w1"}
	next.Checkpoint = json.RawMessage(`{"step":2}`)
	must(t, "Advance queued -> running", s.Advance(t.Context(), next, []string{"queued", "starting"}, trs))
	sameExecution(t, getExecution(t, s, "e1"), next)
	got := listTransitions(t, s, "e1", 0, 0, false)
	sameIDs(t, "transitions after first advance", seqs(got), []string{"1", "2"})
	for i := range min(len(got), len(trs)) {
		sameTransition(t, got[i], trs[i])
	}

	// Advance writes everything but the identity, input and creation time:
	// the caller's values for those are ignored.
	final, more := transitions(next, 1, "finish", 20)
	more[0].Next = nil
	final.Status, final.Output, final.Error = "succeeded", map[string]any{"answer": "42"}, ""
	final.Checkpoint = nil
	ignored := final
	ignored.TaskID, ignored.TaskVersion, ignored.CreatedAt, ignored.Input = "other", 9, at(99), map[string]any{"x": "y"}
	must(t, "Advance running -> succeeded", s.Advance(t.Context(), ignored, []string{"running"}, more))
	sameExecution(t, getExecution(t, s, "e1"), final)
	got = listTransitions(t, s, "e1", 0, 0, false)
	sameIDs(t, "transitions after second advance", seqs(got), []string{"1", "2", "3"})
	if len(got) == 3 {
		sameTransition(t, got[2], more[0])
	}

	// An advance with no transitions only writes the execution.
	failed := final
	failed.Status, failed.Error, failed.UpdatedAt = "failed", "late failure", at(30)
	must(t, "Advance without transitions", s.Advance(t.Context(), failed, []string{"succeeded"}, nil))
	sameExecution(t, getExecution(t, s, "e1"), failed)
	sameIDs(t, "transitions after an advance without any", seqs(listTransitions(t, s, "e1", 0, 0, false)), []string{"1", "2", "3"})

	// Other executions are untouched.
	sameExecution(t, getExecution(t, s, "e2"), newExecution("e2", "t1", 2, "queued"))
	sameIDs(t, "transitions of e2", seqs(listTransitions(t, s, "e2", 0, 0, false)), nil)
	sameIDs(t, "transitions of a missing execution", seqs(listTransitions(t, s, "missing", 0, 0, false)), nil)
}

func testAdvanceConflict(t *testing.T, s engine.State) {
	e := createExecution(t, s, newExecution("e1", "t1", 1, "queued"))
	running, trs := transitions(e, 2, "init", 10)
	running.Status = "running"
	must(t, "Advance queued -> running", s.Advance(t.Context(), running, []string{"queued"}, trs))

	cancelled, ctrs := transitions(running, 1, "cancelled", 20)
	cancelled.Status = "cancelled"
	must(t, "Advance running -> cancelled", s.Advance(t.Context(), cancelled, []string{"running"}, ctrs))

	// A worker that still believes the execution is running must not
	// overwrite the cancellation or add to its log.
	stale, strs := transitions(running, 3, "step", 30)
	stale.Status, stale.Output, stale.Error = "succeeded", "overwritten", "should not be stored"
	stale.Checkpoint = json.RawMessage(`{"stale":true}`)
	for _, from := range [][]string{{"running"}, {"queued", "starting", "running"}, {}, nil} {
		err := s.Advance(t.Context(), stale, from, strs)
		wantErr(t, fmt.Sprintf("Advance from %v of a cancelled execution", from), err, engine.ErrConflict)
		sameExecution(t, getExecution(t, s, "e1"), cancelled)
		got := listTransitions(t, s, "e1", 0, 0, false)
		sameIDs(t, fmt.Sprintf("transitions after a refused advance from %v", from), seqs(got), []string{"1", "2", "3"})
		if len(got) == 3 {
			sameTransition(t, got[2], ctrs[0])
		}
		if desc := listTransitions(t, s, "e1", 0, 0, true); len(desc) != 3 {
			t.Errorf("transitions desc after a refused advance: %v", seqs(desc))
		}
	}

	// Advancing a missing execution is a conflict too, and writes nothing.
	ghost, gtrs := transitions(newExecution("ghost", "t1", 1, "running"), 1, "init", 1)
	err := s.Advance(t.Context(), ghost, []string{"running"}, gtrs)
	if !errors.Is(err, engine.ErrConflict) && !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Advance of a missing execution: %v, want ErrConflict or ErrNotFound", err)
	}
	sameIDs(t, "transitions of a missing execution", seqs(listTransitions(t, s, "ghost", 0, 0, false)), nil)
	_, err = s.GetExecution(t.Context(), "ghost")
	wantErr(t, "GetExecution after advancing a missing execution", err, engine.ErrNotFound)

	// The log goes on from where it really is.
	resumed, rtrs := transitions(cancelled, 1, "resume", 40)
	resumed.Status = "running"
	must(t, "Advance cancelled -> running", s.Advance(t.Context(), resumed, []string{"cancelled"}, rtrs))
	sameIDs(t, "transitions after the next advance", seqs(listTransitions(t, s, "e1", 0, 0, false)), []string{"1", "2", "3", "4"})
}

// race runs a and b at once, as close together as goroutines allow.
func race(a, b func() error) (errA, errB error) {
	errs := raceN(2, func(i int) error {
		if i == 0 {
			return a()
		}
		return b()
	})
	return errs[0], errs[1]
}

// raceN runs fn(0) ... fn(n-1) at once, as close together as goroutines
// allow, and returns their errors by index.
func raceN(n int, fn func(i int) error) []error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); <-start; errs[i] = fn(i) }()
	}
	close(start)
	wg.Wait()
	return errs
}

func testAdvanceConcurrent(t *testing.T, s engine.State) {
	// Two workers finish one running execution differently at the same time:
	// exactly one may, and the log holds only the winner's transition.
	for round := range 8 {
		id := name("e", round)
		e := createExecution(t, s, newExecution(id, "t1", round, "queued"))
		running, trs := transitions(e, 1, "init", 10)
		running.Status = "running"
		must(t, "Advance to running", s.Advance(t.Context(), running, []string{"queued"}, trs))

		done, dtrs := transitions(running, 2, "finish", 20)
		done.Status, done.Output = "succeeded", "done"
		cancelled, ctrs := transitions(running, 1, "cancelled", 30)
		cancelled.Status = "cancelled"
		errDone, errCancel := race(
			func() error { return s.Advance(t.Context(), done, []string{"running"}, dtrs) },
			func() error { return s.Advance(t.Context(), cancelled, []string{"running"}, ctrs) },
		)
		var (
			want    engine.Execution
			wantTrs []engine.Transition
		)
		switch {
		case errDone == nil && errors.Is(errCancel, engine.ErrConflict):
			want, wantTrs = done, append(trs, dtrs...)
		case errCancel == nil && errors.Is(errDone, engine.ErrConflict):
			want, wantTrs = cancelled, append(trs, ctrs...)
		default:
			t.Fatalf("round %d: finish: %v, cancel: %v; want exactly one nil and one ErrConflict", round, errDone, errCancel)
		}
		sameExecution(t, getExecution(t, s, id), want)
		got := listTransitions(t, s, id, 0, 0, false)
		if len(got) != len(wantTrs) {
			t.Fatalf("round %d: %d transitions %v, want %d", round, len(got), seqs(got), len(wantTrs))
		}
		for i := range got {
			sameTransition(t, got[i], wantTrs[i])
		}
	}
}

func testAdvanceConcurrentSameStatus(t *testing.T, s engine.State) {
	// Two workers that both read the execution at count 1 append their
	// own transition 2 and keep it running: the status check alone cannot
	// tell them apart, yet only one may write, the other learns with
	// ErrConflict that another worker moved the execution on, and its
	// transition must not replace or join the winner's.
	for round := range 8 {
		id := name("e", round)
		e := createExecution(t, s, newExecution(id, "t1", round, "queued"))
		running, trs := transitions(e, 1, "init", 10)
		running.Status = "running"
		must(t, "Advance to running", s.Advance(t.Context(), running, []string{"queued"}, trs))

		a, atrs := transitions(running, 1, "stepA", 20)
		a.Output = "a"
		b, btrs := transitions(running, 1, "stepB", 30)
		b.Output = "b"
		errA, errB := race(
			func() error { return s.Advance(t.Context(), a, []string{"running"}, atrs) },
			func() error { return s.Advance(t.Context(), b, []string{"running"}, btrs) },
		)
		var (
			want   engine.Execution
			wantTr engine.Transition
		)
		switch {
		case errA == nil && errors.Is(errB, engine.ErrConflict):
			want, wantTr = a, atrs[0]
		case errB == nil && errors.Is(errA, engine.ErrConflict):
			want, wantTr = b, btrs[0]
		default:
			t.Fatalf("round %d: worker a: %v, worker b: %v; want exactly one nil and one ErrConflict", round, errA, errB)
		}
		sameExecution(t, getExecution(t, s, id), want)
		got := listTransitions(t, s, id, 0, 0, false)
		if len(got) != 2 {
			t.Fatalf("round %d: transitions %v, want 1 and 2", round, seqs(got))
		}
		sameTransition(t, got[0], trs[0])
		sameTransition(t, got[1], wantTr)
	}
}

func testTransitionPaging(t *testing.T, s engine.State) {
	e := createExecution(t, s, newExecution("e1", "t1", 1, "queued"))
	e.Status = "running"
	// Seven transitions written by four advances of different sizes.
	for i, n := range []int{1, 3, 2, 1} {
		var trs []engine.Transition
		e, trs = transitions(e, n, fmt.Sprintf("batch%d", i), 10*i)
		must(t, fmt.Sprintf("Advance batch %d", i), s.Advance(t.Context(), e, []string{"queued", "running"}, trs))
	}
	other := createExecution(t, s, newExecution("e2", "t1", 2, "running"))
	other, otrs := transitions(other, 2, "other", 5)
	must(t, "Advance e2", s.Advance(t.Context(), other, []string{"running"}, otrs))

	for _, c := range []struct {
		limit, offset int
		desc          bool
		want          string
	}{
		{0, 0, false, "[1 2 3 4 5 6 7]"},
		{0, 0, true, "[7 6 5 4 3 2 1]"},
		{3, 0, false, "[1 2 3]"},
		{3, 3, false, "[4 5 6]"},
		{3, 6, false, "[7]"},
		{3, 7, false, "[]"},
		{3, 0, true, "[7 6 5]"},
		{3, 3, true, "[4 3 2]"},
		{3, 6, true, "[1]"},
		{0, 5, false, "[6 7]"},
		{0, 5, true, "[2 1]"},
		{100, 0, false, "[1 2 3 4 5 6 7]"},
	} {
		got := fmt.Sprint(seqs(listTransitions(t, s, "e1", c.limit, c.offset, c.desc)))
		if got != c.want {
			t.Errorf("ListTransitions limit %d offset %d desc %v = %s, want %s", c.limit, c.offset, c.desc, got, c.want)
		}
	}
	for _, tr := range listTransitions(t, s, "e1", 0, 0, false) {
		if tr.ExecutionID != "e1" {
			t.Errorf("transition %d has execution id %q", tr.Seq, tr.ExecutionID)
		}
	}
	sameIDs(t, "transitions of e2", seqs(listTransitions(t, s, "e2", 0, 0, true)), []string{"2", "1"})
}

func testCheckpoint(t *testing.T, s engine.State) {
	e := newExecution("e1", "t1", 1, "queued")
	e.Checkpoint = json.RawMessage(`{"workflow":"main","step":0,"scopes":[{"id":"s1","vars":{"x":1}}]}`)
	createExecution(t, s, e)
	sameJSON(t, "checkpoint after create", getExecution(t, s, "e1").Checkpoint, e.Checkpoint)

	for i, ck := range []string{
		`{"workflow":"main","step":3,"stack":[{"workflow":"sub","step":1}],"state":{"big":12345678901234567890,"f":0.1}}`,
		`{"step":4,"text":"line\nbreak \"quoted\" ünïcödé 😀 <tag> & \u2028"}`,
		``,
		`{"step":5}`,
	} {
		next, trs := transitions(e, 1, "step", 10*i)
		next.Status = "running"
		next.Checkpoint = json.RawMessage(ck)
		if ck == "" {
			next.Checkpoint = nil
		}
		must(t, fmt.Sprintf("Advance with checkpoint %d", i), s.Advance(t.Context(), next, []string{"queued", "running"}, trs))
		sameJSON(t, fmt.Sprintf("checkpoint %d", i), getExecution(t, s, "e1").Checkpoint, next.Checkpoint)
		e = next
	}
	// Listing returns the checkpoint too (the executor resumes from a list).
	es, err := s.ExecutionsByStatus(t.Context(), "running")
	must(t, "ExecutionsByStatus", err)
	if len(es) != 1 {
		t.Fatalf("ExecutionsByStatus running = %d executions, want 1", len(es))
	}
	sameJSON(t, "checkpoint from ExecutionsByStatus", es[0].Checkpoint, json.RawMessage(`{"step":5}`))
}

func testJSONRoundTrip(t *testing.T, s engine.State) {
	bodies := []string{
		`{}`,
		`{"name":"ünïcödé 😀","about":"line\nbreak\ttab \"q\" \\ <b>&amp;</b> \u2028\u0000"}`,
		`{"n":12345678901234567890,"f":1.5e300,"neg":-0.000001,"zero":0,"t":true,"nil":null}`,
		`{"nested":{"deep":{"deeper":[[1,[2,[3]]],{"k":"v"}]}},"empty":{},"list":[]}`,
		`{"$set":{"a.b":1},"$where":"x","key.with.dots":".","":"blank"}`,
		`{"b":2,"a":1,"c":{"z":1,"y":2}}`,
	}
	for i, b := range bodies {
		r := putResource(t, s, engine.Resource{Kind: engine.KindAgent, ID: name("a", i), CreatedAt: at(i), UpdatedAt: at(i),
			Body: json.RawMessage(b)})
		sameJSON(t, fmt.Sprintf("resource body %d", i), getResource(t, s, engine.KindAgent, r.ID).Body, r.Body)

		tk := putTask(t, s, name("t", i), "ag", i, nil, b)
		sameJSON(t, fmt.Sprintf("task body %d", i), getTask(t, s, tk.ID, 0).Body, tk.Body)
	}
	rs, err := s.ListResources(t.Context(), engine.ListQuery{Kind: engine.KindAgent})
	must(t, "ListResources", err)
	for i, r := range rs {
		if i < len(bodies) {
			sameJSON(t, fmt.Sprintf("listed resource body %d", i), r.Body, json.RawMessage(bodies[i]))
		}
	}
	ts := listTasks(t, s, engine.ListQuery{Parent: "ag"})
	for i, tk := range ts {
		if i < len(bodies) {
			sameJSON(t, fmt.Sprintf("listed task body %d", i), tk.Body, json.RawMessage(bodies[i]))
		}
	}

	// Inputs, outputs and transition outputs of every JSON shape.
	outputs := []any{nil, "text", 42.0, -1.5, true, []any{"a", 1.0, nil}, map[string]any{"k": map[string]any{"$gt": "x", "a.b": []any{}}}}
	e := createExecution(t, s, engine.Execution{ID: "e1", TaskID: "t1", TaskVersion: 1, Status: "running",
		Input:     map[string]any{"$in": []any{"x"}, "a.b": "dots", "unicode": "ünïcödé 😀", "n": 1e-7},
		CreatedAt: at(1), UpdatedAt: at(1)})
	sameExecution(t, getExecution(t, s, "e1"), e)
	for i, out := range outputs {
		next, trs := transitions(e, 1, "step", i)
		next.Output, trs[0].Output = out, out
		trs[0].Metadata = map[string]any{"$x": out}
		must(t, fmt.Sprintf("Advance with output %d", i), s.Advance(t.Context(), next, []string{"running"}, trs))
		sameExecution(t, getExecution(t, s, "e1"), next)
		e = next
	}
	got := listTransitions(t, s, "e1", 0, 0, false)
	if len(got) != len(outputs) {
		t.Fatalf("%d transitions, want %d", len(got), len(outputs))
	}
	for i, tr := range got {
		sameValue(t, fmt.Sprintf("transition %d output", i), tr.Output, outputs[i])
	}
}

func testAdvanceReadersSeeWholeAdvances(t *testing.T, s engine.State) {
	// Two workers append batches of two transitions to one execution, each
	// re-reading and retrying when the other got there first, while a reader
	// lists the log. Every listing must be whole advances (an even count
	// between the execution's count before and after it) and a prefix of the
	// final log, so it never shows half an advance, an advance whose
	// execution write is not visible, or a losing attempt's transitions.
	const batch, rounds = 2, 6
	e := newExecution("e1", "t1", 1, "running")
	createExecution(t, s, e)

	ctx := t.Context()
	var (
		wg      sync.WaitGroup
		errs    = make(chan error, 3)
		stop    = make(chan struct{})
		readerD = make(chan [][]string, 1)
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r, attempt := 0, 0; r < rounds; attempt++ {
				if attempt > 100*rounds {
					errs <- fmt.Errorf("worker %d: gave up after %d attempts", w, attempt)
					return
				}
				cur, err := s.GetExecution(ctx, "e1")
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				next, trs := transitions(cur, batch, fmt.Sprintf("w%d-a%d", w, attempt), 10*attempt)
				switch err := s.Advance(ctx, next, []string{"running"}, trs); {
				case err == nil:
					r++
				case !errors.Is(err, engine.ErrConflict):
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
			}
		}()
	}
	go func() {
		var seen [][]string
		defer func() { readerD <- seen }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			before, err := s.GetExecution(ctx, "e1")
			if err != nil {
				errs <- err
				return
			}
			trs, err := s.ListTransitions(ctx, "e1", 0, 0, false)
			if err != nil {
				errs <- err
				return
			}
			after, err := s.GetExecution(ctx, "e1")
			if err != nil {
				errs <- err
				return
			}
			n := len(trs)
			if n < before.TransitionCount || n > after.TransitionCount || n%batch != 0 {
				errs <- fmt.Errorf("listed %d transitions %v between counts %d and %d", n, seqs(trs), before.TransitionCount, after.TransitionCount)
				return
			}
			for i, tr := range trs {
				if tr.Seq != i+1 {
					errs <- fmt.Errorf("listed positions %v", seqs(trs))
					return
				}
			}
			seen = append(seen, ids(trs, func(tr engine.Transition) string { return tr.ID }))
		}
	}()
	wg.Wait()
	close(stop)
	seen := <-readerD
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	final := listTransitions(t, s, "e1", 0, 0, false)
	if len(final) != 2*rounds*batch {
		t.Fatalf("final log has %d transitions, want %d", len(final), 2*rounds*batch)
	}
	if got := getExecution(t, s, "e1").TransitionCount; got != len(final) {
		t.Errorf("final transition count %d, log %d", got, len(final))
	}
	finalIDs := ids(final, func(tr engine.Transition) string { return tr.ID })
	for _, l := range seen {
		if !slices.Equal(l, finalIDs[:len(l)]) {
			t.Fatalf("a reader saw %v, not a prefix of the final log %v", l, finalIDs)
		}
	}
	t.Logf("%d listings checked", len(seen))
}
