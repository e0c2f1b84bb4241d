package stream

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// TestPollerSendsDeltasBeforeTheirAnswer: another instance's dispatcher
// shares each reply's deltas through the store, in batches, then appends
// the answer; a poller on the same store, polling all the while, must
// bring the subscriber every delta of every reply, once, in order, and
// before that reply's answer.
func TestPollerSendsDeltasBeforeTheirAnswer(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	hub := NewHub(Options{Buffer: 100000})
	sub := hub.Subscribe("ada")
	defer sub.Close()
	p := &Poller{Store: st, Hub: hub, Deltas: &DeltaReader{Store: st, Hub: hub}}
	ctx := t.Context()
	if err := p.Poll(ctx); err != nil { // where the feed starts
		t.Fatal(err)
	}

	const replies, batches, perBatch = 30, 3, 4
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if err := p.Poll(ctx); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-done:
				// One more round reads whatever the last poll missed.
				if err := p.Poll(ctx); err != nil {
					t.Error(err)
				}
				return
			default:
			}
		}
	}()
	for r := range replies {
		exec := fmt.Sprintf("exec-%02d", r)
		for b := range batches {
			var ds []responder.Delta
			for i := range perBatch {
				n := b*perBatch + i
				ds = append(ds, responder.Delta{UserID: "ada", ExecutionID: exec, Index: n, Text: fmt.Sprintf("%s.%d ", exec, n)})
			}
			if _, err := st.AppendDeltas(ctx, ds); err != nil {
				t.Fatal(err)
			}
		}
		e := &responder.Event{UserID: "ada", ExecutionID: exec, Role: responder.RoleAssistant, Content: exec, DedupeKey: exec}
		if _, err := st.AppendEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()

	got := receive(t, sub, replies*(batches*perBatch+1))
	next := map[string]int{}
	answered := map[string]bool{}
	for _, f := range got {
		switch {
		case f.Delta != nil:
			d := f.Delta
			if answered[d.ExecutionID] {
				t.Fatalf("delta %s/%d after its answer", d.ExecutionID, d.Index)
			}
			if d.Index != next[d.ExecutionID] || d.Text != fmt.Sprintf("%s.%d ", d.ExecutionID, d.Index) {
				t.Fatalf("delta %s/%d %q, want index %d", d.ExecutionID, d.Index, d.Text, next[d.ExecutionID])
			}
			next[d.ExecutionID]++
		case f.Event != nil:
			x := f.Event.ExecutionID
			if next[x] != batches*perBatch {
				t.Fatalf("answer of %s after %d of its %d deltas", x, next[x], batches*perBatch)
			}
			answered[x] = true
		}
	}
	if len(answered) != replies {
		t.Fatalf("%d answers, want %d", len(answered), replies)
	}
	if n := sub.Len(); n != 0 {
		t.Errorf("%d frames more than expected (repeats)", n)
	}
}

// TestHubSendsADeltaOnce: in one process the dispatcher's relay publishes
// a delta and the feed then reads it back from the store; the socket gets
// it once. None goes out after its reply's answer.
func TestHubSendsADeltaOnce(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	hub := NewHub(Options{})
	sub := hub.Subscribe("ada")
	defer sub.Close()
	r := &DeltaReader{Store: st, Hub: hub}
	ctx := t.Context()
	if err := r.Read(ctx); err != nil {
		t.Fatal(err)
	}
	var ds []responder.Delta
	for i := range 5 {
		d := responder.Delta{UserID: "ada", OutboxID: "o1", ExecutionID: "x1", Index: i, Text: fmt.Sprint(i)}
		hub.PublishDelta("ada", Delta{OutboxID: d.OutboxID, ExecutionID: d.ExecutionID, Index: d.Index, Text: d.Text})
		ds = append(ds, d)
	}
	// The store has one more than the relay published here (another
	// dispatcher took the row over).
	ds = append(ds, responder.Delta{UserID: "ada", OutboxID: "o1", ExecutionID: "x1", Index: 5, Text: "5"})
	if _, err := st.AppendDeltas(ctx, ds); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second read re-reads the window
		if err := r.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	hub.PublishEvent(responder.Event{ID: responder.NewID(), UserID: "ada", ExecutionID: "x1", Role: responder.RoleAssistant, Content: "012345", Seq: 1})
	if hub.PublishDelta("ada", Delta{ExecutionID: "x1", Index: 6, Text: "late"}) {
		t.Error("a delta after its answer was sent")
	}
	frames, _ := sub.Drain()
	var b strings.Builder
	for _, f := range frames {
		switch {
		case f.Delta != nil:
			b.WriteString(f.Delta.Text)
		case f.Event != nil:
			b.WriteString("|answer")
		}
	}
	if got, want := b.String(), "012345|answer"; got != want {
		t.Errorf("frames %q, want %q", got, want)
	}
	if st := hub.Stats(); st.DeltaRepeats != 12 {
		t.Errorf("DeltaRepeats = %d, want 12 (5 read back, 6 re-read in the window, 1 late)", st.DeltaRepeats)
	}
}

// TestDeltaReaderSkipsWhatCameBefore: deltas stored before the feed's
// first read belong to replies nobody here watched; and a quiet feed does
// not send old rows again once the hub has forgotten them.
func TestDeltaReaderSkipsWhatCameBefore(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	hub := NewHub(Options{})
	sub := hub.Subscribe("ada")
	defer sub.Close()
	ctx := t.Context()
	if _, err := st.AppendDeltas(ctx, []responder.Delta{{UserID: "ada", ExecutionID: "old", Text: "before"}}); err != nil {
		t.Fatal(err)
	}
	r := &DeltaReader{Store: st, Hub: hub, Window: 50 * time.Millisecond}
	if err := r.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sub.Len(); n != 0 {
		t.Fatalf("first read sent %d frames, want none", n)
	}
	if _, err := st.AppendDeltas(ctx, []responder.Delta{{UserID: "ada", ExecutionID: "new", Text: "after"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Read(ctx); err != nil {
		t.Fatal(err)
	}
	// A read past the window re-reads what was new at the read before
	// (the hub drops it); once the hub has forgotten its marks, the reads
	// after that find nothing.
	time.Sleep(120 * time.Millisecond) // past the 50ms window
	if err := r.Read(ctx); err != nil {
		t.Fatal(err)
	}
	hub.rmu.Lock()
	hub.replies = nil
	hub.rmu.Unlock()
	for range 2 {
		if err := r.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	frames, _ := sub.Drain()
	if len(frames) != 1 || frames[0].Delta == nil || frames[0].Delta.Text != "after" {
		t.Fatalf("frames %+v, want the one delta stored after the first read", frames)
	}
}
