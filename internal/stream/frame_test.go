package stream

import (
	"sync/atomic"
	"testing"

	"github.com/astra-app/astra/internal/responder"
)

// TestFrameEncodedOncePerPublish: however many subscriptions a publish
// reaches, its bytes are made once and shared.
func TestFrameEncodedOncePerPublish(t *testing.T) {
	t.Parallel()
	h := NewHub(Options{})
	subs := make([]*Subscription, 50)
	for i := range subs {
		subs[i] = h.Subscribe("ada")
		defer subs[i].Close()
	}
	h.PublishEvent(responder.Event{ID: "e1", UserID: "ada", Seq: 1})
	h.PublishDelta("ada", Delta{OutboxID: "o1", Text: "hi", Index: 0})
	var calls atomic.Int64
	enc := func(f Frame) ([]byte, error) {
		calls.Add(1)
		if f.Event != nil {
			return []byte(f.Event.ID), nil
		}
		return []byte(f.Delta.Text), nil
	}
	for _, s := range subs {
		frames, _ := s.Drain()
		if len(frames) != 2 {
			t.Fatalf("%d frames, want 2", len(frames))
		}
		for i, want := range []string{"e1", "hi"} {
			b, err := frames[i].Encoded(enc)
			if err != nil || string(b) != want {
				t.Fatalf("frame %d: %q %v, want %q", i, b, err, want)
			}
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("encoded %d times for 2 publishes to 50 subscriptions", n)
	}
}

// TestMergeJoinsARunOfDeltas: consecutive fragments of one reply become
// one delta; anything else (another reply, a gap in the numbers, an event
// between) keeps them apart, and the order of everything is kept.
func TestMergeJoinsARunOfDeltas(t *testing.T) {
	t.Parallel()
	d := func(ob string, i int, text string) Frame {
		return Frame{Delta: &Delta{OutboxID: ob, ExecutionID: "x" + ob, Text: text, Index: i, Count: 1}}
	}
	ev := Frame{Event: &responder.Event{ID: "e"}}
	in := []Frame{
		d("a", 0, "Hel"), d("a", 1, "lo "), d("a", 2, "you"),
		d("b", 0, "Other"),
		d("a", 3, "!"), d("a", 5, "gap"),
		ev,
		d("a", 6, "x"), d("a", 7, "y"),
	}
	out := Merge(in)
	type want struct {
		ob, text     string
		index, count int
	}
	wants := []want{{"a", "Hello you", 0, 3}, {"b", "Other", 0, 1}, {"a", "!", 3, 1}, {"a", "gap", 5, 1}, {"", "", 0, 0}, {"a", "xy", 6, 2}}
	if len(out) != len(wants) {
		t.Fatalf("%d frames, want %d", len(out), len(wants))
	}
	for i, w := range wants {
		f := out[i]
		if w.ob == "" {
			if f.Event == nil || f.Event.ID != "e" {
				t.Fatalf("frame %d: %+v, want the event", i, f)
			}
			continue
		}
		if f.Delta == nil || f.Delta.OutboxID != w.ob || f.Delta.Text != w.text || f.Delta.Index != w.index || f.Delta.Count != w.count {
			t.Fatalf("frame %d: %+v, want %+v", i, f.Delta, w)
		}
	}
	// A merged delta merges again with what follows it.
	again := Merge([]Frame{out[0], d("a", 3, "!")})
	if len(again) != 1 || again[0].Delta.Text != "Hello you!" || again[0].Delta.Count != 4 {
		t.Fatalf("merge of a merged delta: %+v", again[0].Delta)
	}
	// The input is not changed.
	if in[0].Delta.Text != "Hel" || in[0].Delta.Count != 1 {
		t.Fatalf("input changed: %+v", in[0].Delta)
	}
}
