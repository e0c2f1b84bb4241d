package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

func deltaTexts(ds []responder.Delta) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s/%d:%s ", d.ExecutionID[len(d.ExecutionID)-1:], d.Index, d.Text)
	}
	return strings.TrimSpace(b.String())
}

// testDeltas: a batch is read back in its order with its fields; a repeat
// of (execution, index) is dropped; the cursor pages without skipping or
// repeating rows that share a timestamp.
func testDeltas(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	start := time.Now().Add(-time.Second)
	batch := []responder.Delta{
		{UserID: "u1", OutboxID: "o1", ExecutionID: "exec-a", Index: 0, Text: "Hel"},
		{UserID: "u1", OutboxID: "o1", ExecutionID: "exec-a", Index: 1, Text: "lo"},
		{UserID: "u2", OutboxID: "o2", ExecutionID: "exec-b", Index: 0, Text: "Hi"},
		{UserID: "u1", OutboxID: "o1", ExecutionID: "exec-a", Index: 2, Text: "!"},
	}
	n, err := s.AppendDeltas(ctx, batch)
	if err != nil || n != 4 {
		t.Fatalf("AppendDeltas = %d, %v; want 4, nil", n, err)
	}
	for i, d := range batch {
		if !responder.ValidID(d.ID) || d.CreatedAt.IsZero() {
			t.Fatalf("delta %d: ID %q CreatedAt %v not set", i, d.ID, d.CreatedAt)
		}
	}
	all, err := s.DeltasAfter(ctx, start, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := deltaTexts(all), "a/0:Hel a/1:lo b/0:Hi a/2:!"; got != want {
		t.Fatalf("DeltasAfter = %q, want %q (the batch's order)", got, want)
	}
	if d := all[0]; d.UserID != "u1" || d.OutboxID != "o1" || d.ID != batch[0].ID || !d.CreatedAt.Equal(batch[0].CreatedAt) {
		t.Errorf("first delta read back as %+v, stored as %+v", d, batch[0])
	}

	// A hand-off repeats what the engine keeps; only the new fragment stays.
	again := []responder.Delta{
		{UserID: "u1", OutboxID: "o1", ExecutionID: "exec-a", Index: 1, Text: "lo"},
		{UserID: "u1", OutboxID: "o1", ExecutionID: "exec-a", Index: 2, Text: "!"},
		{UserID: "u1", OutboxID: "o1", ExecutionID: "exec-a", Index: 3, Text: " there"},
	}
	if n, err := s.AppendDeltas(ctx, again); err != nil || n != 1 {
		t.Fatalf("AppendDeltas(repeat) = %d, %v; want 1, nil", n, err)
	}
	if again[0].ID != "" || again[2].ID == "" {
		t.Errorf("repeat's IDs: %q %q %q; want only the new one set", again[0].ID, again[1].ID, again[2].ID)
	}

	// Paging two at a time from the first row.
	var paged []responder.Delta
	at, after := all[0].CreatedAt, all[0].ID
	for range 10 {
		page, err := s.DeltasAfter(ctx, at, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		at, after = page[len(page)-1].CreatedAt, page[len(page)-1].ID
	}
	if got, want := deltaTexts(paged), "a/1:lo b/0:Hi a/2:! a/3: there"; got != want {
		t.Errorf("paged = %q, want %q", got, want)
	}
	if ds, err := s.DeltasAfter(ctx, time.Now().Add(time.Minute), "", 10); err != nil || len(ds) != 0 {
		t.Errorf("DeltasAfter(future) = %d deltas, %v; want none", len(ds), err)
	}
}

func testDeltasInvalid(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	ok := responder.Delta{UserID: "u", ExecutionID: "x", Text: "fine"}
	for name, bad := range map[string]responder.Delta{
		"no execution": {UserID: "u", Text: "t"},
		"no user":      {ExecutionID: "x", Index: 1, Text: "t"},
		"negative":     {UserID: "u", ExecutionID: "x", Index: -1},
		"too long":     {UserID: "u", ExecutionID: "x", Index: 1, Text: strings.Repeat("a", responder.MaxDeltaText+1)},
	} {
		_, err := s.AppendDeltas(ctx, []responder.Delta{ok, bad})
		if responder.ErrorCode(err) != responder.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	big := make([]responder.Delta, responder.MaxDeltaBatch+1)
	for i := range big {
		big[i] = responder.Delta{UserID: "u", ExecutionID: "y", Index: i}
	}
	if _, err := s.AppendDeltas(ctx, big); responder.ErrorCode(err) != responder.EINVALID {
		t.Errorf("batch over the limit: %v, want EINVALID", err)
	}
	if ds, err := s.DeltasAfter(ctx, time.Time{}, "", 10); err != nil || len(ds) != 0 {
		t.Errorf("after refused batches: %d deltas stored (%v), want none", len(ds), err)
	}
}

func testPruneDeltas(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	ds := []responder.Delta{{UserID: "u", ExecutionID: "x", Index: 0, Text: "a"}, {UserID: "u", ExecutionID: "x", Index: 1, Text: "b"}}
	if _, err := s.AppendDeltas(ctx, ds); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneDeltas(ctx, ds[0].CreatedAt); err != nil || n != 0 {
		t.Errorf("PruneDeltas(at their time) = %d, %v; want 0 (only older ones go)", n, err)
	}
	if n, err := s.PruneDeltas(ctx, ds[0].CreatedAt.Add(time.Millisecond)); err != nil || n != 2 {
		t.Errorf("PruneDeltas(after them) = %d, %v; want 2", n, err)
	}
	if left, err := s.DeltasAfter(ctx, time.Time{}, "", 10); err != nil || len(left) != 0 {
		t.Errorf("after pruning: %d deltas (%v), want none", len(left), err)
	}
	// Pruned keys can be stored again (a table that only grows is the
	// thing pruning prevents, not a second life for a key).
	if n, err := s.AppendDeltas(ctx, ds[:1]); err != nil || n != 1 {
		t.Errorf("AppendDeltas after prune = %d, %v; want 1", n, err)
	}
}
