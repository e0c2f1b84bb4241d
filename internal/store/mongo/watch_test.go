package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
)

// These tests are internal to the package for the feeds' test hooks, which
// interrupt a stream and order writes around its reopening.

// openWatchStore opens a store on database db at uri; the first store of a
// test drops the database when the test ends.
func openWatchStore(t *testing.T, uri, db string) *Store {
	t.Helper()
	s, err := Open(t.Context(), uri, db, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Database().Drop(ctx)
		_ = s.Close()
	})
	return s
}

// warnSignal is a slog handler that reports each warning on a channel.
type warnSignal chan string

func (w warnSignal) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w warnSignal) Handle(_ context.Context, r slog.Record) error {
	select {
	case w <- r.Message:
	default:
	}
	return nil
}
func (w warnSignal) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w warnSignal) WithGroup(string) slog.Handler      { return w }

// hangGuard fails the test if f does not return within a generous bound:
// the point is "does not hang", not how fast.
func hangGuard(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s hangs", what)
		return nil
	}
}

func TestCheckChangeStreamsFerretDB(t *testing.T) {
	t.Parallel()
	s := openWatchStore(t, ferrettest.Start(t), "watch")

	// With a deadline (the driver then sends maxTimeMS, which trips FerretDB
	// up on some commands) and without one.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err := hangGuard(t, "CheckChangeStreams with a deadline", func() error { return s.CheckChangeStreams(ctx) })
	if err == nil {
		t.Fatal("CheckChangeStreams on FerretDB = nil, want unsupported")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CheckChangeStreams ran into its deadline instead of answering: %v", err)
	}
	t.Logf("unsupported because: %v", err)
	err = hangGuard(t, "CheckChangeStreams without a deadline", func() error { return s.CheckChangeStreams(context.Background()) })
	if err == nil {
		t.Fatal("CheckChangeStreams on FerretDB without a deadline = nil, want unsupported")
	}
}

// A feed on a server without change streams keeps retrying (and logging)
// instead of returning or spinning, and stops when its context ends.
func TestEventFeedRetriesUntilCancelledFerretDB(t *testing.T) {
	t.Parallel()
	s := openWatchStore(t, ferrettest.Start(t), "watch")
	warns := make(warnSignal, 8)
	var published atomic.Int64
	f := &EventFeed{Store: s, Publish: func(responder.Event) { published.Add(1) }, Logger: slog.New(warns)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	for range 2 { // two failed opens: it retried after the first
		select {
		case <-warns:
		case err := <-done:
			t.Fatalf("Run returned before its context ended: %v", err)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if n := published.Load(); n != 0 {
		t.Errorf("published %d events from a failing feed", n)
	}
}

// ---- real MongoDB (a replica set) ----

func replicaSetURI(t *testing.T) string {
	uri := os.Getenv("ASTRA_TEST_MONGODB_URI")
	if uri == "" {
		t.Skip("ASTRA_TEST_MONGODB_URI is not set: change streams need a real MongoDB replica set (FerretDB has none)")
	}
	return uri
}

// feedFixture is an EventFeed on one store and a writer on another store of
// the same database, as two instances would be.
type feedFixture struct {
	writer *Store
	got    chan responder.Event
	done   chan error
}

func startFeed(t *testing.T, hooks watchHooks) *feedFixture {
	t.Helper()
	uri := replicaSetURI(t)
	db := "watch_" + responder.NewID()
	feedStore := openWatchStore(t, uri, db)
	fx := &feedFixture{
		writer: openWatchStore(t, uri, db),
		got:    make(chan responder.Event, 256),
		done:   make(chan error, 1),
	}
	if err := feedStore.CheckChangeStreams(t.Context()); err != nil {
		t.Fatalf("ASTRA_TEST_MONGODB_URI has no change streams (is it a replica set?): %v", err)
	}
	opened := make(chan struct{})
	userOpened := hooks.opened
	var first atomic.Bool
	hooks.opened = func(cs *mongo.ChangeStream, stop func()) {
		if userOpened != nil {
			userOpened(cs, stop)
		}
		if !first.Swap(true) {
			close(opened)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	publish := func(e responder.Event) {
		select {
		case fx.got <- e:
		case <-ctx.Done(): // the test has stopped reading
		}
	}
	f := &EventFeed{Store: feedStore, Publish: publish, hooks: hooks}
	go func() { fx.done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-fx.done
	})
	select {
	case <-opened:
	case err := <-fx.done:
		t.Fatalf("feed stopped before opening: %v", err)
	}
	return fx
}

// appendN appends n events for user with keys prefix-0... and returns their ids.
func (fx *feedFixture) appendN(t *testing.T, user, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		e := &responder.Event{UserID: user, Role: responder.RoleAssistant, Content: fmt.Sprintf("%s %d", prefix, i),
			DedupeKey: fmt.Sprintf("%s-%d", prefix, i)}
		if _, err := fx.writer.AppendEvent(t.Context(), e); err != nil {
			t.Fatalf("append %s: %v", e.DedupeKey, err)
		}
		ids[i] = e.ID
	}
	return ids
}

// collectThrough reads published events until the one with id last arrives.
func (fx *feedFixture) collectThrough(t *testing.T, last string) []responder.Event {
	t.Helper()
	var evs []responder.Event
	for {
		select {
		case e := <-fx.got:
			evs = append(evs, e)
			if e.ID == last {
				return evs
			}
		case err := <-fx.done:
			t.Fatalf("feed stopped: %v (got %d events)", err, len(evs))
		case <-time.After(30 * time.Second):
			t.Fatalf("event %s never arrived (got %d events)", last, len(evs))
		}
	}
}

// checkOnceInOrder checks that got is exactly want: each event once, in the
// order the single writer committed them, decoded as the store reads them.
func checkOnceInOrder(t *testing.T, fx *feedFixture, user string, got []responder.Event, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	stored, err := fx.writer.UserEventsAfter(t.Context(), user, "", len(want)+1)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]responder.Event{}
	for _, e := range stored {
		byID[e.ID] = e
	}
	for i, e := range got {
		if e.ID != want[i] {
			t.Fatalf("event %d = %s, want %s", i, e.ID, want[i])
		}
		s := byID[e.ID]
		if e.UserID != s.UserID || e.Content != s.Content || e.DedupeKey != s.DedupeKey || !e.CreatedAt.Equal(s.CreatedAt) {
			t.Errorf("event %d published as %+v, stored as %+v", i, e, s)
		}
	}
}

func TestEventFeedMongoDB(t *testing.T) {
	t.Parallel()
	fx := startFeed(t, watchHooks{})
	user := responder.NewID()
	ids := fx.appendN(t, user, "a", 20)
	// A repeated append (same key) writes nothing, so publishes nothing.
	fx.appendN(t, user, "a", 1)
	ids = append(ids, fx.appendN(t, user, "end", 1)...)
	checkOnceInOrder(t, fx, user, fx.collectThrough(t, ids[len(ids)-1]), ids)
}

// The feed resumes after its stream fails without losing the events written
// while it was down: they are written after the first stream ended and
// before the second opened, so only the resume token can bring them.
func TestEventFeedResumesMongoDB(t *testing.T) {
	t.Parallel()
	stops := make(chan func(), 1)
	reopening := make(chan struct{})
	gapWritten := make(chan struct{})
	var opens atomic.Int64
	fx := startFeed(t, watchHooks{
		opening: func() {
			if opens.Add(1) == 2 {
				close(reopening)
				<-gapWritten
			}
		},
		opened: func(_ *mongo.ChangeStream, stop func()) {
			select {
			case stops <- stop:
			default:
			}
		},
	})
	// Registered after startFeed's cleanup, so it runs first: a failing
	// test must not leave the feed blocked in its hook.
	release := sync.OnceFunc(func() { close(gapWritten) })
	t.Cleanup(release)
	user := responder.NewID()
	before := fx.appendN(t, user, "before", 5)
	got := fx.collectThrough(t, before[len(before)-1])

	stop := <-stops
	stop() // the first stream fails, as on a network error
	select {
	case <-reopening:
	case err := <-fx.done:
		t.Fatalf("feed stopped instead of reopening: %v", err)
	}
	gap := fx.appendN(t, user, "gap", 5)
	release()
	after := fx.appendN(t, user, "after", 2)

	got = append(got, fx.collectThrough(t, after[len(after)-1])...)
	want := append(append(before, gap...), after...)
	checkOnceInOrder(t, fx, user, got, want)
}

func TestOutboxWakerMongoDB(t *testing.T) {
	t.Parallel()
	uri := replicaSetURI(t)
	db := "watch_" + responder.NewID()
	wakerStore := openWatchStore(t, uri, db)
	writer := openWatchStore(t, uri, db)

	wakes := make(chan struct{}, 64)
	opened := make(chan struct{}, 1)
	w := &OutboxWaker{
		Store: wakerStore,
		Wake: func() {
			select {
			case wakes <- struct{}{}:
			default:
			}
		},
		hooks: watchHooks{opened: func(*mongo.ChangeStream, func()) {
			select {
			case opened <- struct{}{}:
			default:
			}
		}},
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-opened:
	case err := <-done:
		t.Fatalf("waker stopped before opening: %v", err)
	}
	// Opening wakes once (inserts may have happened while it was down).
	drain := func() {
		for {
			select {
			case <-wakes:
			default:
				return
			}
		}
	}
	waitWake := func(what string) {
		t.Helper()
		select {
		case <-wakes:
		case err := <-done:
			t.Fatalf("waker stopped: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no wake after %s", what)
		}
	}
	drain()

	m := &responder.Message{UserID: responder.NewID(), Content: "hello"}
	if err := writer.Enqueue(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	waitWake("an insert")

	claimed, err := writer.Claim(t.Context(), "other", time.Minute, 0)
	if err != nil || claimed == nil {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	drain()
	if err := writer.Release(t.Context(), claimed.ID, "other", time.Now(), "retry"); err != nil {
		t.Fatal(err)
	}
	waitWake("a release back to pending")
}
