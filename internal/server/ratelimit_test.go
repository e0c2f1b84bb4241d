package server

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPostMessageRateLimit: past a person's burst, POST answers 429 with
// Retry-After and a readable error and stores nothing; another person is
// not affected; once the bucket refills the person may post again.
func TestPostMessageRateLimit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, func(c *envConfig) {
		c.deps.MessagesPerMinute, c.deps.MessageBurst, c.deps.Now = 6, 3, clock
	})
	ann, bob := e.newUser("Ann"), e.newUser("Bob")
	post := func(u *user) response {
		return e.do("POST", "/api/responder/messages", u.withCookie(), []byte(`{"content":"hi"}`), "Origin", testOrigin)
	}
	for i := range 3 {
		if r := post(ann); r.status != http.StatusAccepted {
			t.Fatalf("message %d: %d %s", i, r.status, r.body)
		}
	}
	r := post(ann)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("4th message in a burst of 3: %d %s", r.status, r.body)
	}
	var body struct{ Error string }
	r.json(t, &body)
	if !strings.Contains(body.Error, "Too many messages") {
		t.Errorf("error %q", body.Error)
	}
	// One token per 10 s: the wait is 10 s.
	if got, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || got != 10 {
		t.Errorf("Retry-After %q, want 10", r.header.Get("Retry-After"))
	}
	if msgs, _ := e.store.UserMessages(t.Context(), ann.ID, 10); len(msgs) != 3 {
		t.Errorf("%d messages stored, want 3", len(msgs))
	}
	if r := post(bob); r.status != http.StatusAccepted {
		t.Errorf("another person: %d", r.status)
	}
	mu.Lock()
	now = now.Add(10 * time.Second)
	mu.Unlock()
	if r := post(ann); r.status != http.StatusAccepted {
		t.Errorf("after the refill: %d %s", r.status, r.body)
	}
	if r := post(ann); r.status != http.StatusTooManyRequests {
		t.Errorf("one token refilled, two used: %d", r.status)
	}
}

// TestRateLimitOff: 0 messages a minute turns the limit off.
func TestRateLimitOff(t *testing.T) {
	t.Parallel()
	l := newUserLimiter(0, 5)
	for range 1000 {
		if ok, _ := l.allow("u", time.Now()); !ok {
			t.Fatal("a limit of 0 refused a message")
		}
	}
}

// TestRateLimitForgetsIdleUsers keeps the limiter's memory to active users.
func TestRateLimitForgetsIdleUsers(t *testing.T) {
	t.Parallel()
	l := newUserLimiter(60, 5)
	at := time.Unix(0, 0)
	for i := range 100 {
		l.allow(strconv.Itoa(i), at)
	}
	l.allow("late", at.Add(time.Minute))
	if n := len(l.buckets); n != 1 {
		t.Errorf("%d buckets kept after the others refilled, want 1", n)
	}
}
