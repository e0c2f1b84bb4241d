// Package statetest is the one conformance suite every engine.State runs, so
// the SQLite and MongoDB states keep the same contract.
//
// A state's test calls Run with a constructor that returns a fresh, empty
// state for each case:
//
//	func TestConformance(t *testing.T) {
//		statetest.Run(t, func(t *testing.T) engine.State {
//			return newEmptyState(t) // its own file or database, closed by t.Cleanup
//		})
//	}
//
// Contract points the suite pins down beyond what engine.State's comments
// say:
//
//   - Times round-trip exactly (to the nanosecond) and read back in UTC.
//   - A metadata filter compares the text of a stored metadata value with
//     the filter string: a string is its own text; null has none (it never
//     matches); any other value is its compact JSON (true, 5, 2.5,
//     {"a":1}). That is the text the engine's API makes of a JSON filter
//     value, so {"vip": true} in a filter finds {"vip": true} in metadata.
//   - Ties in the sort column are broken by insertion order, the same way
//     in both directions reversed, so offset paging never skips or repeats.
//   - Bodies, inputs, outputs and checkpoints round-trip as the same JSON.
//   - Advance is all or nothing as any reader can observe, also when two
//     callers race with the same expected status.
//   - A claim has exactly one winner however many race; a lease that ran
//     out is claimable; once another owner claimed, the old token's
//     Advance, ExtendLease, ReleaseLease and fenced doc writes all return
//     ErrConflict and change nothing.
//   - PutTask of the latest version's definition returns that version.
package statetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
)

// Run runs every conformance case as a parallel subtest of t. newState must
// return a new, empty state owned by the given (sub)test and release it with
// t.Cleanup.
func Run(t *testing.T, newState func(t *testing.T) engine.State) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s engine.State)
	}{
		{"Resources/PutGet", testResourcePutGet},
		{"Resources/NotFound", testResourceNotFound},
		{"Resources/Delete", testResourceDelete},
		{"Resources/ListKindAndParent", testResourceListParent},
		{"Resources/ListSortAndPage", testResourceListSortPage},
		{"Resources/ListTiesKeepInsertionOrder", testResourceListTies},
		{"Resources/MetadataFilter", testResourceMetadataFilter},
		{"Resources/MetadataFilterText", testResourceMetadataFilterText},
		{"Resources/SessionKinds", testResourceSessionKinds},

		{"Tasks/Versions", testTaskVersions},
		{"Tasks/ListLatest", testTaskListLatest},
		{"Tasks/ListFilterSortPage", testTaskListFilterSortPage},
		{"Tasks/ConcurrentSameBodyOneVersion", testTaskConcurrentSameBody},
		{"Resources/ConcurrentPut", testResourceConcurrentPut},

		{"Executions/CreateGet", testExecutionCreateGet},
		{"Executions/DuplicateCreate", testExecutionDuplicate},
		{"Executions/ListByTask", testExecutionList},
		{"Executions/ByStatus", testExecutionsByStatus},
		{"Executions/TraceParent", testExecutionTraceParent},

		{"Advance/WritesExecutionAndTransitions", testAdvance},
		{"Advance/ConflictWritesNothing", testAdvanceConflict},
		{"Advance/ConcurrentOneWins", testAdvanceConcurrent},
		{"Advance/ConcurrentSameStatusOneWins", testAdvanceConcurrentSameStatus},
		{"Advance/ReadersSeeWholeAdvances", testAdvanceReadersSeeWholeAdvances},
		{"Transitions/Paging", testTransitionPaging},
		{"Checkpoint/RoundTrip", testCheckpoint},
		{"JSON/RoundTrip", testJSONRoundTrip},

		{"Leases/CreateRoundTrip", testLeaseCreateRoundTrip},
		{"Leases/ClaimRaceOneWins", testLeaseClaimRace},
		{"Leases/ClaimManyRaceEachOnce", testLeaseClaimManyRace},
		{"Leases/ExpiryHandOff", testLeaseExpiryHandOff},
		{"Leases/Release", testLeaseRelease},
		{"Leases/UnfencedAdvanceClears", testLeaseUnfencedAdvanceClears},
		{"Leases/FencedDocWrites", testLeaseFencedDocWrites},
		{"Leases/CrashCount", testLeaseCrashCount},
		{"Leases/TokenRead", testLeaseTokenRead},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, newState(t))
		})
	}
}

// ---- shared fixtures and checks ----

// base is a fixed instant with a non-zero nanosecond part, so a state that
// rounds times to milliseconds or microseconds fails the round trip.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// at is base plus n seconds and a few nanoseconds, distinct for each n.
func at(n int) time.Time { return base.Add(time.Duration(n)*time.Second + time.Duration(n)) }

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

// canonical decodes JSON into plain values keeping number text, so two
// encodings of one JSON value compare equal and two numbers compare as
// written.
func canonical(t *testing.T, what string, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: invalid JSON %q: %v", what, b, err)
	}
	return v
}

// sameJSON compares two JSON texts as JSON values.
func sameJSON(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if len(want) == 0 {
		if len(got) != 0 {
			t.Errorf("%s = %s, want empty", what, got)
		}
		return
	}
	if len(got) == 0 {
		t.Errorf("%s is empty, want %s", what, want)
		return
	}
	if g, w := canonical(t, what, got), canonical(t, what, want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

// sameValue compares two Go values by their JSON encoding.
func sameValue(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("%s: encode %#v: %v", what, got, err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("%s: encode %#v: %v", what, want, err)
	}
	sameJSON(t, what, g, w)
}

// sameMetadata compares metadata as JSON; a state may return an empty map
// for nil metadata.
func sameMetadata(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	sameValue(t, what+" metadata", got, want)
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ids returns the ids of a list, for order assertions.
func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func name(prefix string, i int) string { return fmt.Sprintf("%s%02d", prefix, i) }
