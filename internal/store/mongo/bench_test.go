package mongo_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/mongo"
)

// benchStore is a store on a real MongoDB when ASTRA_TEST_MONGODB_URI is
// set, else on an embedded FerretDB (whose numbers are FerretDB's: it scans
// tables instead of using indexes).
func benchStore(b *testing.B) *mongo.Store {
	if uri := os.Getenv("ASTRA_TEST_MONGODB_URI"); uri != "" {
		return openStore(b, uri, mongo.Options{})
	}
	return newFerretStore(b, mongo.Options{})
}

// BenchmarkMessageLifecycle is one outbox row's way through the store:
// enqueue, claim, deliver.
func BenchmarkMessageLifecycle(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	user := responder.NewID()
	for b.Loop() {
		if err := s.Enqueue(ctx, &responder.Message{UserID: user, Content: "hi"}); err != nil {
			b.Fatal(err)
		}
		m, err := s.Claim(ctx, "bench", time.Minute, 0)
		if err != nil || m == nil {
			b.Fatalf("Claim = %v, %v", m, err)
		}
		if err := s.Deliver(ctx, m.ID, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	user := responder.NewID()
	i := 0
	for b.Loop() {
		i++
		e := &responder.Event{UserID: user, Role: responder.RoleAssistant, Content: "hello", DedupeKey: fmt.Sprint("k", i)}
		if _, err := s.AppendEvent(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUserEventsAfter pages 25 events after a cursor among 1000 events
// of 10 users: what a reconnecting socket asks.
func BenchmarkUserEventsAfter(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	users := make([]string, 10)
	for i := range users {
		users[i] = responder.NewID()
	}
	var cursor string
	for i := range 1000 {
		e := &responder.Event{UserID: users[i%10], Role: responder.RoleAssistant, Content: "x", DedupeKey: fmt.Sprint("k", i)}
		if _, err := s.AppendEvent(ctx, e); err != nil {
			b.Fatal(err)
		}
		if i == 500 {
			cursor = e.ID
		}
	}
	for b.Loop() {
		evs, err := s.UserEventsAfter(ctx, users[0], cursor, 25)
		if err != nil || len(evs) != 25 {
			b.Fatalf("UserEventsAfter = %d events, %v", len(evs), err)
		}
	}
}
