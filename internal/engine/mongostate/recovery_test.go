package mongostate_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/mongostate"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
)

// These tests put the database in the states an interrupted process leaves
// behind, which the shared suite cannot reach through engine.State.

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

func TestNewTwiceKeepsData(t *testing.T) {
	t.Parallel()
	client := connect(t, ferrettest.Start(t))
	db := client.Database("t" + responder.NewID())
	s1, err := mongostate.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.PutResource(t.Context(), engine.Resource{Kind: engine.KindUser, ID: "u1", CreatedAt: t0, UpdatedAt: t0,
		Body: json.RawMessage(`{"id":"u1"}`)}); err != nil {
		t.Fatal(err)
	}
	// A restart: the indexes exist already.
	s2, err := mongostate.New(t.Context(), db)
	if err != nil {
		t.Fatalf("second New: %v", err)
	}
	if _, err := s2.GetResource(t.Context(), engine.KindUser, "u1"); err != nil {
		t.Errorf("GetResource after a second New: %v", err)
	}
}

func TestLeftoverTransitionsStayHiddenAndGo(t *testing.T) {
	t.Parallel()
	client := connect(t, ferrettest.Start(t))
	s := newStateOn(t, client, "t"+responder.NewID())
	ctx := t.Context()
	if err := s.state.CreateExecution(ctx, engine.Execution{ID: "e1", TaskID: "t1", TaskVersion: 1, Status: "running",
		CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	// An Advance that lost at position 1 and died before deleting its entry.
	leftover := bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "id", Value: "ghost"}, {Key: "execution_id", Value: "e1"},
		{Key: "seq", Value: 1}, {Key: "type", Value: "ghost"}, {Key: "created_at", Value: t0.UnixNano()},
		{Key: "body", Value: `{"output":null,"current":{"workflow":"","step":0,"scope_id":""},"next":null}`},
		{Key: "token", Value: "dead"}, {Key: "committed", Value: false}}
	if _, err := s.db.Collection("engine_transitions").InsertOne(ctx, leftover); err != nil {
		t.Fatal(err)
	}
	if trs, err := s.state.ListTransitions(ctx, "e1", 0, 0, false); err != nil || len(trs) != 0 {
		t.Fatalf("ListTransitions with a leftover = %v, %v; want none", trs, err)
	}

	// Two advances: the first takes position 1, the second commits the first.
	for i := 1; i <= 2; i++ {
		e := engine.Execution{ID: "e1", Status: "running", TransitionCount: i, UpdatedAt: t0.Add(time.Duration(i))}
		tr := engine.Transition{ID: responder.NewID(), ExecutionID: "e1", Seq: i, Type: "step", CreatedAt: t0}
		if err := s.state.Advance(ctx, e, []string{"running"}, []engine.Transition{tr}); err != nil {
			t.Fatalf("Advance %d: %v", i, err)
		}
		trs, err := s.state.ListTransitions(ctx, "e1", 0, 0, false)
		if err != nil || len(trs) != i {
			t.Fatalf("ListTransitions after Advance %d = %d entries, %v", i, len(trs), err)
		}
		for _, tr := range trs {
			if tr.Type != "step" {
				t.Errorf("ListTransitions shows the leftover %+v", tr)
			}
		}
	}
	n, err := s.db.Collection("engine_transitions").CountDocuments(ctx, bson.D{{Key: "token", Value: "dead"}})
	if err != nil || n != 0 {
		t.Errorf("leftover entries after advancing past them: %d, %v; want 0", n, err)
	}
	n, err = s.db.Collection("engine_transitions").CountDocuments(ctx, bson.D{{Key: "committed", Value: false}})
	if err != nil || n != 0 {
		t.Errorf("uncommitted entries after two advances: %d, %v; want 0", n, err)
	}
}

func TestInterruptedPutTaskListsOnce(t *testing.T) {
	t.Parallel()
	client := connect(t, ferrettest.Start(t))
	s := newStateOn(t, client, "t"+responder.NewID())
	ctx := t.Context()
	for i := range 2 {
		if _, err := s.state.PutTask(ctx, engine.Task{ID: "t1", AgentID: "ag", CreatedAt: t0, UpdatedAt: t0.Add(time.Duration(i)),
			Body: json.RawMessage(fmt.Sprintf(`{"name":"t1","rev":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	// A PutTask that stopped between inserting version 2 and unmarking
	// version 1 leaves both marked latest.
	if _, err := s.db.Collection("engine_tasks").UpdateMany(ctx, bson.D{{Key: "id", Value: "t1"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "latest", Value: true}}}}); err != nil {
		t.Fatal(err)
	}
	ts, err := s.state.ListTasks(ctx, engine.ListQuery{Parent: "ag"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Version != 2 {
		t.Fatalf("ListTasks = %+v, want only version 2", ts)
	}
	// The next version tidies up.
	if _, err := s.state.PutTask(ctx, engine.Task{ID: "t1", AgentID: "ag", CreatedAt: t0, UpdatedAt: t0,
		Body: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	n, err := s.db.Collection("engine_tasks").CountDocuments(ctx, bson.D{{Key: "latest", Value: true}})
	if err != nil || n != 1 {
		t.Errorf("versions marked latest after the next PutTask: %d, %v; want 1", n, err)
	}
}

// BenchmarkAdvance measures one Advance appending one transition, the
// executor's per-step write, on an embedded FerretDB.
func BenchmarkAdvance(b *testing.B) {
	client := connect(b, ferrettest.Start(b))
	s, err := mongostate.New(b.Context(), client.Database("bench"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	if err := s.CreateExecution(ctx, engine.Execution{ID: "e1", TaskID: "t1", Status: "running", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		n++
		e := engine.Execution{ID: "e1", Status: "running", TransitionCount: n, UpdatedAt: t0,
			Checkpoint: json.RawMessage(`{"step":1}`)}
		tr := engine.Transition{ID: responder.NewID(), ExecutionID: "e1", Seq: n, Type: "step", Output: "ok", CreatedAt: t0}
		if err := s.Advance(ctx, e, []string{"running"}, []engine.Transition{tr}); err != nil {
			b.Fatal(err)
		}
	}
}
