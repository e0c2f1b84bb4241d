package sqlite_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/sqlite"
)

func benchStore(b *testing.B) *sqlite.Store {
	b.Helper()
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "astra.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkClaimDeliver is the dispatcher's hot path: 4 workers each
// claiming a row and delivering it until the outbox is empty. One op is one
// claim+deliver cycle.
func BenchmarkClaimDeliver(b *testing.B) {
	const workers = 4
	ctx := b.Context()
	s := benchStore(b)
	for i := range b.N {
		if err := s.Enqueue(ctx, &responder.Message{UserID: "u", Content: fmt.Sprint("m", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		owner := fmt.Sprint("w", w)
		wg.Go(func() {
			for {
				m, err := s.Claim(ctx, owner, time.Minute, 0)
				if err != nil {
					b.Error(err)
					return
				}
				if m == nil {
					return
				}
				if err := s.Deliver(ctx, m.ID, owner); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cycles/s")
}

// BenchmarkAppendEvent stores events with distinct dedupe keys, one caller
// and four at once.
func BenchmarkAppendEvent(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		ctx := b.Context()
		s := benchStore(b)
		i := 0
		for b.Loop() {
			i++
			e := &responder.Event{UserID: "u", Role: responder.RoleAssistant, Content: "hello there", DedupeKey: fmt.Sprint("k", i)}
			if _, err := s.AppendEvent(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel4", func(b *testing.B) {
		ctx := b.Context()
		s := benchStore(b)
		b.SetParallelism(4)
		var mu sync.Mutex
		n := 0
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				n++
				key := fmt.Sprint("k", n)
				mu.Unlock()
				e := &responder.Event{UserID: "u", Role: responder.RoleAssistant, Content: "hello there", DedupeKey: key}
				if _, err := s.AppendEvent(ctx, e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkLatestEvents reads a user's latest 25 events from a store of
// 100k events (1,000 users with 100 each), the page a conversation opens
// with. It reports the median latency.
func BenchmarkLatestEvents(b *testing.B) {
	const users, perUser = 1000, 100
	ctx := b.Context()
	s := benchStore(b)
	ids := make([]string, users)
	for i := range ids {
		ids[i] = responder.NewID()
	}
	// Bulk-load in one transaction: 100k separate AppendEvent commits would
	// measure the loader, not the read.
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (id, user_id, role, content, created_at, dedupe_key) VALUES (?, ?, 'assistant', 'some reply text', ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).UnixMilli()
	for j := range perUser {
		for i, u := range ids {
			if _, err := stmt.ExecContext(ctx, responder.NewID(), u, base+int64(j), fmt.Sprint(i, ":", j)); err != nil {
				b.Fatal(err)
			}
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}

	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		evs, err := s.LatestEvents(ctx, ids[i%users], 25)
		lat = append(lat, time.Since(t0))
		if err != nil || len(evs) != 25 {
			b.Fatalf("LatestEvents = %d events, %v", len(evs), err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "median-ns")
}
