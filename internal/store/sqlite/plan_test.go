package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryPlans pins the plans of the hot queries: each must be served in
// order by an index, never by a table scan or a sort, whatever the data.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cases := []struct {
		name, query, index string
		args               int
	}{
		{"claim", claimQuery, "COVERING INDEX outbox_claim", 7},
		{"claim's busy users", claimQuery, "COVERING INDEX outbox_busy", 7},
		{"user messages", userMessagesQuery, "INDEX outbox_user", 2},
		{"next available", nextAvailableQuery, "COVERING INDEX outbox_available", 0},
		{"latest events", latestEventsQuery, "INDEX events_user_seq", 2},
		{"user events after", userEventsAfterQuery, "INDEX events_user_seq", 5},
		{"events after", eventsAfterQuery, "INDEX events_order", 3},
		{"last event", lastEventQuery, "INDEX events_order", 0},
	}
	for _, c := range cases {
		args := make([]any, c.args)
		for i := range args {
			args[i] = 1
		}
		plan, err := s.QueryPlan(t.Context(), c.query, args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		all := strings.Join(plan, "; ")
		if !strings.Contains(all, c.index) || strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("%s plan = %q, want it served in order by %s", c.name, all, c.index)
		}
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN ") && !strings.Contains(step, "INDEX") {
				t.Errorf("%s scans a table: %q", c.name, all)
			}
		}
	}
}
