// Package storetest is the one conformance suite every responder.Store
// backend runs, so the SQLite and MongoDB backends keep the same contract.
//
// A backend's test calls Run with a constructor that returns a fresh, empty
// store for each case:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) responder.Store {
//			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		}, storetest.Options{Concurrent: true})
//	}
package storetest

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// Options says what a backend can do, so the suite asks only for that.
type Options struct {
	// Concurrent reports that the backend's writes are truly atomic under
	// concurrency, so the suite races writers against each other (many
	// claimers on one queue). Without it the suite proves the same
	// properties with serial callers.
	Concurrent bool
	// Serial runs the cases one after another instead of in parallel, for a
	// backend whose fresh stores share something that cannot take parallel
	// load.
	Serial bool
	// OpenWriters, when set, opens one store per clock on one fresh
	// database, each stamping the events it appends with its own clock:
	// instances whose clocks disagree, sharing a database. Cases that need
	// it are skipped without it.
	OpenWriters func(t *testing.T, clocks ...func() time.Time) []responder.Store
}

// Run runs every conformance case as a subtest of t. newStore must return a
// new, empty store owned by the given (sub)test and arrange its Close with
// t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) responder.Store, opts Options) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s responder.Store, opts Options)
	}{
		{"Ping", testPing},

		{"Outbox/EnqueueAndGet", testEnqueueAndGet},
		{"Outbox/ClaimOldestFirst", testClaimOldestFirst},
		{"Outbox/ClaimEachRowOnce", testClaimEachRowOnce},
		{"Outbox/LeaseExpiryReclaim", testLeaseExpiryReclaim},
		{"Outbox/ClaimPerUserCap", testClaimPerUserCap},
		{"Outbox/OnlyOwnerCompletes", testOnlyOwnerCompletes},
		{"Outbox/ExtendLeaseAndRecord", testExtendLeaseAndRecord},
		{"Outbox/ExtendRevivesLease", testExtendRevivesLease},
		{"Outbox/ReleaseRetry", testReleaseRetry},
		{"Outbox/UserMessages", testUserMessages},
		{"Outbox/CountByStatus", testCountByStatus},
		{"Outbox/Metadata", testMessageMetadata},
		{"Outbox/NotFound", testOutboxNotFound},
		{"Outbox/TraceParent", testTraceParent},

		{"Events/AppendAndRead", testAppendAndRead},
		{"Events/DedupeSerial", testDedupeSerial},
		{"Events/DedupeConcurrent", testDedupeConcurrent},
		{"Events/DedupeKeyRequired", testDedupeKeyRequired},
		{"Events/CursorPagingEqualTimes", testCursorPagingEqualTimes},
		{"Events/LatestEvents", testLatestEvents},
		{"Events/LastEvent", testLastEvent},
		{"Events/UserIsolation", testUserIsolation},
		{"Events/NotFound", testEventsNotFound},
		{"Events/ResumeAcrossSkewedClocks", testResumeAcrossSkewedClocks},
		{"Events/ResumeDuringConcurrentAppends", testResumeDuringConcurrentAppends},
		{"Events/ImportsComeFirst", testImportsComeFirst},
		{"Events/ByDedupeKey", testEventByDedupeKey},
		{"Events/TraceParent", testEventTraceParent},
		{"Outbox/UserMessagesBefore", testUserMessagesBefore},

		{"Blobs/PutAndGet", testBlobs},

		{"Deltas/AppendAndRead", testDeltas},
		{"Deltas/Invalid", testDeltasInvalid},
		{"Deltas/Prune", testPruneDeltas},

		{"Auth/Users", testUsers},
		{"Auth/UserNotFound", testUserNotFound},
		{"Auth/Accounts", testAccounts},
		{"Auth/Sessions", testSessions},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !opts.Serial {
				t.Parallel()
			}
			s := newStore(t)
			c.fn(t, s, opts)
		})
	}
}

// badIDs are ids no backend may find: malformed ones (which must be
// ENOTFOUND, not a panic or a parse error) and a well-formed unknown one.
var badIDs = []string{"", "x", "not-an-id", "zzzzzzzzzzzzzzzzzzzzzzzz", "0123456789abcdef0123456", "ffffffffffffffffffffffff", "'; DROP TABLE outbox; --"}

func testPing(t *testing.T, s responder.Store, _ Options) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// ---- helpers ----

func enqueue(t *testing.T, s responder.Store, userID, content string) *responder.Message {
	t.Helper()
	m := &responder.Message{UserID: userID, Content: content}
	if err := s.Enqueue(t.Context(), m); err != nil {
		t.Fatalf("Enqueue(%q): %v", content, err)
	}
	return m
}

func mustClaim(t *testing.T, s responder.Store, owner string, lease time.Duration) *responder.Message {
	t.Helper()
	m, err := s.Claim(t.Context(), owner, lease, 0)
	if err != nil {
		t.Fatalf("Claim(%s): %v", owner, err)
	}
	if m == nil {
		t.Fatalf("Claim(%s) = nil, want a row", owner)
	}
	return m
}

func mustMessage(t *testing.T, s responder.Store, id string) *responder.Message {
	t.Helper()
	m, err := s.Message(t.Context(), id)
	if err != nil {
		t.Fatalf("Message(%s): %v", id, err)
	}
	return m
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := responder.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

func userID() string { return responder.NewID() }

// ms is t at the millisecond precision every backend stores.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(ms(want)) {
		t.Errorf("%s = %v, want %v", what, got, ms(want))
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

// normJSON normalises a metadata value through JSON so that backends may
// return int64 or float64 for the same number; nil stays nil.
func normJSON(t *testing.T, v map[string]any) any {
	t.Helper()
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal metadata %v: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal metadata: %v", err)
	}
	return out
}

func sameMetadata(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Errorf("%s metadata = %#v, want %#v", what, got, want)
		return
	}
	if g, w := normJSON(t, got), normJSON(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s metadata = %#v, want %#v", what, g, w)
	}
}

func sameMessage(t *testing.T, got, want *responder.Message) {
	t.Helper()
	what := "message " + want.ID
	if got.ID != want.ID || got.UserID != want.UserID || got.JulepUserID != want.JulepUserID ||
		got.Content != want.Content || got.Status != want.Status || got.Attempts != want.Attempts ||
		got.LeaseOwner != want.LeaseOwner || got.ExecutionID != want.ExecutionID || got.LastError != want.LastError {
		t.Errorf("%s:\n got %+v\nwant %+v", what, *got, *want)
	}
	sameTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, what+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	sameTime(t, what+" LeaseUntil", got.LeaseUntil, want.LeaseUntil)
	sameTime(t, what+" AvailableAt", got.AvailableAt, want.AvailableAt)
	sameTime(t, what+" DeliveredAt", got.DeliveredAt, want.DeliveredAt)
	sameMetadata(t, what, got.Metadata, want.Metadata)
}

func sameEvent(t *testing.T, got, want *responder.Event) {
	t.Helper()
	what := "event " + want.ID
	if got.ID != want.ID || got.UserID != want.UserID || got.OutboxID != want.OutboxID ||
		got.ExecutionID != want.ExecutionID || got.Role != want.Role || got.Content != want.Content {
		t.Errorf("%s:\n got %+v\nwant %+v", what, *got, *want)
	}
	sameTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	sameMetadata(t, what, got.Metadata, want.Metadata)
}

func appendEvent(t *testing.T, s responder.Store, e *responder.Event) *responder.Event {
	t.Helper()
	if e.DedupeKey == "" {
		e.DedupeKey = "k-" + responder.NewID()
	}
	if e.Role == "" {
		e.Role = responder.RoleAssistant
	}
	created, err := s.AppendEvent(t.Context(), e)
	if err != nil {
		t.Fatalf("AppendEvent(%q): %v", e.DedupeKey, err)
	}
	if !created {
		t.Fatalf("AppendEvent(%q) created = false, want true", e.DedupeKey)
	}
	return e
}

// eventBefore is the documented total order of events: (CreatedAt, ID).
func eventBefore(a, b responder.Event) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func eventIDs(es []responder.Event) []string {
	return ids(es, func(e responder.Event) string { return e.ID })
}

func messageIDs(ms []responder.Message) []string {
	return ids(ms, func(m responder.Message) string { return m.ID })
}

// eventually polls cond until it reports true or the deadline passes: a
// condition to wait on, not a sleep to hope with.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
