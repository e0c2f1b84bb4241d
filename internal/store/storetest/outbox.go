package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

func testEnqueueAndGet(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	before := time.Now()
	m := &responder.Message{UserID: userID(), Content: "hello", Status: responder.StatusDelivered, Attempts: 7}
	if err := s.Enqueue(ctx, m); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if !responder.ValidID(m.ID) {
		t.Errorf("Enqueue set ID %q, want a 24-hex id", m.ID)
	}
	if m.Status != responder.StatusPending || m.Attempts != 0 {
		t.Errorf("Enqueue set Status %q Attempts %d, want pending 0", m.Status, m.Attempts)
	}
	if m.CreatedAt.Before(ms(before)) || m.CreatedAt.After(time.Now()) || !m.UpdatedAt.Equal(m.CreatedAt) {
		t.Errorf("Enqueue set CreatedAt %v UpdatedAt %v, want now (after %v)", m.CreatedAt, m.UpdatedAt, before)
	}
	if !m.CreatedAt.Equal(ms(m.CreatedAt)) {
		t.Errorf("CreatedAt %v is not at millisecond precision", m.CreatedAt)
	}
	got := mustMessage(t, s, m.ID)
	sameMessage(t, got, m)

	// A caller-chosen id is kept.
	id := responder.NewID()
	m2 := &responder.Message{ID: id, UserID: m.UserID, Content: "second"}
	if err := s.Enqueue(ctx, m2); err != nil {
		t.Fatalf("Enqueue with id: %v", err)
	}
	if m2.ID != id {
		t.Errorf("Enqueue replaced id %s with %s", id, m2.ID)
	}
	sameMessage(t, mustMessage(t, s, id), m2)
}

func testClaimOldestFirst(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	if m, err := s.Claim(ctx, "w1", time.Minute, 0); err != nil || m != nil {
		t.Fatalf("Claim on empty outbox = %v, %v; want nil, nil", m, err)
	}
	u := userID()
	var want []string
	for i := range 3 {
		want = append(want, enqueue(t, s, u, fmt.Sprint("m", i)).ID)
	}
	for i, id := range want {
		before := time.Now()
		c := mustClaim(t, s, "w1", time.Minute)
		if c.ID != id {
			t.Errorf("claim %d got %s, want oldest %s", i, c.ID, id)
		}
		if c.Status != responder.StatusProcessing || c.LeaseOwner != "w1" || c.Attempts != 1 {
			t.Errorf("claimed row = %+v, want processing, owner w1, attempts 1", *c)
		}
		if c.LeaseUntil.Before(ms(before.Add(time.Minute))) || c.LeaseUntil.After(time.Now().Add(time.Minute)) {
			t.Errorf("LeaseUntil = %v, want about now+1m", c.LeaseUntil)
		}
		sameMessage(t, mustMessage(t, s, c.ID), c)
	}
	if m, err := s.Claim(ctx, "w1", time.Minute, 0); err != nil || m != nil {
		t.Fatalf("Claim with every row leased = %v, %v; want nil, nil", m, err)
	}
}

// testClaimEachRowOnce is the outbox's central promise: however many
// dispatchers race, each row is taken by exactly one of them.
func testClaimEachRowOnce(t *testing.T, s responder.Store, opts Options) {
	ctx := t.Context()
	rows, claimers := 500, 8
	if !opts.Concurrent {
		rows = 200
	}
	want := make(map[string]bool, rows)
	for i := range rows {
		want[enqueue(t, s, userID(), fmt.Sprint("row ", i)).ID] = true
	}

	var (
		mu      sync.Mutex
		claimed = make(map[string][]string) // row id -> owners
	)
	claimAll := func(owner string) error {
		for {
			m, err := s.Claim(ctx, owner, time.Hour, 0)
			if err != nil {
				return fmt.Errorf("claim by %s: %w", owner, err)
			}
			if m == nil {
				return nil
			}
			if m.LeaseOwner != owner || m.Attempts != 1 {
				return fmt.Errorf("claim by %s returned owner %q attempts %d", owner, m.LeaseOwner, m.Attempts)
			}
			mu.Lock()
			claimed[m.ID] = append(claimed[m.ID], owner)
			mu.Unlock()
			if !opts.Concurrent {
				return nil // one claim per turn, so owners alternate
			}
		}
	}
	if opts.Concurrent {
		var wg sync.WaitGroup
		errs := make(chan error, claimers)
		for i := range claimers {
			wg.Go(func() { errs <- claimAll(fmt.Sprint("w", i)) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	} else {
		for i := 0; len(claimed) < rows && i < 2*rows; i++ {
			if err := claimAll(fmt.Sprint("w", i%claimers)); err != nil {
				t.Fatal(err)
			}
		}
	}

	if len(claimed) != rows {
		t.Errorf("claimed %d distinct rows, want %d", len(claimed), rows)
	}
	for id, owners := range claimed {
		if !want[id] {
			t.Errorf("claimed unknown row %s", id)
		}
		if len(owners) != 1 {
			t.Errorf("row %s claimed %d times, by %v", id, len(owners), owners)
		}
	}
	if m, err := s.Claim(ctx, "late", time.Hour, 0); err != nil || m != nil {
		t.Errorf("Claim after all were taken = %v, %v; want nil, nil", m, err)
	}
	counts, err := s.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[responder.StatusProcessing] != rows || counts[responder.StatusPending] != 0 {
		t.Errorf("CountByStatus = %v, want %d processing", counts, rows)
	}
}

func testLeaseExpiryReclaim(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	m := enqueue(t, s, userID(), "slow")
	a := mustClaim(t, s, "old", time.Millisecond)
	if a.ID != m.ID {
		t.Fatalf("claimed %s, want %s", a.ID, m.ID)
	}

	var b *responder.Message
	eventually(t, "the expired lease to be reclaimed", func() bool {
		var err error
		b, err = s.Claim(ctx, "new", time.Hour, 0)
		if err != nil {
			t.Fatalf("Claim(new): %v", err)
		}
		return b != nil
	})
	if b.ID != m.ID || b.LeaseOwner != "new" || b.Attempts != 2 || b.Status != responder.StatusProcessing {
		t.Fatalf("reclaimed row = %+v, want %s owned by new with attempts 2", *b, m.ID)
	}

	// The old owner lost the row: everything it tries now conflicts and
	// changes nothing.
	wantCode(t, "old Deliver", s.Deliver(ctx, m.ID, "old"), responder.ECONFLICT)
	wantCode(t, "old Fail", s.Fail(ctx, m.ID, "old", "boom"), responder.ECONFLICT)
	wantCode(t, "old ExtendLease", s.ExtendLease(ctx, m.ID, "old", time.Hour), responder.ECONFLICT)
	wantCode(t, "old Release", s.Release(ctx, m.ID, "old", time.Now(), "again"), responder.ECONFLICT)
	wantCode(t, "old SetExecution", s.SetExecution(ctx, m.ID, "old", "exec-old"), responder.ECONFLICT)
	wantCode(t, "old SetJulepUser", s.SetJulepUser(ctx, m.ID, "old", "ju-old"), responder.ECONFLICT)
	sameMessage(t, mustMessage(t, s, m.ID), b)

	if err := s.Deliver(ctx, m.ID, "new"); err != nil {
		t.Fatalf("new owner Deliver: %v", err)
	}
	if got := mustMessage(t, s, m.ID); got.Status != responder.StatusDelivered {
		t.Errorf("status after Deliver = %q", got.Status)
	}
}

func testOnlyOwnerCompletes(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	u := userID()
	toDeliver := enqueue(t, s, u, "to deliver")
	toFail := enqueue(t, s, u, "doomed")
	pending := enqueue(t, s, u, "never claimed yet")
	wantCode(t, "Deliver of a pending row", s.Deliver(ctx, pending.ID, "w1"), responder.ECONFLICT)
	wantCode(t, "Fail of a pending row", s.Fail(ctx, pending.ID, "w1", "x"), responder.ECONFLICT)
	sameMessage(t, mustMessage(t, s, pending.ID), pending)

	// Deliver.
	c := mustClaim(t, s, "w1", time.Hour)
	if c.ID != toDeliver.ID {
		t.Fatalf("claimed %s, want the oldest %s", c.ID, toDeliver.ID)
	}
	wantCode(t, "non-owner Deliver", s.Deliver(ctx, c.ID, "w2"), responder.ECONFLICT)
	wantCode(t, "non-owner Fail", s.Fail(ctx, c.ID, "w2", "x"), responder.ECONFLICT)
	wantCode(t, "non-owner Release", s.Release(ctx, c.ID, "w2", time.Now(), "x"), responder.ECONFLICT)
	sameMessage(t, mustMessage(t, s, c.ID), c)

	before := time.Now()
	if err := s.Deliver(ctx, c.ID, "w1"); err != nil {
		t.Fatalf("owner Deliver: %v", err)
	}
	d := mustMessage(t, s, c.ID)
	if d.Status != responder.StatusDelivered || d.LeaseOwner != "" || !d.LeaseUntil.IsZero() || d.Attempts != 1 {
		t.Errorf("delivered row = %+v, want delivered, lease cleared, attempts 1", *d)
	}
	if d.DeliveredAt.Before(ms(before)) || d.UpdatedAt.Before(ms(before)) {
		t.Errorf("DeliveredAt %v UpdatedAt %v, want >= %v", d.DeliveredAt, d.UpdatedAt, before)
	}
	wantCode(t, "second Deliver", s.Deliver(ctx, c.ID, "w1"), responder.ECONFLICT)
	wantCode(t, "Fail after Deliver", s.Fail(ctx, c.ID, "w1", "late"), responder.ECONFLICT)

	// Fail.
	c2 := mustClaim(t, s, "w1", time.Hour)
	if c2.ID != toFail.ID {
		t.Fatalf("claimed %s, want %s", c2.ID, toFail.ID)
	}
	if err := s.Fail(ctx, c2.ID, "w1", "julep said no"); err != nil {
		t.Fatalf("owner Fail: %v", err)
	}
	f := mustMessage(t, s, c2.ID)
	if f.Status != responder.StatusError || f.LastError != "julep said no" || f.LeaseOwner != "" || !f.LeaseUntil.IsZero() {
		t.Errorf("failed row = %+v, want error with reason and lease cleared", *f)
	}
	if !f.Status.Terminal() {
		t.Errorf("status %q is not terminal", f.Status)
	}
	wantCode(t, "Deliver after Fail", s.Deliver(ctx, c2.ID, "w1"), responder.ECONFLICT)

	// Terminal rows are never claimed again.
	c3 := mustClaim(t, s, "w1", time.Hour)
	if c3.ID != pending.ID {
		t.Errorf("claimed %s, want the last pending row %s", c3.ID, pending.ID)
	}
	if m, err := s.Claim(ctx, "w1", time.Hour, 0); err != nil || m != nil {
		t.Errorf("Claim = %v, %v; want nil, nil", m, err)
	}
}

func testExtendLeaseAndRecord(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	enqueue(t, s, userID(), "long")
	c := mustClaim(t, s, "w1", time.Minute)

	before := time.Now()
	if err := s.ExtendLease(ctx, c.ID, "w1", time.Hour); err != nil {
		t.Fatalf("ExtendLease: %v", err)
	}
	got := mustMessage(t, s, c.ID)
	if got.LeaseUntil.Before(ms(before.Add(time.Hour))) || got.LeaseUntil.After(time.Now().Add(time.Hour)) {
		t.Errorf("LeaseUntil after extend = %v, want about now+1h", got.LeaseUntil)
	}
	if got.LeaseOwner != "w1" || got.Status != responder.StatusProcessing || got.Attempts != 1 {
		t.Errorf("extended row = %+v", *got)
	}

	if err := s.SetExecution(ctx, c.ID, "w1", "exec-123"); err != nil {
		t.Fatalf("SetExecution: %v", err)
	}
	ju := responder.JulepUserID(c.UserID)
	if err := s.SetJulepUser(ctx, c.ID, "w1", ju); err != nil {
		t.Fatalf("SetJulepUser: %v", err)
	}
	got = mustMessage(t, s, c.ID)
	if got.ExecutionID != "exec-123" || got.JulepUserID != ju {
		t.Errorf("ExecutionID %q JulepUserID %q, want exec-123 %s", got.ExecutionID, got.JulepUserID, ju)
	}

	wantCode(t, "non-owner ExtendLease", s.ExtendLease(ctx, c.ID, "w2", time.Hour), responder.ECONFLICT)
	wantCode(t, "non-owner SetExecution", s.SetExecution(ctx, c.ID, "w2", "exec-x"), responder.ECONFLICT)
	wantCode(t, "non-owner SetJulepUser", s.SetJulepUser(ctx, c.ID, "w2", "ju-x"), responder.ECONFLICT)
	if again := mustMessage(t, s, c.ID); again.ExecutionID != "exec-123" || again.JulepUserID != ju || again.LeaseOwner != "w1" {
		t.Errorf("a non-owner changed the row: %+v", *again)
	}

	if err := s.Deliver(ctx, c.ID, "w1"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "ExtendLease after Deliver", s.ExtendLease(ctx, c.ID, "w1", time.Hour), responder.ECONFLICT)
}

// testExtendRevivesLease: a lease that ran out but was not taken over is
// still the owner's; extending it keeps other claimers away.
func testExtendRevivesLease(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	enqueue(t, s, userID(), "lapsed")
	c := mustClaim(t, s, "w1", time.Millisecond)
	eventually(t, "the lease to lapse", func() bool { return time.Now().After(c.LeaseUntil) })
	if err := s.ExtendLease(ctx, c.ID, "w1", time.Hour); err != nil {
		t.Fatalf("ExtendLease of a lapsed lease nobody took: %v", err)
	}
	if m, err := s.Claim(ctx, "w2", time.Hour, 0); err != nil || m != nil {
		t.Fatalf("Claim after the owner extended = %v, %v; want nil, nil", m, err)
	}
	if err := s.Deliver(ctx, c.ID, "w1"); err != nil {
		t.Fatalf("owner Deliver: %v", err)
	}
}

func testReleaseRetry(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	if next, err := s.NextAvailable(ctx); err != nil || !next.IsZero() {
		t.Fatalf("NextAvailable on empty outbox = %v, %v; want zero", next, err)
	}
	u := userID()
	m := enqueue(t, s, u, "flaky")
	c := mustClaim(t, s, "w1", time.Hour)

	retryAt := time.Now().Add(time.Hour)
	if err := s.Release(ctx, c.ID, "w1", retryAt, "rate limited"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	r := mustMessage(t, s, m.ID)
	if r.Status != responder.StatusPending || r.LastError != "rate limited" || r.Attempts != 1 || r.LeaseOwner != "" {
		t.Errorf("released row = %+v, want pending, reason kept, attempts 1, no owner", *r)
	}
	sameTime(t, "AvailableAt", r.AvailableAt, retryAt)
	wantCode(t, "Deliver after Release", s.Deliver(ctx, m.ID, "w1"), responder.ECONFLICT)

	if got, err := s.Claim(ctx, "w2", time.Hour, 0); err != nil || got != nil {
		t.Fatalf("Claim before retryAt = %v, %v; want nil, nil", got, err)
	}
	next, err := s.NextAvailable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameTime(t, "NextAvailable", next, retryAt)

	// A row available now makes NextAvailable "now or earlier".
	m2 := enqueue(t, s, u, "ready")
	next, err = s.NextAvailable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next.IsZero() || next.After(time.Now()) {
		t.Errorf("NextAvailable with a ready row = %v, want a time not after now", next)
	}

	// Released into the past: claimable at once, attempts counting on.
	c2 := mustClaim(t, s, "w2", time.Hour)
	if c2.ID != m2.ID {
		t.Fatalf("claimed %s, want the ready row %s", c2.ID, m2.ID)
	}
	if err := s.Release(ctx, c2.ID, "w2", time.Now().Add(-time.Second), "retry now"); err != nil {
		t.Fatal(err)
	}
	c3 := mustClaim(t, s, "w3", time.Hour)
	if c3.ID != m2.ID || c3.Attempts != 2 || c3.LastError != "retry now" {
		t.Errorf("reclaimed = %+v, want %s with attempts 2 and the last error kept", *c3, m2.ID)
	}

	// A release due soon becomes claimable without anyone touching it.
	if err := s.Release(ctx, c3.ID, "w3", time.Now().Add(20*time.Millisecond), "soon"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the released row to become claimable", func() bool {
		got, err := s.Claim(ctx, "w4", time.Hour, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got != nil && got.ID != m2.ID {
			t.Fatalf("claimed %s, want %s (the other row waits an hour)", got.ID, m2.ID)
		}
		return got != nil
	})
}

func testUserMessages(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	a, b := userID(), userID()
	var aIDs []string
	for i := range 5 {
		aIDs = append(aIDs, enqueue(t, s, a, fmt.Sprint("a", i)).ID)
		enqueue(t, s, b, fmt.Sprint("b", i))
	}
	got, err := s.UserMessages(ctx, a, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(aIDs[2:])
	slices.Reverse(want)
	if !slices.Equal(messageIDs(got), want) {
		t.Errorf("UserMessages(a, 3) = %v, want newest first %v", messageIDs(got), want)
	}
	for _, m := range got {
		if m.UserID != a {
			t.Errorf("UserMessages(a) returned %s of user %s", m.ID, m.UserID)
		}
	}
	all, err := s.UserMessages(ctx, a, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 {
		t.Errorf("UserMessages(a, 100) returned %d, want 5", len(all))
	}
	none, err := s.UserMessages(ctx, userID(), 10)
	if err != nil || len(none) != 0 {
		t.Errorf("UserMessages(unknown) = %v, %v; want empty", none, err)
	}
}

func testCountByStatus(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	counts, err := s.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for st, n := range counts {
		if n != 0 {
			t.Errorf("empty outbox counts %d %s", n, st)
		}
	}
	u := userID()
	for i := range 6 {
		enqueue(t, s, u, fmt.Sprint(i))
	}
	d := mustClaim(t, s, "w", time.Hour)
	f := mustClaim(t, s, "w", time.Hour)
	mustClaim(t, s, "w", time.Hour)
	if err := s.Deliver(ctx, d.ID, "w"); err != nil {
		t.Fatal(err)
	}
	if err := s.Fail(ctx, f.ID, "w", "x"); err != nil {
		t.Fatal(err)
	}
	counts, err = s.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[responder.Status]int{
		responder.StatusPending: 3, responder.StatusProcessing: 1,
		responder.StatusDelivered: 1, responder.StatusError: 1,
	}
	for st, n := range want {
		if counts[st] != n {
			t.Errorf("CountByStatus[%s] = %d, want %d (all: %v)", st, counts[st], n, counts)
		}
	}
	for st := range counts {
		if _, ok := want[st]; !ok && counts[st] != 0 {
			t.Errorf("CountByStatus has unexpected status %q", st)
		}
	}
}

// sampleMetadata has what callers put in metadata: nested maps, arrays,
// integers, fractions, booleans and strings.
func sampleMetadata() map[string]any {
	return map[string]any{
		"source":  "web",
		"count":   3,
		"ratio":   0.25,
		"big":     int64(1) << 40,
		"ok":      true,
		"nothing": nil,
		"nested": map[string]any{
			"tags":  []any{"a", 2, 3.5, map[string]any{"deep": "yes"}},
			"inner": map[string]any{"n": -7},
		},
	}
}

func testMessageMetadata(t *testing.T, s responder.Store, _ Options) {
	u := userID()
	with := &responder.Message{UserID: u, Content: "with", Metadata: sampleMetadata()}
	if err := s.Enqueue(t.Context(), with); err != nil {
		t.Fatal(err)
	}
	without := enqueue(t, s, u, "without")
	got := mustMessage(t, s, with.ID)
	sameMetadata(t, "enqueued", got.Metadata, sampleMetadata())
	if nested, ok := got.Metadata["nested"].(map[string]any); !ok {
		t.Errorf("nested metadata is %T, want map[string]any", got.Metadata["nested"])
	} else if _, ok := nested["tags"].([]any); !ok {
		t.Errorf("nested array is %T, want []any", nested["tags"])
	}
	if n := mustMessage(t, s, without.ID).Metadata; n != nil {
		t.Errorf("nil metadata came back as %#v", n)
	}
	c := mustClaim(t, s, "w", time.Hour)
	sameMetadata(t, "claimed", c.Metadata, mustMessage(t, s, c.ID).Metadata)
}

func testOutboxNotFound(t *testing.T, s responder.Store, _ Options) {
	ctx := t.Context()
	enqueue(t, s, userID(), "exists")
	mustClaim(t, s, "w", time.Hour)
	for _, id := range badIDs {
		_, err := s.Message(ctx, id)
		wantCode(t, fmt.Sprintf("Message(%q)", id), err, responder.ENOTFOUND)
		wantCode(t, fmt.Sprintf("ExtendLease(%q)", id), s.ExtendLease(ctx, id, "w", time.Hour), responder.ENOTFOUND)
		wantCode(t, fmt.Sprintf("SetExecution(%q)", id), s.SetExecution(ctx, id, "w", "e"), responder.ENOTFOUND)
		wantCode(t, fmt.Sprintf("SetJulepUser(%q)", id), s.SetJulepUser(ctx, id, "w", "j"), responder.ENOTFOUND)
		wantCode(t, fmt.Sprintf("Deliver(%q)", id), s.Deliver(ctx, id, "w"), responder.ENOTFOUND)
		wantCode(t, fmt.Sprintf("Fail(%q)", id), s.Fail(ctx, id, "w", "r"), responder.ENOTFOUND)
		wantCode(t, fmt.Sprintf("Release(%q)", id), s.Release(ctx, id, "w", time.Now(), "r"), responder.ENOTFOUND)
	}
}
