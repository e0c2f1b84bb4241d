package statetest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/astra-app/astra/internal/engine"
)

func putResource(t *testing.T, s engine.State, r engine.Resource) engine.Resource {
	t.Helper()
	if r.Body == nil {
		r.Body = json.RawMessage(fmt.Sprintf(`{"id":%q}`, r.ID))
	}
	must(t, "PutResource "+r.Kind+" "+r.ID, s.PutResource(t.Context(), r))
	return r
}

func getResource(t *testing.T, s engine.State, kind, id string) engine.Resource {
	t.Helper()
	r, err := s.GetResource(t.Context(), kind, id)
	must(t, "GetResource "+kind+" "+id, err)
	return r
}

func listResources(t *testing.T, s engine.State, q engine.ListQuery) []string {
	t.Helper()
	rs, err := s.ListResources(t.Context(), q)
	must(t, fmt.Sprintf("ListResources %+v", q), err)
	for _, r := range rs {
		if r.Kind != q.Kind {
			t.Errorf("ListResources %+v returned %s %s", q, r.Kind, r.ID)
		}
	}
	return ids(rs, func(r engine.Resource) string { return r.ID })
}

func sameResource(t *testing.T, got, want engine.Resource) {
	t.Helper()
	what := want.Kind + " " + want.ID
	if got.Kind != want.Kind || got.ID != want.ID || got.Parent != want.Parent {
		t.Errorf("%s: got kind %q id %q parent %q, want %q %q %q", what, got.Kind, got.ID, got.Parent,
			want.Kind, want.ID, want.Parent)
	}
	sameTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, what+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	sameMetadata(t, what, got.Metadata, want.Metadata)
	sameJSON(t, what+" body", got.Body, want.Body)
}

func testResourcePutGet(t *testing.T, s engine.State) {
	first := putResource(t, s, engine.Resource{
		Kind: engine.KindDoc, ID: "d1", Parent: "u1", CreatedAt: at(1), UpdatedAt: at(1),
		Metadata: map[string]any{"source": "chat", "n": 1.0},
		Body:     json.RawMessage(`{"id":"d1","title":"first","content":["a","b"]}`),
	})
	sameResource(t, getResource(t, s, engine.KindDoc, "d1"), first)

	// A second put replaces everything but the creation time.
	second := engine.Resource{
		Kind: engine.KindDoc, ID: "d1", Parent: "u2", CreatedAt: at(5), UpdatedAt: at(6),
		Metadata: map[string]any{"source": "upload"},
		Body:     json.RawMessage(`{"id":"d1","title":"second"}`),
	}
	putResource(t, s, second)
	want := second
	want.CreatedAt = first.CreatedAt
	sameResource(t, getResource(t, s, engine.KindDoc, "d1"), want)

	// The same id under another kind is another record.
	agent := putResource(t, s, engine.Resource{Kind: engine.KindAgent, ID: "d1", CreatedAt: at(2), UpdatedAt: at(3)})
	sameResource(t, getResource(t, s, engine.KindAgent, "d1"), agent)
	sameResource(t, getResource(t, s, engine.KindDoc, "d1"), want)

	// Nil metadata reads back empty.
	plain := putResource(t, s, engine.Resource{Kind: engine.KindUser, ID: "u1", CreatedAt: at(4), UpdatedAt: at(4)})
	sameResource(t, getResource(t, s, engine.KindUser, "u1"), plain)
}

func testResourceNotFound(t *testing.T, s engine.State) {
	ctx := t.Context()
	_, err := s.GetResource(ctx, engine.KindUser, "missing")
	wantErr(t, "GetResource of a missing user", err, engine.ErrNotFound)
	wantErr(t, "DeleteResource of a missing user", s.DeleteResource(ctx, engine.KindUser, "missing"), engine.ErrNotFound)

	putResource(t, s, engine.Resource{Kind: engine.KindUser, ID: "u1", CreatedAt: at(1), UpdatedAt: at(1)})
	_, err = s.GetResource(ctx, engine.KindAgent, "u1")
	wantErr(t, "GetResource of a user id as an agent", err, engine.ErrNotFound)
	wantErr(t, "DeleteResource of a user id as an agent", s.DeleteResource(ctx, engine.KindAgent, "u1"), engine.ErrNotFound)
	getResource(t, s, engine.KindUser, "u1")

	for _, id := range []string{"", "'; DROP TABLE engine_resources; --", `{"$gt": ""}`, "a.b", "$where"} {
		_, err = s.GetResource(ctx, engine.KindUser, id)
		wantErr(t, fmt.Sprintf("GetResource(%q)", id), err, engine.ErrNotFound)
	}
	if got := listResources(t, s, engine.ListQuery{Kind: engine.KindSecret}); len(got) != 0 {
		t.Errorf("ListResources of an empty kind = %v, want none", got)
	}
}

func testResourceDelete(t *testing.T, s engine.State) {
	ctx := t.Context()
	for i := range 3 {
		putResource(t, s, engine.Resource{Kind: engine.KindAgent, ID: name("a", i), CreatedAt: at(i), UpdatedAt: at(i)})
	}
	putResource(t, s, engine.Resource{Kind: engine.KindUser, ID: "a01", CreatedAt: at(9), UpdatedAt: at(9)})

	must(t, "DeleteResource agent a01", s.DeleteResource(ctx, engine.KindAgent, "a01"))
	_, err := s.GetResource(ctx, engine.KindAgent, "a01")
	wantErr(t, "GetResource after delete", err, engine.ErrNotFound)
	wantErr(t, "second DeleteResource", s.DeleteResource(ctx, engine.KindAgent, "a01"), engine.ErrNotFound)
	sameIDs(t, "agents after delete", listResources(t, s, engine.ListQuery{Kind: engine.KindAgent}), []string{"a00", "a02"})
	// Only that kind's record went.
	getResource(t, s, engine.KindUser, "a01")

	// A deleted id can be created again, as new.
	again := putResource(t, s, engine.Resource{Kind: engine.KindAgent, ID: "a01", CreatedAt: at(20), UpdatedAt: at(20)})
	sameResource(t, getResource(t, s, engine.KindAgent, "a01"), again)
}

func testResourceListParent(t *testing.T, s engine.State) {
	// Docs of two users, interleaved in time, plus users and an agent.
	for i := range 6 {
		parent := "u1"
		if i%2 == 1 {
			parent = "u2"
		}
		putResource(t, s, engine.Resource{Kind: engine.KindDoc, ID: name("d", i), Parent: parent, CreatedAt: at(i), UpdatedAt: at(i)})
	}
	putResource(t, s, engine.Resource{Kind: engine.KindUser, ID: "u1", CreatedAt: at(10), UpdatedAt: at(10)})
	putResource(t, s, engine.Resource{Kind: engine.KindUser, ID: "u2", CreatedAt: at(11), UpdatedAt: at(11)})
	putResource(t, s, engine.Resource{Kind: engine.KindAgent, ID: "ag", Parent: "u1", CreatedAt: at(12), UpdatedAt: at(12)})

	sameIDs(t, "docs of u1", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc, Parent: "u1"}), []string{"d00", "d02", "d04"})
	sameIDs(t, "docs of u2", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc, Parent: "u2"}), []string{"d01", "d03", "d05"})
	sameIDs(t, "docs of u3", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc, Parent: "u3"}), nil)
	sameIDs(t, "all docs", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc}),
		[]string{"d00", "d01", "d02", "d03", "d04", "d05"})
	sameIDs(t, "users", listResources(t, s, engine.ListQuery{Kind: engine.KindUser}), []string{"u1", "u2"})
	sameIDs(t, "agents of u1", listResources(t, s, engine.ListQuery{Kind: engine.KindAgent, Parent: "u1"}), []string{"ag"})

	// Moving a doc to another parent moves it between lists.
	putResource(t, s, engine.Resource{Kind: engine.KindDoc, ID: "d00", Parent: "u2", CreatedAt: at(0), UpdatedAt: at(20)})
	sameIDs(t, "docs of u1 after move", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc, Parent: "u1"}), []string{"d02", "d04"})
	sameIDs(t, "docs of u2 after move", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc, Parent: "u2"}),
		[]string{"d00", "d01", "d03", "d05"})

	// Returned records are whole.
	rs, err := s.ListResources(t.Context(), engine.ListQuery{Kind: engine.KindDoc, Parent: "u1", Limit: 1})
	must(t, "ListResources", err)
	if len(rs) != 1 {
		t.Fatalf("ListResources limit 1 returned %d", len(rs))
	}
	sameResource(t, rs[0], engine.Resource{Kind: engine.KindDoc, ID: "d02", Parent: "u1", CreatedAt: at(2), UpdatedAt: at(2),
		Body: json.RawMessage(`{"id":"d02"}`)})
}

func testResourceListSortPage(t *testing.T, s engine.State) {
	// Created in order 0..5; updated in the reverse order.
	for i := range 6 {
		putResource(t, s, engine.Resource{Kind: engine.KindUser, ID: name("u", i), CreatedAt: at(i), UpdatedAt: at(100 - i)})
	}
	q := func(sortBy string, desc bool, limit, offset int) engine.ListQuery {
		return engine.ListQuery{Kind: engine.KindUser, SortBy: sortBy, Desc: desc, Limit: limit, Offset: offset}
	}
	all := []string{"u00", "u01", "u02", "u03", "u04", "u05"}
	rev := []string{"u05", "u04", "u03", "u02", "u01", "u00"}
	for _, c := range []struct {
		name string
		q    engine.ListQuery
		want []string
	}{
		{"default (created_at asc)", q("", false, 0, 0), all},
		{"created_at asc", q("created_at", false, 0, 0), all},
		{"created_at desc", q("created_at", true, 0, 0), rev},
		{"updated_at asc", q("updated_at", false, 0, 0), rev},
		{"updated_at desc", q("updated_at", true, 0, 0), all},
		{"limit 2", q("created_at", false, 2, 0), all[:2]},
		{"limit 2 offset 2", q("created_at", false, 2, 2), all[2:4]},
		{"limit 4 offset 4", q("created_at", false, 4, 4), all[4:]},
		{"limit 2 offset 6", q("created_at", false, 2, 6), nil},
		{"offset 3 without limit", q("created_at", false, 0, 3), all[3:]},
		{"desc limit 2 offset 1", q("created_at", true, 2, 1), rev[1:3]},
		{"updated_at desc limit 3 offset 2", q("updated_at", true, 3, 2), all[2:5]},
	} {
		sameIDs(t, c.name, listResources(t, s, c.q), c.want)
	}

	// Updating a record moves it in updated_at order but not in created_at order.
	putResource(t, s, engine.Resource{Kind: engine.KindUser, ID: "u02", CreatedAt: at(50), UpdatedAt: at(200)})
	sameIDs(t, "updated_at desc after update", listResources(t, s, q("updated_at", true, 3, 0)), []string{"u02", "u00", "u01"})
	sameIDs(t, "created_at asc after update", listResources(t, s, q("created_at", false, 3, 0)), []string{"u00", "u01", "u02"})
}

func testResourceListTies(t *testing.T, s engine.State) {
	// All created at one instant: insertion order decides, reversed for desc,
	// and pages of every size cover the list exactly once.
	const n = 7
	want := make([]string, n)
	for i := range n {
		// Ids not in insertion order, so sorting by id is not enough.
		id := name("x", (i*3)%n)
		want[i] = id
		putResource(t, s, engine.Resource{Kind: engine.KindAgent, ID: id, CreatedAt: at(1), UpdatedAt: at(1)})
	}
	sameIDs(t, "equal created_at asc", listResources(t, s, engine.ListQuery{Kind: engine.KindAgent}), want)
	rev := make([]string, n)
	for i, id := range want {
		rev[n-1-i] = id
	}
	sameIDs(t, "equal created_at desc", listResources(t, s, engine.ListQuery{Kind: engine.KindAgent, Desc: true}), rev)
	for _, desc := range []bool{false, true} {
		var paged []string
		for off := 0; off < n+2; off += 2 {
			paged = append(paged, listResources(t, s, engine.ListQuery{Kind: engine.KindAgent, Desc: desc, Limit: 2, Offset: off})...)
		}
		exp := want
		if desc {
			exp = rev
		}
		sameIDs(t, fmt.Sprintf("pages of 2 (desc %v)", desc), paged, exp)
	}
}

func testResourceMetadataFilter(t *testing.T, s engine.State) {
	meta := []map[string]any{
		{"team": "red", "tier": "gold"},
		{"team": "red", "tier": "silver"},
		{"team": "blue", "tier": "gold"},
		{"team": "red"},
		nil,
		{"team": "red", "tier": "gold", "extra": "x"},
	}
	for i, m := range meta {
		parent := "p1"
		if i >= 3 {
			parent = "p2"
		}
		putResource(t, s, engine.Resource{Kind: engine.KindDoc, ID: name("d", i), Parent: parent, CreatedAt: at(i), UpdatedAt: at(i), Metadata: m})
	}
	f := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name string
		q    engine.ListQuery
		want []string
	}{
		{"team=red", engine.ListQuery{MetadataFilter: f("team", "red")}, []string{"d00", "d01", "d03", "d05"}},
		{"team=red and tier=gold", engine.ListQuery{MetadataFilter: f("team", "red", "tier", "gold")}, []string{"d00", "d05"}},
		{"tier=gold and team=blue", engine.ListQuery{MetadataFilter: f("tier", "gold", "team", "blue")}, []string{"d02"}},
		{"team=Red (case matters)", engine.ListQuery{MetadataFilter: f("team", "Red")}, nil},
		{"missing key", engine.ListQuery{MetadataFilter: f("colour", "red")}, nil},
		{"empty value matches no missing key", engine.ListQuery{MetadataFilter: f("tier", "")}, nil},
		{"empty filter", engine.ListQuery{MetadataFilter: map[string]string{}}, []string{"d00", "d01", "d02", "d03", "d04", "d05"}},
		{"team=red under p2", engine.ListQuery{Parent: "p2", MetadataFilter: f("team", "red")}, []string{"d03", "d05"}},
		{"team=red desc limit 2 offset 1", engine.ListQuery{MetadataFilter: f("team", "red"), Desc: true, Limit: 2, Offset: 1}, []string{"d03", "d01"}},
	} {
		c.q.Kind = engine.KindDoc
		sameIDs(t, c.name, listResources(t, s, c.q), c.want)
	}

	// A put replaces the metadata the filter sees.
	putResource(t, s, engine.Resource{Kind: engine.KindDoc, ID: "d00", Parent: "p1", CreatedAt: at(0), UpdatedAt: at(30),
		Metadata: map[string]any{"team": "blue"}})
	sameIDs(t, "team=red after update", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc, MetadataFilter: f("team", "red")}),
		[]string{"d01", "d03", "d05"})
	sameIDs(t, "team=blue after update", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc, MetadataFilter: f("team", "blue")}),
		[]string{"d00", "d02"})
}

func testResourceMetadataFilterText(t *testing.T, s engine.State) {
	// Values of every JSON type; keys that would be operators or paths in
	// some query languages.
	putResource(t, s, engine.Resource{Kind: engine.KindUser, ID: "typed", CreatedAt: at(1), UpdatedAt: at(1), Metadata: map[string]any{
		"vip": true, "banned": false, "age": 42.0, "score": 2.5, "neg": -7.0, "none": nil,
		"obj": map[string]any{"b": 1.0, "a": "x"}, "list": []any{1.0, "two"},
		"a.b": "dotted", "$gt": "dollar", `q"uote`: "quoted", "ключ": "значение", "": "blank key",
	}})
	putResource(t, s, engine.Resource{Kind: engine.KindUser, ID: "strings", CreatedAt: at(2), UpdatedAt: at(2), Metadata: map[string]any{
		"vip": "true", "age": "42", "score": "2.5", "none": "null",
	}})
	for _, c := range []struct {
		key, value string
		want       []string
	}{
		{"vip", "true", []string{"typed", "strings"}},
		{"vip", "True", nil},
		{"vip", "1", nil},
		{"banned", "false", []string{"typed"}},
		{"banned", "0", nil},
		{"age", "42", []string{"typed", "strings"}},
		{"age", "42.0", nil},
		{"score", "2.5", []string{"typed", "strings"}},
		{"neg", "-7", []string{"typed"}},
		{"none", "null", []string{"strings"}},
		{"none", "", nil},
		{"obj", `{"a":"x","b":1}`, []string{"typed"}},
		{"list", `[1,"two"]`, []string{"typed"}},
		{"a.b", "dotted", []string{"typed"}},
		{"a", "dotted", nil},
		{"$gt", "dollar", []string{"typed"}},
		{`q"uote`, "quoted", []string{"typed"}},
		{"ключ", "значение", []string{"typed"}},
		{"", "blank key", []string{"typed"}},
	} {
		q := engine.ListQuery{Kind: engine.KindUser, MetadataFilter: map[string]string{c.key: c.value}}
		sameIDs(t, fmt.Sprintf("metadata %q = %q", c.key, c.value), listResources(t, s, q), c.want)
	}
	// Numbers and booleans read back as JSON numbers and booleans.
	r := getResource(t, s, engine.KindUser, "typed")
	for k, want := range map[string]any{"vip": true, "age": 42.0, "score": 2.5, "none": nil} {
		if v, ok := r.Metadata[k]; !ok || v != want {
			t.Errorf("metadata[%q] = %#v (present %v), want %#v", k, v, ok, want)
		}
	}
}

// Sessions, their history entries, agents' tools and agents' docs are
// resources of their own kinds and parents (no schema of their own): the
// same id under two kinds is two records, a prefixed parent lists apart
// from the bare id, and a large body (a doc with its embeddings) round-trips.
func testResourceSessionKinds(t *testing.T, s engine.State) {
	putResource(t, s, engine.Resource{Kind: engine.KindSession, ID: "s1", CreatedAt: at(1), UpdatedAt: at(1)})
	for i := range 3 {
		putResource(t, s, engine.Resource{Kind: engine.KindEntry, ID: name("e", i), Parent: "s1", CreatedAt: at(2), UpdatedAt: at(2)})
	}
	putResource(t, s, engine.Resource{Kind: engine.KindTool, ID: "s1", Parent: "a1", CreatedAt: at(3), UpdatedAt: at(3)})
	putResource(t, s, engine.Resource{Kind: engine.KindDoc, ID: "d1", Parent: "a1", CreatedAt: at(4), UpdatedAt: at(4)})
	vec := make([]float64, 1024)
	for i := range vec {
		vec[i] = float64(i%7) / 7
	}
	body, _ := json.Marshal(map[string]any{"id": "d2", "embeddings": [][]float64{vec, vec}})
	big := putResource(t, s, engine.Resource{Kind: engine.KindDoc, ID: "d2", Parent: "agent:a1", CreatedAt: at(5), UpdatedAt: at(5), Body: body})

	sameIDs(t, "entries of s1 (equal times keep insertion order)", listResources(t, s, engine.ListQuery{Kind: engine.KindEntry, Parent: "s1"}), []string{"e00", "e01", "e02"})
	sameIDs(t, "sessions", listResources(t, s, engine.ListQuery{Kind: engine.KindSession}), []string{"s1"})
	sameIDs(t, "tools of a1", listResources(t, s, engine.ListQuery{Kind: engine.KindTool, Parent: "a1"}), []string{"s1"})
	sameIDs(t, "docs under a1", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc, Parent: "a1"}), []string{"d1"})
	sameIDs(t, "docs under agent:a1", listResources(t, s, engine.ListQuery{Kind: engine.KindDoc, Parent: "agent:a1"}), []string{"d2"})
	sameResource(t, getResource(t, s, engine.KindDoc, "d2"), big)
	must(t, "DeleteResource session", s.DeleteResource(t.Context(), engine.KindSession, "s1"))
	sameIDs(t, "tool s1 outlives session s1", listResources(t, s, engine.ListQuery{Kind: engine.KindTool}), []string{"s1"})
}
