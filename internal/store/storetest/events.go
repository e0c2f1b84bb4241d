package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

func testAppendAndRead(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	u := userID()
	before := time.Now()
	e := &responder.Event{
		UserID: u, OutboxID: responder.NewID(), ExecutionID: "exec-1", Role: responder.RoleAssistant,
		Content: "hi there", Metadata: sampleMetadata(), DedupeKey: "exec-1:reply",
	}
	created, err := s.AppendEvent(ctx, e)
	if err != nil || !created {
		t.Fatalf("AppendEvent = %v, %v; want true, nil", created, err)
	}
	if !responder.ValidID(e.ID) {
		t.Errorf("AppendEvent set ID %q, want a 24-hex id", e.ID)
	}
	if e.CreatedAt.Before(ms(before)) || e.CreatedAt.After(time.Now()) || !e.CreatedAt.Equal(ms(e.CreatedAt)) {
		t.Errorf("AppendEvent set CreatedAt %v, want now at millisecond precision", e.CreatedAt)
	}
	plain := appendEvent(t, s, &responder.Event{UserID: u, Role: responder.RoleUser, Content: "question"})

	got, err := s.LatestEvents(ctx, u, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("LatestEvents returned %d events, want 2", len(got))
	}
	sameEvent(t, &got[0], e)
	sameEvent(t, &got[1], plain)
	if got[1].Metadata != nil {
		t.Errorf("nil metadata came back as %#v", got[1].Metadata)
	}
	last, err := s.LastEvent(ctx)
	if err != nil || last == nil {
		t.Fatalf("LastEvent = %v, %v", last, err)
	}
	sameEvent(t, last, plain)

	// A caller-chosen CreatedAt is kept (at millisecond precision, in UTC).
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
	old := appendEvent(t, s, &responder.Event{UserID: u, Content: "imported", CreatedAt: at})
	sameTime(t, "kept CreatedAt", old.CreatedAt, at)
	got, err = s.LatestEvents(ctx, u, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != old.ID {
		t.Fatalf("LatestEvents = %v, want the imported event first", eventIDs(got))
	}
	sameTime(t, "stored CreatedAt", got[0].CreatedAt, at)
}

func testDedupeSerial(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	u := userID()
	first := appendEvent(t, s, &responder.Event{UserID: u, Content: "first", DedupeKey: "exec-9:final"})
	dup := &responder.Event{UserID: u, Content: "second", DedupeKey: "exec-9:final", Role: responder.RoleSystem}
	created, err := s.AppendEvent(ctx, dup)
	if err != nil || created {
		t.Fatalf("duplicate AppendEvent = %v, %v; want false, nil", created, err)
	}
	sameEvent(t, dup, first)
	got, err := s.LatestEvents(ctx, u, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Content != "first" {
		t.Errorf("events after duplicate = %+v, want only the first", got)
	}
}

// testDedupeConcurrent races appenders with one key, as two dispatchers
// finishing the same execution would. A unique key is atomic in every
// backend, so this runs whatever opts.Concurrent says.
func testDedupeConcurrent(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	u := userID()
	const n = 8
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]*responder.Event, n)
		made    = make([]bool, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			e := &responder.Event{UserID: u, Role: responder.RoleAssistant, Content: fmt.Sprint("racer ", i), DedupeKey: "race"}
			made[i], errs[i] = s.AppendEvent(ctx, e)
			results[i] = e
		})
	}
	close(start)
	wg.Wait()
	createdCount := 0
	var winner string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if made[i] {
			createdCount++
			winner = results[i].Content
		}
	}
	if createdCount != 1 {
		t.Fatalf("%d racers created the event, want exactly 1", createdCount)
	}
	for i := range n {
		if results[i].ID != results[0].ID || results[i].Content != winner {
			t.Errorf("racer %d sees %s %q, want %s %q", i, results[i].ID, results[i].Content, results[0].ID, winner)
		}
	}
	got, err := s.LatestEvents(ctx, u, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != results[0].ID {
		t.Errorf("stored events = %v, want just %s", eventIDs(got), results[0].ID)
	}
}

func testDedupeKeyRequired(t *testing.T, s responder.Store, _ Options) {
	_, err := s.AppendEvent(t.Context(), &responder.Event{UserID: userID(), Role: responder.RoleUser, Content: "x"})
	wantCode(t, "AppendEvent without DedupeKey", err, responder.EINVALID)
}

// equalTimeEvents stores events of two users in an order unrelated to the
// documented one: many share one CreatedAt, and caller-chosen ids are
// appended in descending order, so only a backend that orders by
// (CreatedAt, ID) pages them correctly. It returns each user's events in
// the expected order and all of them.
func equalTimeEvents(t *testing.T, s responder.Store) (a, b, all []responder.Event, userA, userB string) {
	userA, userB = userID(), userID()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	add := func(user string, at time.Time, id string) {
		e := appendEvent(t, s, &responder.Event{ID: id, UserID: user, Content: "c", CreatedAt: at})
		all = append(all, *e)
	}
	for i := range 5 { // later events first
		add(userA, t0.Add(time.Duration(i+1)*time.Millisecond), "")
	}
	var desc []string
	for range 30 {
		desc = append(desc, responder.NewID())
	}
	slices.Sort(desc)
	slices.Reverse(desc)
	for i, id := range desc { // same time, descending ids, two users interleaved
		user := userA
		if i%3 == 0 {
			user = userB
		}
		add(user, t0, id)
	}
	for i := range 40 { // same time, store-chosen ids
		user := userA
		if i%4 == 0 {
			user = userB
		}
		add(user, t0, "")
	}
	for range 5 { // earlier events last
		add(userA, t0.Add(-time.Millisecond), "")
		add(userB, t0.Add(-time.Second), "")
	}
	slices.SortFunc(all, func(x, y responder.Event) int {
		if eventBefore(x, y) {
			return -1
		}
		return 1
	})
	for _, e := range all {
		if e.UserID == userA {
			a = append(a, e)
		} else {
			b = append(b, e)
		}
	}
	return a, b, all, userA, userB
}

func testCursorPagingEqualTimes(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	a, b, all, userA, userB := equalTimeEvents(t, s)

	page := func(what string, want []responder.Event, size int, next func(after string, limit int) ([]responder.Event, error)) {
		t.Helper()
		var got []responder.Event
		after := ""
		for range len(want) + 2 {
			p, err := next(after, size)
			if err != nil {
				t.Fatalf("%s after %q: %v", what, after, err)
			}
			if len(p) > size {
				t.Fatalf("%s returned %d events, limit %d", what, len(p), size)
			}
			if len(p) == 0 {
				break
			}
			got = append(got, p...)
			after = p[len(p)-1].ID
		}
		if !slices.Equal(eventIDs(got), eventIDs(want)) {
			t.Errorf("%s paged %d events, want %d in (CreatedAt, ID) order\n got %v\nwant %v",
				what, len(got), len(want), eventIDs(got), eventIDs(want))
		}
	}
	for _, size := range []int{1, 7, 50} {
		page(fmt.Sprint("UserEventsAfter(a, ", size, ")"), a, size, func(after string, limit int) ([]responder.Event, error) {
			return s.UserEventsAfter(ctx, userA, after, limit)
		})
		page(fmt.Sprint("UserEventsAfter(b, ", size, ")"), b, size, func(after string, limit int) ([]responder.Event, error) {
			return s.UserEventsAfter(ctx, userB, after, limit)
		})
		page(fmt.Sprint("EventsAfter(", size, ")"), all, size, func(after string, limit int) ([]responder.Event, error) {
			return s.EventsAfter(ctx, after, limit)
		})
	}

	// Resuming from the middle of a tie gives exactly the rest.
	mid := len(all) / 2
	rest, err := s.EventsAfter(ctx, all[mid].ID, len(all))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(eventIDs(rest), eventIDs(all[mid+1:])) {
		t.Errorf("EventsAfter(middle) = %v, want %v", eventIDs(rest), eventIDs(all[mid+1:]))
	}
	last, err := s.UserEventsAfter(ctx, userA, a[len(a)-1].ID, 10)
	if err != nil || len(last) != 0 {
		t.Errorf("UserEventsAfter(last) = %v, %v; want empty", eventIDs(last), err)
	}
}

func testLatestEvents(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	a, _, _, userA, _ := equalTimeEvents(t, s)
	for _, n := range []int{1, 10, 25, len(a), len(a) + 10} {
		got, err := s.LatestEvents(ctx, userA, n)
		if err != nil {
			t.Fatal(err)
		}
		want := a[max(0, len(a)-n):]
		if !slices.Equal(eventIDs(got), eventIDs(want)) {
			t.Errorf("LatestEvents(a, %d) = %v, want the newest %d oldest first: %v", n, eventIDs(got), len(want), eventIDs(want))
		}
	}
	none, err := s.LatestEvents(ctx, userID(), 10)
	if err != nil || len(none) != 0 {
		t.Errorf("LatestEvents(unknown user) = %v, %v; want empty", none, err)
	}
}

func testLastEvent(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	if e, err := s.LastEvent(ctx); err != nil || e != nil {
		t.Fatalf("LastEvent on empty store = %v, %v; want nil, nil", e, err)
	}
	_, _, all, _, _ := equalTimeEvents(t, s)
	e, err := s.LastEvent(ctx)
	if err != nil || e == nil {
		t.Fatalf("LastEvent = %v, %v", e, err)
	}
	sameEvent(t, e, &all[len(all)-1])

	// An event stored now (after 2025) is the new last.
	now := appendEvent(t, s, &responder.Event{UserID: userID(), Content: "now"})
	e, err = s.LastEvent(ctx)
	if err != nil || e == nil || e.ID != now.ID {
		t.Fatalf("LastEvent = %v, %v; want %s", e, err, now.ID)
	}
}

// testUserIsolation: one person never sees another's rows, and cannot use
// another's event as a cursor to read past it.
func testUserIsolation(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	a, b := userID(), userID()
	ma := enqueue(t, s, a, "mine")
	enqueue(t, s, b, "theirs")
	ea := appendEvent(t, s, &responder.Event{UserID: a, Content: "for a"})
	eb := appendEvent(t, s, &responder.Event{UserID: b, Content: "for b"})
	appendEvent(t, s, &responder.Event{UserID: b, Content: "for b again"})

	msgs, err := s.UserMessages(ctx, a, 10)
	if err != nil || len(msgs) != 1 || msgs[0].ID != ma.ID {
		t.Errorf("UserMessages(a) = %v, %v; want only %s", messageIDs(msgs), err, ma.ID)
	}
	evs, err := s.LatestEvents(ctx, a, 10)
	if err != nil || len(evs) != 1 || evs[0].ID != ea.ID {
		t.Errorf("LatestEvents(a) = %v, %v; want only %s", eventIDs(evs), err, ea.ID)
	}
	evs, err = s.UserEventsAfter(ctx, a, "", 10)
	if err != nil || len(evs) != 1 || evs[0].ID != ea.ID {
		t.Errorf("UserEventsAfter(a, \"\") = %v, %v; want only %s", eventIDs(evs), err, ea.ID)
	}
	evs, err = s.UserEventsAfter(ctx, a, eb.ID, 10)
	wantCode(t, "UserEventsAfter(a, b's event)", err, responder.ENOTFOUND)
	if len(evs) != 0 {
		t.Errorf("UserEventsAfter(a, b's event) leaked %v", eventIDs(evs))
	}
	all, err := s.EventsAfter(ctx, "", 10)
	if err != nil || len(all) != 3 {
		t.Errorf("EventsAfter(\"\") = %v, %v; want all 3", eventIDs(all), err)
	}
}

func testEventsNotFound(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	u := userID()
	appendEvent(t, s, &responder.Event{UserID: u, Content: "x"})
	for _, id := range badIDs {
		if id == "" {
			continue // empty means from the beginning
		}
		_, err := s.UserEventsAfter(ctx, u, id, 10)
		wantCode(t, fmt.Sprintf("UserEventsAfter(%q)", id), err, responder.ENOTFOUND)
		_, err = s.EventsAfter(ctx, id, 10)
		wantCode(t, fmt.Sprintf("EventsAfter(%q)", id), err, responder.ENOTFOUND)
	}
}
