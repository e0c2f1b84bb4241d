package sqlitestate

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// A user's docs listed newest-updated first (what the responder task asks
// for) are read in index order, so the LIMIT stops the scan instead of every
// doc of the user being read and sorted.
func TestDocListPlans(t *testing.T) {
	t.Parallel()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := New(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	for _, q := range []engine.ListQuery{
		{Kind: "doc", Parent: "u", SortBy: "updated_at", Desc: true, Limit: 30, MetadataFilter: map[string]string{"scope": "frontline", "type": "notes"}},
		{Kind: "doc", Parent: "u", SortBy: "created_at", Limit: 10},
	} {
		where, args := filterSQL(q, []string{"kind = ?", "parent = ?"}, []any{q.Kind, q.Parent})
		plan, err := db.QueryPlan(t.Context(), "SELECT "+resourceCols+" FROM engine_resources"+where, args...)
		if err != nil {
			t.Fatal(err)
		}
		all := strings.Join(plan, "; ")
		if !strings.Contains(all, "INDEX engine_resources_") || strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("sorted by %s: plan %q, want it served in order by an index", q.SortBy, all)
		}
	}
}

// The sweep's search for claimable executions, which every instance runs
// twice a second, reads the (status, lease_until) index, not the table.
func TestClaimablePlan(t *testing.T) {
	t.Parallel()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := New(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	plan, err := db.QueryPlan(t.Context(), claimableSQL, int64(1), 10)
	if err != nil {
		t.Fatal(err)
	}
	if all := strings.Join(plan, "; "); !strings.Contains(all, "INDEX engine_executions_lease") {
		t.Errorf("plan %q, want the engine_executions_lease index", all)
	}
}
