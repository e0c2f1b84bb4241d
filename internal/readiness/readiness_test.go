package readiness

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestReportNamesChecksAndIsCachedBriefly(t *testing.T) {
	var runs atomic.Int32
	failing := atomic.Bool{}
	now := time.Unix(0, 0)
	c := &Checker{Now: func() time.Time { return now }, Checks: []Check{
		{Name: "store", Run: func(context.Context) error { runs.Add(1); return nil }},
		{Name: "julep", Run: func(context.Context) error {
			if failing.Load() {
				return errors.New("unreachable")
			}
			return nil
		}},
	}}
	get := func() (int, Report) {
		rec := httptest.NewRecorder()
		c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		var rep Report
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		return rec.Code, rep
	}
	if code, rep := get(); code != http.StatusOK || !rep.OK || len(rep.Checks) != 2 {
		t.Fatalf("healthy: %d %+v", code, rep)
	}
	failing.Store(true)
	get()
	if runs.Load() != 1 {
		t.Errorf("a probe within the TTL ran the checks again (%d runs)", runs.Load())
	}
	now = now.Add(DefaultTTL)
	code, rep := get()
	if code != http.StatusServiceUnavailable || rep.OK || rep.Checks[1].Name != "julep" || rep.Checks[1].OK || rep.Checks[1].Error != "unreachable" || !rep.Checks[0].OK {
		t.Errorf("failing julep: %d %+v", code, rep)
	}
	failing.Store(false)
	now = now.Add(failedTTL)
	if code, _ := get(); code != http.StatusOK {
		t.Errorf("a failed report was kept past %v: %d", failedTTL, code)
	}
}

func TestSlowCheckTimesOut(t *testing.T) {
	c := &Checker{Timeout: 10 * time.Millisecond, Checks: []Check{{Name: "slow", Run: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}}}
	if rep := c.Report(context.Background()); rep.OK || rep.Checks[0].Error == "" {
		t.Errorf("a check past its timeout passed: %+v", rep)
	}
}
