package mongo

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
)

// seqServers are the servers the seq tests run on: an embedded FerretDB,
// and a real MongoDB when ASTRA_TEST_MONGODB_URI names one.
func seqServers(t *testing.T) map[string]string {
	out := map[string]string{"ferretdb": ferrettest.Start(t)}
	if uri := os.Getenv("ASTRA_TEST_MONGODB_URI"); uri != "" {
		out["mongodb"] = uri
	}
	return out
}

func openPair(t *testing.T, uri string) (a, b *Store) {
	t.Helper()
	db := "t" + responder.NewID()
	open := func() *Store {
		s, err := Open(t.Context(), uri, db, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.db.Drop(ctx)
			_ = s.Close()
		})
		return s
	}
	return open(), open()
}

// TestAppendRetriesATakenSeq: a writer whose number another writer took
// between its read and its insert sees the duplicate (FerretDB and MongoDB
// both report an insert's as 11000) and takes the next number; the event
// of the other writer is not mistaken for its own.
func TestAppendRetriesATakenSeq(t *testing.T) {
	t.Parallel()
	for name, uri := range seqServers(t) {
		t.Run(name, func(t *testing.T) {
			a, b := openPair(t, uri)
			ctx := t.Context()
			u := responder.NewID()
			var other *responder.Event
			a.beforeInsert = func() {
				if other != nil {
					return
				}
				other = &responder.Event{UserID: u, Role: responder.RoleAssistant, Content: "other", DedupeKey: "k-other-" + u}
				if _, err := b.AppendEvent(ctx, other); err != nil {
					t.Errorf("the other writer: %v", err)
				}
			}
			mine := &responder.Event{UserID: u, Role: responder.RoleAssistant, Content: "mine", DedupeKey: "k-mine-" + u}
			created, err := a.AppendEvent(ctx, mine)
			if err != nil || !created {
				t.Fatalf("AppendEvent = %v, %v", created, err)
			}
			if other.Seq != 1 || mine.Seq != 2 || mine.Content != "mine" {
				t.Errorf("seqs: other %d, mine %d (%q); want 1, 2", other.Seq, mine.Seq, mine.Content)
			}
			// The retry did not store it twice, and a repeat is a duplicate.
			again := &responder.Event{UserID: u, Role: responder.RoleAssistant, Content: "again", DedupeKey: mine.DedupeKey}
			if created, err := b.AppendEvent(ctx, again); err != nil || created || again.ID != mine.ID || again.Seq != 2 {
				t.Errorf("repeat = %v, %v, %+v; want the stored event", created, err, again)
			}
			evs, err := b.LatestEvents(ctx, u, 10)
			if err != nil || len(evs) != 2 {
				t.Fatalf("LatestEvents = %d events, %v", len(evs), err)
			}
		})
	}
}

// TestLegacyEventsComeFirst: events the original app wrote (no seq, no
// seqKey, no dedupeKey) stay readable, come before Astra's numbered events
// in a user's order, and do not stop numbering at 1.
func TestLegacyEventsComeFirst(t *testing.T) {
	t.Parallel()
	for name, uri := range seqServers(t) {
		t.Run(name, func(t *testing.T) {
			s, _ := openPair(t, uri)
			ctx := t.Context()
			u := responder.NewID()
			var legacy []string
			for i := range 3 {
				oid := bson.NewObjectID()
				// Later than anything appended below, yet ordered first.
				at := time.Now().Add(time.Hour + time.Duration(i)*time.Second).Truncate(time.Millisecond)
				if _, err := s.events.InsertOne(ctx, bson.D{{Key: "_id", Value: oid}, {Key: "userId", Value: u},
					{Key: "role", Value: "assistant"}, {Key: "content", Value: "old"}, {Key: "createdAt", Value: at}}); err != nil {
					t.Fatal(err)
				}
				legacy = append(legacy, oid.Hex())
			}
			e := &responder.Event{UserID: u, Role: responder.RoleAssistant, Content: "new", DedupeKey: "k-" + u}
			if _, err := s.AppendEvent(ctx, e); err != nil || e.Seq != 1 {
				t.Fatalf("AppendEvent = seq %d, %v; want 1", e.Seq, err)
			}
			want := append(slices.Clone(legacy), e.ID)
			got, err := s.UserEventsAfter(ctx, u, "", 10)
			if err != nil || !slices.Equal(ids(got), want) {
				t.Errorf("UserEventsAfter = %v, %v; want %v", ids(got), err, want)
			}
			got, err = s.UserEventsAfter(ctx, u, legacy[1], 10)
			if err != nil || !slices.Equal(ids(got), want[2:]) {
				t.Errorf("UserEventsAfter(legacy) = %v, %v; want %v", ids(got), err, want[2:])
			}
			got, err = s.LatestEvents(ctx, u, 2)
			if err != nil || !slices.Equal(ids(got), want[2:]) {
				t.Errorf("LatestEvents = %v, %v; want %v", ids(got), err, want[2:])
			}
		})
	}
}

func ids(es []responder.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}
