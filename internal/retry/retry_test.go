package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	status := func(c int) error { return fmt.Errorf("call: %w", &StatusError{Code: c}) }
	cases := []struct {
		name   string
		err    error
		reason string
	}{
		{"500", status(500), Reason5xx},
		{"503", status(503), Reason5xx},
		{"429", status(429), Reason429},
		{"408", status(408), ReasonTimeout},
		{"400", status(400), ""},
		{"404", status(404), ""},
		{"409", status(409), ""},
		{"501", status(501), ""},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), ReasonTimeout},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), ""},
		{"refused", &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, ReasonConn},
		{"reset", &url.Error{Op: "Post", URL: "http://x", Err: syscall.ECONNRESET}, ReasonConn},
		{"transport EOF", &url.Error{Op: "Post", URL: "http://x", Err: io.EOF}, ReasonConn},
		{"decode EOF", fmt.Errorf("decode: %w", io.EOF), ""},
		{"cut short", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), ReasonConn},
		{"no such host", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}, ""},
		{"permanent 503", Permanent(status(503)), ""},
		{"other", errors.New("bad json"), ""},
	}
	for _, c := range cases {
		reason, ok := Classify(c.err)
		if reason != c.reason || ok != (c.reason != "") {
			t.Errorf("%s: Classify = %q, %v; want %q", c.name, reason, ok, c.reason)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	with := func(k, v string) error {
		h := http.Header{}
		h.Set(k, v)
		return &StatusError{Code: 429, Header: h}
	}
	cases := []struct {
		err  error
		want time.Duration
		ok   bool
	}{
		{with("Retry-After", "3"), 3 * time.Second, true},
		{with("Retry-After", now.Add(7*time.Second).Format(http.TimeFormat)), 7 * time.Second, true},
		{with("Retry-After", now.Add(-time.Minute).Format(http.TimeFormat)), 0, true},
		{with("Retry-After-Ms", "250"), 250 * time.Millisecond, true},
		{with("Retry-After", "soon"), 0, false},
		{with("Retry-After", "-1"), 0, false},
		{&StatusError{Code: 503}, 0, false},
		{errors.New("no answer"), 0, false},
	}
	for i, c := range cases {
		got, ok := RetryAfter(c.err, now)
		if got != c.want || ok != c.ok {
			t.Errorf("case %d: RetryAfter = %v, %v; want %v, %v", i, got, ok, c.want, c.ok)
		}
	}
}

func TestBackoffGrowsWithinCap(t *testing.T) {
	t.Parallel()
	p := Policy{Attempts: 10, Base: 100 * time.Millisecond, Cap: time.Second, Budget: time.Hour}
	for attempt := 1; attempt <= 8; attempt++ {
		full := min(p.Base<<(attempt-1), p.Cap)
		for range 50 {
			if w := p.backoff(attempt); w < full/2 || w > full {
				t.Fatalf("attempt %d: wait %v outside [%v, %v]", attempt, w, full/2, full)
			}
		}
	}
	if w := p.backoff(1000); w > p.Cap { // no overflow however many attempts
		t.Fatalf("attempt 1000: wait %v", w)
	}
}

func TestDo(t *testing.T) {
	t.Parallel()
	fast := Policy{Attempts: 4, Base: time.Microsecond, Cap: time.Microsecond, Budget: time.Minute}
	t.Run("transient then success", func(t *testing.T) {
		calls, notified := 0, 0
		err := fast.Do(t.Context(), func(context.Context) error {
			if calls++; calls < 3 {
				return &StatusError{Code: 502}
			}
			return nil
		}, func(r Retry) {
			notified++
			if r.Attempt != notified || r.Reason != Reason5xx || r.Status != 502 {
				t.Errorf("retry %+v", r)
			}
		})
		if err != nil || calls != 3 || notified != 2 {
			t.Fatalf("err %v, calls %d, notified %d", err, calls, notified)
		}
	})
	t.Run("permanent at once", func(t *testing.T) {
		calls := 0
		bad := &StatusError{Code: 400}
		err := fast.Do(t.Context(), func(context.Context) error { calls++; return bad }, nil)
		if err != bad || calls != 1 {
			t.Fatalf("err %v, calls %d", err, calls)
		}
		inner := errors.New("half streamed")
		err = fast.Do(t.Context(), func(context.Context) error { calls++; return Permanent(inner) }, nil)
		if err != inner || calls != 2 {
			t.Fatalf("err %v, calls %d", err, calls)
		}
	})
	t.Run("exhausted", func(t *testing.T) {
		calls := 0
		err := fast.Do(t.Context(), func(context.Context) error {
			calls++
			return fmt.Errorf("chat: %w", &StatusError{Code: 503})
		}, nil)
		var ex *Exhausted
		if !errors.As(err, &ex) || ex.Attempts != 4 || calls != 4 || ex.Status != 503 {
			t.Fatalf("err %v, calls %d", err, calls)
		}
		if want := "gave up after 4 attempts (last: 503 Service Unavailable): chat: 503 Service Unavailable"; err.Error() != want {
			t.Fatalf("message %q", err)
		}
	})
	t.Run("retry after wins and is capped", func(t *testing.T) {
		p := Policy{Attempts: 3, Base: time.Hour, Cap: time.Millisecond, Budget: time.Minute}
		var waits []time.Duration
		h := http.Header{"Retry-After": {"0"}}
		calls := 0
		err := p.Do(t.Context(), func(context.Context) error {
			if calls++; calls == 2 {
				h = http.Header{"Retry-After": {"3600"}}
			}
			return &StatusError{Code: 429, Header: h}
		}, func(r Retry) { waits = append(waits, r.Wait) })
		if !errors.As(err, new(*Exhausted)) || len(waits) != 2 || waits[0] != 0 || waits[1] != time.Millisecond {
			t.Fatalf("err %v, waits %v", err, waits)
		}
	})
	t.Run("budget", func(t *testing.T) {
		p := Policy{Attempts: 100, Base: time.Hour, Cap: time.Hour, Budget: time.Second}
		calls := 0
		err := p.Do(t.Context(), func(context.Context) error { calls++; return &StatusError{Code: 500} }, nil)
		var ex *Exhausted
		if !errors.As(err, &ex) || calls != 1 || !strings.Contains(err.Error(), "gave up after 1 attempt (") {
			t.Fatalf("err %v, calls %d", err, calls)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		p := Policy{Attempts: 3, Base: time.Hour, Cap: time.Hour, Budget: 2 * time.Hour}
		ctx, cancel := context.WithCancel(t.Context())
		err := p.Do(ctx, func(context.Context) error { return &StatusError{Code: 500} }, func(Retry) { cancel() })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("caller's deadline not retried", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		err := fast.Do(ctx, func(context.Context) error {
			calls++
			cancel()
			return fmt.Errorf("x: %w", context.DeadlineExceeded)
		}, nil)
		if calls != 1 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, calls %d", err, calls)
		}
	})
	t.Run("one attempt turns retries off", func(t *testing.T) {
		calls := 0
		err := Policy{Attempts: 1}.Do(t.Context(), func(context.Context) error { calls++; return &StatusError{Code: 500} }, nil)
		if calls != 1 || !errors.As(err, new(*Exhausted)) {
			t.Fatalf("err %v, calls %d", err, calls)
		}
	})
}
