package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// DeltaReader brings reply fragments that any instance's dispatcher
// shared through the store (responder.Deltas) into a hub: how a reply
// produced in one process streams to sockets held by another. The
// instance's feed runs it in the same round as its events (Poller.Poll
// says why that order keeps every delta ahead of its reply's answer; a
// change-stream feed reads it before each event that EndsReply).
//
// Like the event poller it re-reads a window of recent rows every round,
// so a batch committed late (MongoDB writers commit out of order; clocks of
// writers differ) is still found; the hub drops what it has sent
// (Hub.PublishDelta keeps, per execution, the next index to send).
type DeltaReader struct {
	Store  responder.Deltas
	Hub    *Hub
	Batch  int           // rows per query, default DefaultPollBatch
	Window time.Duration // how late a batch may commit and still be read, default DefaultPollWindow

	mu    sync.Mutex
	floor time.Time // when the first read began: nothing older is read
	last  time.Time // when the previous read began (this instance's clock)
	skip  map[string]bool
}

func (r *DeltaReader) defaults() {
	if r.Batch <= 0 {
		r.Batch = DefaultPollBatch
	}
	if r.Window <= 0 {
		r.Window = DefaultPollWindow
	}
}

// Read publishes the fragments stored since the last read (re-reading the
// window). The first read only marks where the feed starts (this clock):
// fragments stored before belong to replies nobody here watched, and may
// have been answered already, so none older is ever read. Safe for
// concurrent use.
func (r *DeltaReader) Read(ctx context.Context) error {
	if r == nil || r.Store == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.defaults()
	// Read from Window before the previous read began, by this clock, not
	// from the newest row read: a quiet feed then stops re-reading old rows
	// (whose marks in the hub expire), and a writer whose clock is behind
	// by less than Window is still read.
	begin := time.Now()
	if r.floor.IsZero() {
		// Stores keep milliseconds: the rows of the floor's millisecond
		// that exist now are older than the feed; they are noted, to skip.
		r.floor = begin.Truncate(time.Millisecond)
		ds, err := r.Store.DeltasAfter(ctx, r.floor, "", r.Batch)
		if err != nil {
			r.floor = time.Time{}
			return fmt.Errorf("deltas after %v: %w", begin, err)
		}
		r.skip = map[string]bool{}
		for _, d := range ds {
			r.skip[d.ID] = true
		}
		r.last = begin
		return nil
	}
	at, after := r.last.Add(-r.Window), ""
	if at.Before(r.floor) {
		at = r.floor
	}
	if at.Truncate(time.Millisecond).After(r.floor) {
		r.skip = nil // the floor's millisecond is no longer read
	}
	for {
		ds, err := r.Store.DeltasAfter(ctx, at, after, r.Batch)
		if err != nil {
			return fmt.Errorf("deltas after %v: %w", at, err)
		}
		for _, d := range ds {
			if r.skip[d.ID] {
				continue
			}
			r.Hub.PublishDelta(d.UserID, Delta{OutboxID: d.OutboxID, ExecutionID: d.ExecutionID, Text: d.Text, Index: d.Index})
		}
		if len(ds) < r.Batch {
			break
		}
		at, after = ds[len(ds)-1].CreatedAt, ds[len(ds)-1].ID
	}
	r.last = begin
	return nil
}

// Run reads every interval until ctx is done: the deltas of a feed whose
// events come another way (a change stream), which calls Read itself
// before it publishes an event that ends a reply (EndsReply). Errors are
// logged; Run returns ctx's error.
func (r *DeltaReader) Run(ctx context.Context, interval time.Duration, log *slog.Logger) error {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := r.Read(ctx); err != nil && ctx.Err() == nil && log != nil {
			log.Warn("stream: read deltas", "err", err)
		}
	}
}

// EndsReply reports whether e is a reply's answer or its error: the event
// whose reply's deltas must all be published before it.
func EndsReply(e responder.Event) bool {
	return e.ExecutionID != "" && (e.Role == responder.RoleAssistant || e.Metadata["error"] == true)
}
