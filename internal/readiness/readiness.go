// Package readiness answers /readyz: it runs the checks of the
// dependencies this instance's roles need, all at once and each bounded by
// a timeout, and keeps the result briefly so frequent probes cost one run.
package readiness

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/astra-app/astra/internal/httpjson"
)

// Check is one dependency: Run returns nil when it is usable.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Result is one check's outcome as /readyz reports it.
type Result struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Took  string `json:"took"`
}

// Report is /readyz's body.
type Report struct {
	OK     bool     `json:"ok"`
	Checks []Result `json:"checks"`
}

// Defaults of Checker.
const (
	DefaultTTL     = 2 * time.Second
	DefaultTimeout = 3 * time.Second
	failedTTL      = 250 * time.Millisecond
)

// Checker runs checks and caches the report for TTL.
type Checker struct {
	Checks  []Check
	TTL     time.Duration // default 2s
	Timeout time.Duration // per check, default 3s
	Now     func() time.Time

	mu   sync.Mutex // held while checking: concurrent probes share one run
	at   time.Time
	last Report
}

// Report returns the cached report, or runs the checks when it is older than TTL.
func (c *Checker) Report(ctx context.Context) Report {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.last.OK {
		// A failure is kept only briefly, so recovery shows at once.
		ttl = min(ttl, failedTTL)
	}
	if !c.at.IsZero() && now().Sub(c.at) < ttl {
		return c.last
	}
	c.last = c.run(ctx)
	c.at = now()
	return c.last
}

func (c *Checker) run(ctx context.Context) Report {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// A probe that hangs up must not leave a half-checked report cached.
	ctx = context.WithoutCancel(ctx)
	out := Report{OK: true, Checks: make([]Result, len(c.Checks))}
	var wg sync.WaitGroup
	for i, ch := range c.Checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			err := ch.Run(cctx)
			if err == nil && cctx.Err() != nil {
				err = cctx.Err()
			}
			r := Result{Name: ch.Name, OK: err == nil, Took: time.Since(start).Round(time.Microsecond).String()}
			if err != nil {
				r.Error = err.Error()
			}
			out.Checks[i] = r
		})
	}
	wg.Wait()
	for _, r := range out.Checks {
		out.OK = out.OK && r.OK
	}
	return out
}

// Handler answers 200 with the report when every check passes, else 503.
func (c *Checker) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := c.Report(r.Context())
		status := http.StatusOK
		if !rep.OK {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		httpjson.Write(w, status, rep)
	})
}
