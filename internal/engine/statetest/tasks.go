package statetest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/astra-app/astra/internal/engine"
)

func putTask(t *testing.T, s engine.State, id, agent string, when int, meta map[string]any, body string) engine.Task {
	t.Helper()
	if body == "" {
		body = fmt.Sprintf(`{"name":%q,"main":[{"evaluate":{"at":%d}}]}`, id, when)
	}
	in := engine.Task{ID: id, AgentID: agent, CreatedAt: at(when), UpdatedAt: at(when), Metadata: meta, Body: json.RawMessage(body)}
	got, err := s.PutTask(t.Context(), in)
	must(t, "PutTask "+id, err)
	return got
}

func getTask(t *testing.T, s engine.State, id string, version int) engine.Task {
	t.Helper()
	tk, err := s.GetTask(t.Context(), id, version)
	must(t, fmt.Sprintf("GetTask %s v%d", id, version), err)
	return tk
}

func sameTask(t *testing.T, got, want engine.Task) {
	t.Helper()
	what := fmt.Sprintf("task %s v%d", want.ID, want.Version)
	if got.ID != want.ID || got.AgentID != want.AgentID || got.Version != want.Version {
		t.Errorf("%s: got id %q agent %q version %d", what, got.ID, got.AgentID, got.Version)
	}
	sameTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, what+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	sameMetadata(t, what, got.Metadata, want.Metadata)
	sameJSON(t, what+" body", got.Body, want.Body)
}

func listTasks(t *testing.T, s engine.State, q engine.ListQuery) []engine.Task {
	t.Helper()
	ts, err := s.ListTasks(t.Context(), q)
	must(t, fmt.Sprintf("ListTasks %+v", q), err)
	return ts
}

func taskIDs(ts []engine.Task) []string {
	return ids(ts, func(t engine.Task) string { return fmt.Sprintf("%s@%d", t.ID, t.Version) })
}

func testTaskVersions(t *testing.T, s engine.State) {
	v1 := putTask(t, s, "t1", "ag", 1, map[string]any{"rev": "one"}, `{"name":"first","main":[{"return":{"x":"1"}}]}`)
	if v1.Version != 1 {
		t.Fatalf("first PutTask version = %d, want 1", v1.Version)
	}
	sameTime(t, "v1 CreatedAt", v1.CreatedAt, at(1))

	v2 := putTask(t, s, "t1", "ag", 5, map[string]any{"rev": "two"}, `{"name":"second","main":[]}`)
	if v2.Version != 2 {
		t.Fatalf("second PutTask version = %d, want 2", v2.Version)
	}
	// CreatedAt is the first version's, whatever the caller passed.
	sameTime(t, "v2 CreatedAt (returned)", v2.CreatedAt, at(1))
	sameTime(t, "v2 UpdatedAt (returned)", v2.UpdatedAt, at(5))

	v3 := putTask(t, s, "t1", "ag", 9, nil, `{"name":"third"}`)
	if v3.Version != 3 {
		t.Fatalf("third PutTask version = %d, want 3", v3.Version)
	}

	sameTask(t, getTask(t, s, "t1", 0), v3)
	sameTask(t, getTask(t, s, "t1", 3), v3)
	sameTask(t, getTask(t, s, "t1", 2), v2)
	sameTask(t, getTask(t, s, "t1", 1), v1)

	// Versions are counted per task.
	other := putTask(t, s, "t2", "ag", 10, nil, "")
	if other.Version != 1 {
		t.Errorf("first version of another task = %d, want 1", other.Version)
	}

	_, err := s.GetTask(t.Context(), "t1", 4)
	wantErr(t, "GetTask of a version not yet written", err, engine.ErrNotFound)
	_, err = s.GetTask(t.Context(), "missing", 0)
	wantErr(t, "GetTask of a missing task", err, engine.ErrNotFound)
	_, err = s.GetTask(t.Context(), "missing", 1)
	wantErr(t, "GetTask of a missing task version 1", err, engine.ErrNotFound)
}

func testTaskListLatest(t *testing.T, s engine.State) {
	putTask(t, s, "t1", "agA", 1, nil, "")
	putTask(t, s, "t2", "agA", 2, nil, "")
	putTask(t, s, "t3", "agB", 3, nil, "")
	putTask(t, s, "t1", "agA", 4, nil, "")
	putTask(t, s, "t1", "agA", 5, map[string]any{"latest": "yes"}, `{"name":"t1 v3"}`)

	ts := listTasks(t, s, engine.ListQuery{Parent: "agA"})
	sameIDs(t, "tasks of agA", taskIDs(ts), []string{"t1@3", "t2@1"})
	if len(ts) == 2 {
		// The latest version, with the first version's creation time.
		sameTask(t, ts[0], engine.Task{ID: "t1", AgentID: "agA", Version: 3, CreatedAt: at(1), UpdatedAt: at(5),
			Metadata: map[string]any{"latest": "yes"}, Body: json.RawMessage(`{"name":"t1 v3"}`)})
	}
	sameIDs(t, "tasks of agB", taskIDs(listTasks(t, s, engine.ListQuery{Parent: "agB"})), []string{"t3@1"})
	sameIDs(t, "tasks of agC", taskIDs(listTasks(t, s, engine.ListQuery{Parent: "agC"})), nil)
	sameIDs(t, "all tasks", taskIDs(listTasks(t, s, engine.ListQuery{})), []string{"t1@3", "t2@1", "t3@1"})
}

func testTaskListFilterSortPage(t *testing.T, s engine.State) {
	// t0..t4 created in order; each later task updated less recently.
	for i := range 5 {
		putTask(t, s, name("t", i), "ag", i, map[string]any{"env": "old"}, "")
	}
	for i := range 5 {
		env := "prod"
		if i%2 == 1 {
			env = "dev"
		}
		putTask(t, s, name("t", i), "ag", 100-i, map[string]any{"env": env}, "")
	}
	q := func(sortBy string, desc bool, limit, offset int, filter map[string]string) engine.ListQuery {
		return engine.ListQuery{Parent: "ag", SortBy: sortBy, Desc: desc, Limit: limit, Offset: offset, MetadataFilter: filter}
	}
	for _, c := range []struct {
		name string
		q    engine.ListQuery
		want []string
	}{
		{"created_at asc", q("created_at", false, 0, 0, nil), []string{"t00@2", "t01@2", "t02@2", "t03@2", "t04@2"}},
		{"created_at desc limit 2 offset 1", q("created_at", true, 2, 1, nil), []string{"t03@2", "t02@2"}},
		{"updated_at asc", q("updated_at", false, 0, 0, nil), []string{"t04@2", "t03@2", "t02@2", "t01@2", "t00@2"}},
		{"updated_at desc limit 3", q("updated_at", true, 3, 0, nil), []string{"t00@2", "t01@2", "t02@2"}},
		// Filters see only the latest version's metadata.
		{"env=old", q("", false, 0, 0, map[string]string{"env": "old"}), nil},
		{"env=prod", q("", false, 0, 0, map[string]string{"env": "prod"}), []string{"t00@2", "t02@2", "t04@2"}},
		{"env=prod offset 1 limit 1", q("", false, 1, 1, map[string]string{"env": "prod"}), []string{"t02@2"}},
		{"env=dev desc", q("", true, 0, 0, map[string]string{"env": "dev"}), []string{"t03@2", "t01@2"}},
		{"offset past the end", q("", false, 10, 5, nil), nil},
	} {
		sameIDs(t, c.name, taskIDs(listTasks(t, s, c.q)), c.want)
	}
}
