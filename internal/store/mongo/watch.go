package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/responder"
)

// Change streams (ARCHITECTURE.md decisions 4 and 5): where MongoDB has
// them, one stream per instance on responder_events feeds the live hub, and
// one on responder_outbox wakes the dispatcher. Both keep the resume token
// of the last change they handled and reopen after it when the stream
// fails, so writes made while the stream was down are still seen.

// Backoff between attempts to reopen a failed change stream.
const (
	minWatchBackoff     = 250 * time.Millisecond
	DefaultWatchBackoff = 10 * time.Second // the cap
)

// CheckChangeStreams reports whether change streams work on this server:
// nil on a replica set or sharded cluster where a stream on responder_events
// opens, else an error saying why not. A standalone server and FerretDB have
// none, and say so at once (FerretDB's hello names no replica set; it also
// refuses $changeStream quickly, with or without a deadline). Decide once at
// start: the answer does not change while a deployment runs.
func (s *Store) CheckChangeStreams(ctx context.Context) error {
	var hello struct {
		SetName string `bson:"setName"`
		Msg     string `bson:"msg"`
	}
	if err := s.db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return fmt.Errorf("ask the server for its topology: %w", err)
	}
	if hello.SetName == "" && hello.Msg != "isdbgrid" {
		return errors.New("the server is neither a replica set member nor a mongos")
	}
	// A replica set can still refuse, e.g. a user without the changeStream
	// privilege; opening one is the only real test.
	cs, err := s.events.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		return fmt.Errorf("open a change stream on %s: %w", eventsCollection, err)
	}
	_ = cs.Close(context.WithoutCancel(ctx))
	return nil
}

// EventFeed publishes every event inserted into (or rewritten in)
// responder_events, by any instance, as the store reads it. It satisfies
// stream.Feed: one per instance, never one per socket. Like the poller it
// starts at "now": history is the socket's job. An event may be published
// twice (after a resume, or by the in-process publisher too); each hub
// subscription drops what it has taken already, by the event's place in
// its user's order.
type EventFeed struct {
	Store   *Store
	Publish func(responder.Event)
	Logger  *slog.Logger
	// MaxBackoff caps the wait between reopen attempts; default DefaultWatchBackoff.
	MaxBackoff time.Duration

	hooks watchHooks
}

// Run follows the change stream until ctx is done and returns ctx's error.
// Stream errors are logged and the stream reopened after the last change
// it delivered, with capped exponential backoff.
func (f *EventFeed) Run(ctx context.Context) error {
	w := watcher{
		coll: f.Store.events,
		what: "event feed",
		pipeline: mongo.Pipeline{{{Key: "$match", Value: bson.D{
			{Key: "operationType", Value: bson.D{{Key: "$in", Value: bson.A{"insert", "update", "replace"}}}},
		}}}},
		lookup:     true,
		log:        f.Logger,
		maxBackoff: f.MaxBackoff,
		hooks:      f.hooks,
		handle: func(raw bson.Raw) error {
			var ch struct {
				FullDocument *eventDoc `bson:"fullDocument"`
			}
			if err := bson.Unmarshal(raw, &ch); err != nil {
				return fmt.Errorf("decode event change: %w", err)
			}
			// Nil when the event was deleted before its update was looked up.
			if ch.FullDocument != nil {
				f.Publish(ch.FullDocument.event())
			}
			return nil
		},
	}
	return w.run(ctx)
}

// OutboxWaker calls Wake when a row becomes claimable in responder_outbox:
// on an insert, and on an update or replace that makes a row pending again
// (a release by another instance). The dispatcher's sweep stays the safety
// net; this makes a message enqueued by another instance start at once.
type OutboxWaker struct {
	Store  *Store
	Wake   func()
	Logger *slog.Logger
	// MaxBackoff caps the wait between reopen attempts; default DefaultWatchBackoff.
	MaxBackoff time.Duration

	hooks watchHooks
}

// Run follows the change stream until ctx is done and returns ctx's error.
// It also wakes after every (re)open, since a gap the resume token could
// not cover may have held inserts; a needless wake costs one claim query.
func (o *OutboxWaker) Run(ctx context.Context) error {
	pending := string(responder.StatusPending)
	w := watcher{
		coll: o.Store.outbox,
		what: "outbox waker",
		pipeline: mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "operationType", Value: "insert"}},
			bson.D{{Key: "operationType", Value: "update"}, {Key: "updateDescription.updatedFields.status", Value: pending}},
			bson.D{{Key: "operationType", Value: "replace"}, {Key: "fullDocument.status", Value: pending}},
		}}}}}},
		log:        o.Logger,
		maxBackoff: o.MaxBackoff,
		hooks:      o.hooks,
		onOpen:     o.Wake,
		handle:     func(bson.Raw) error { o.Wake(); return nil },
	}
	return w.run(ctx)
}

// watcher is the resume loop both feeds share.
type watcher struct {
	coll       *mongo.Collection
	what       string
	pipeline   mongo.Pipeline
	lookup     bool // fullDocument: updateLookup
	handle     func(bson.Raw) error
	onOpen     func() // after each successful open
	log        *slog.Logger
	maxBackoff time.Duration
	hooks      watchHooks

	token bson.Raw // resume token of the last change handled (or the stream's start)
}

func (w *watcher) run(ctx context.Context) error {
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.maxBackoff <= 0 {
		w.maxBackoff = DefaultWatchBackoff
	}
	backoff := minWatchBackoff
	for {
		opened, err := w.follow(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if opened {
			backoff = minWatchBackoff
		}
		w.log.Warn(w.what+": change stream failed; reopening", "err", err, "in", backoff, "resume", w.token != nil)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, w.maxBackoff)
	}
}

// follow opens the stream after w.token and handles changes until it
// fails. It always returns an error (ctx's when ctx ended), and whether
// the stream opened at all.
func (w *watcher) follow(ctx context.Context) (opened bool, err error) {
	opts := options.ChangeStream()
	if w.lookup {
		opts.SetFullDocument(options.UpdateLookup)
	}
	if w.token != nil {
		// startAfter, unlike resumeAfter, also works after an invalidate
		// (the collection was dropped or renamed).
		opts.SetStartAfter(w.token)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	if w.hooks.opening != nil {
		w.hooks.opening()
	}
	cs, err := w.coll.Watch(sctx, w.pipeline, opts)
	if err != nil {
		if w.token != nil && historyLost(err) {
			w.log.Warn(w.what+": the resume point is gone from the oplog; starting from now (changes in the gap are missed)", "err", err)
			w.token = nil
		}
		return false, fmt.Errorf("open change stream on %s: %w", w.coll.Name(), err)
	}
	defer cs.Close(context.WithoutCancel(ctx))
	// The stream's start point: resuming from it loses nothing even if no
	// change arrives before the first failure.
	w.keep(cs.ResumeToken())
	if w.onOpen != nil {
		w.onOpen()
	}
	if w.hooks.opened != nil {
		w.hooks.opened(cs, stop)
	}
	for cs.Next(sctx) {
		if err := w.handle(cs.Current); err != nil {
			// A change we cannot read is skipped, not retried forever.
			w.log.Warn(w.what+": skipped a change", "err", err)
		}
		w.keep(cs.ResumeToken())
	}
	w.keep(cs.ResumeToken()) // an empty getMore can still advance it
	if err := cs.Err(); err != nil {
		return true, fmt.Errorf("follow change stream on %s: %w", w.coll.Name(), err)
	}
	return true, fmt.Errorf("change stream on %s ended", w.coll.Name())
}

// keep remembers a resume token, copied out of the driver's batch buffer.
func (w *watcher) keep(t bson.Raw) {
	if t != nil {
		w.token = slices.Clone(t)
	}
}

// watchHooks let tests interrupt a stream and order writes around its
// reopening. Both run on the feed's goroutine.
type watchHooks struct {
	opening func()                                    // before each Watch
	opened  func(cs *mongo.ChangeStream, stop func()) // after each open, before the first Next; stop ends this stream as a failure would
}

// historyLost reports a resume point the server can no longer resume from.
func historyLost(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && (se.HasErrorCode(286) || // ChangeStreamHistoryLost
		se.HasErrorCode(280) || // ChangeStreamFatalError
		se.HasErrorCode(260)) // InvalidResumeToken
}
