// Package retry is the one policy for transient failures of outside calls
// (the model endpoint, api_call tools): which failures deserve another
// attempt, and how long to wait before it, as Julep's Temporal activity retry
// policy did for the steps of a hosted execution.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Policy says how often and how patiently a call is tried. Zero fields take
// the values of Default.
type Policy struct {
	Attempts int           // tries in all, the first included; 1 turns retries off
	Base     time.Duration // the backoff before the second attempt, doubled for each later one
	Cap      time.Duration // no single wait is longer, a server's Retry-After included
	Budget   time.Duration // no retry starts later than this after the first attempt began
}

// Default is five attempts within about 30 s: long enough to ride out a
// model endpoint's restart or a burst of rate limiting, short enough that the
// person waiting on the reply is not left hanging.
func Default() Policy {
	return Policy{Attempts: 5, Base: 500 * time.Millisecond, Cap: 8 * time.Second, Budget: 30 * time.Second}
}

func (p Policy) norm() Policy {
	d := Default()
	if p.Attempts <= 0 {
		p.Attempts = d.Attempts
	}
	if p.Base <= 0 {
		p.Base = d.Base
	}
	if p.Cap <= 0 {
		p.Cap = d.Cap
	}
	if p.Budget <= 0 {
		p.Budget = d.Budget
	}
	return p
}

// Reasons a failure is retried, as metric labels.
const (
	Reason5xx     = "5xx"
	Reason429     = "429"
	ReasonTimeout = "timeout" // a timed-out attempt, or 408
	ReasonConn    = "conn"    // refused, reset or dropped connections
)

// StatusError is an HTTP answer that failed. Callers wrap their endpoint's
// refusal in it so Classify can judge the status and Retry-After.
type StatusError struct {
	Code   int
	Header http.Header // the answer's headers, for Retry-After; may be nil
	Err    error       // the caller's description of the failure; may be nil
}

func (e *StatusError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return statusText(e.Code)
}

func (e *StatusError) Unwrap() error { return e.Err }

func statusText(code int) string {
	return strings.TrimSpace(strconv.Itoa(code) + " " + http.StatusText(code))
}

// Exhausted is the error of a call that failed transiently on every attempt
// it was allowed.
type Exhausted struct {
	Attempts int
	Reason   string // of the last failure
	Status   int    // of the last failure when the server answered, else 0
	Err      error  // the last failure
}

func (e *Exhausted) Error() string {
	last := statusText(e.Status)
	switch {
	case e.Status != 0:
	case e.Reason == ReasonTimeout:
		last = "timed out"
	default:
		last = "connection failed"
	}
	plural := "s"
	if e.Attempts == 1 {
		plural = ""
	}
	return fmt.Sprintf("gave up after %d attempt%s (last: %s): %v", e.Attempts, plural, last, e.Err)
}

func (e *Exhausted) Unwrap() error { return e.Err }

type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent marks err as not to be retried whatever it is: e.g. a stream
// that failed after part of the answer reached the caller.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

// Classify reports whether err is transient and, if so, why. 408, 429 and
// 5xx answers (but 501 and 505, which no retry changes), timeouts and
// broken connections are; a cancelled context, other answers and anything
// unknown are not.
func Classify(err error) (reason string, ok bool) {
	if err == nil {
		return "", false
	}
	var p *permanent
	if errors.As(err, &p) || errors.Is(err, context.Canceled) {
		return "", false
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch c := se.Code; {
		case c == http.StatusRequestTimeout:
			return ReasonTimeout, true
		case c == http.StatusTooManyRequests:
			return Reason429, true
		case c == http.StatusNotImplemented || c == http.StatusHTTPVersionNotSupported:
			return "", false
		case c >= 500 && c <= 599:
			return Reason5xx, true
		}
		return "", false
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return ReasonTimeout, true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		// A name that does not exist will not exist in a second either.
		if dns.IsTemporary {
			return ReasonConn, true
		}
		return "", false
	}
	var ue *url.Error
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		// EOF only from the transport (the server closed the connection
		// without answering), not from decoding an empty body.
		(errors.As(err, &ue) && errors.Is(err, io.EOF)) {
		return ReasonConn, true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return ReasonConn, true
	}
	return "", false
}

// RetryAfter is the wait a failed answer asked for (Retry-After in seconds
// or as an HTTP date, or OpenAI's retry-after-ms), if any.
func RetryAfter(err error, now time.Time) (time.Duration, bool) {
	var se *StatusError
	if !errors.As(err, &se) || se.Header == nil {
		return 0, false
	}
	if v := strings.TrimSpace(se.Header.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 && ms < 1e12 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := strings.TrimSpace(se.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, 1<<30)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// Retry describes a failed attempt that is about to be retried.
type Retry struct {
	Attempt int           // the attempt that failed, from 1
	Wait    time.Duration // before the next one
	Reason  string
	Status  int // when the server answered, else 0
	Err     error
}

// Do calls fn until it succeeds, fails for good, runs out of attempts or
// budget, or ctx ends. notify (may be nil) hears of each retry before its
// wait. A transient failure that is not retried comes back as *Exhausted.
func (p Policy) Do(ctx context.Context, fn func(context.Context) error, notify func(Retry)) error {
	p = p.norm()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err // the caller gave up; its deadline is not ours to retry
		}
		reason, ok := Classify(err)
		if !ok {
			var perm *permanent
			if errors.As(err, &perm) {
				return perm.err
			}
			return err
		}
		status := 0
		var se *StatusError
		if errors.As(err, &se) {
			status = se.Code
		}
		wait := p.backoff(attempt)
		if ra, ok := RetryAfter(err, time.Now()); ok {
			wait = min(ra, p.Cap)
		}
		if attempt >= p.Attempts || time.Since(start)+wait > p.Budget {
			return &Exhausted{Attempts: attempt, Reason: reason, Status: status, Err: err}
		}
		if notify != nil {
			notify(Retry{Attempt: attempt, Wait: wait, Reason: reason, Status: status, Err: err})
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w while waiting to retry after: %w", ctx.Err(), err)
		}
	}
}

// backoff is the wait after the given failed attempt: Base doubled per
// attempt, capped, with equal jitter (half fixed, half random) so that calls
// failing together do not come back together, yet none retries at once.
func (p Policy) backoff(attempt int) time.Duration {
	d := p.Base
	for i := 1; i < attempt && d < p.Cap; i++ {
		d *= 2
	}
	d = min(d, p.Cap)
	half := d / 2
	return half + rand.N(d-half+1)
}
