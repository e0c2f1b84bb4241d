package server

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// userLimiter is a token bucket per user for POST /api/responder/messages:
// every message becomes a paid model call, so one person (or one stolen
// session) must not be able to queue thousands. The buckets live in this
// process: behind a load balancer each instance enforces the limit on the
// requests it receives.
type userLimiter struct {
	every time.Duration // one token per
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// newUserLimiter allows perMinute messages a minute per user with bursts of
// burst; perMinute <= 0 turns the limit off (nil).
func newUserLimiter(perMinute, burst int) *userLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &userLimiter{every: time.Minute / time.Duration(perMinute), burst: max(burst, 1), buckets: map[string]*bucket{}}
}

// allow takes a token for user at now; when there is none it reports how
// long until there is.
func (l *userLimiter) allow(user string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[user]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.buckets[user] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops buckets that have refilled (idle long enough to be full
// again), so memory follows active users, not every user ever seen.
func (l *userLimiter) sweep(now time.Time) {
	full := l.every * time.Duration(l.burst)
	if now.Sub(l.swept) < full {
		return
	}
	l.swept = now
	for u, b := range l.buckets {
		if now.Sub(b.seen) >= full {
			delete(l.buckets, u)
		}
	}
}

// retryAfterSeconds is the Retry-After value for a wait: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
