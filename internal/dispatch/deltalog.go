package dispatch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// DefaultDeltaFlush is Options.DeltaFlush's default (the sockets' pace).
const DefaultDeltaFlush = 20 * time.Millisecond

// deltaLog shares the relayed deltas of every row this dispatcher works
// on through the store (responder.Deltas), so the feed of every instance,
// whichever holds the person's sockets, relays them too. The deltas that
// arrive within one flush interval, of all rows, go in one write; the
// writes are serial, so a reply's batches commit in order. Old rows are
// pruned by age here too (nothing else writes the table).
type deltaLog struct {
	store responder.Deltas
	every time.Duration
	log   *slog.Logger

	mu    sync.Mutex
	batch []responder.Delta
	done  chan struct{} // closed once batch is written (or given up)

	wmu    sync.Mutex // one write at a time
	pruned time.Time
}

// add queues d for the next write and returns a channel closed once that
// write is done. The first delta of a batch schedules its write.
func (l *deltaLog) add(d responder.Delta) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		l.done = make(chan struct{})
		time.AfterFunc(l.every, l.flush)
	}
	l.batch = append(l.batch, d)
	return l.done
}

func (l *deltaLog) flush() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	batch, done := l.batch, l.done
	l.batch, l.done = nil, nil
	l.mu.Unlock()
	if done == nil {
		return
	}
	defer close(done)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(batch) > 0 {
		n := min(len(batch), responder.MaxDeltaBatch)
		if _, err := l.store.AppendDeltas(ctx, batch[:n]); err != nil {
			// Deltas are a preview: the answer event carries the whole
			// text, so a lost batch costs other instances' sockets some
			// fragments, never the answer.
			l.log.Warn("deltas not shared with other instances", "deltas", n, "err", err)
		}
		batch = batch[n:]
	}
	// The store stamps rows with the real clock, so pruning uses it too
	// (not Options.Now, which tests may move).
	if now := time.Now(); now.Sub(l.pruned) >= responder.DeltaKeep/4 {
		l.pruned = now
		if _, err := l.store.PruneDeltas(ctx, now.Add(-responder.DeltaKeep)); err != nil {
			l.log.Warn("prune shared deltas", "err", err)
		}
	}
}
