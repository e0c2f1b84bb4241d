package httpobs

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequestIDsAndRouteMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	r := chi.NewRouter()
	var seen string
	r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		seen = RequestID(r.Context())
		w.WriteHeader(http.StatusTeapot)
	})
	h := Middleware(Options{Metrics: m})(r)

	for _, tc := range []struct{ sent, want string }{
		{"abc-123", "abc-123"},
		{"", ""},                       // made
		{strings.Repeat("x", 200), ""}, // too long: replaced
		{"bad\"quote", ""},             // not echoed as sent
	} {
		req := httptest.NewRequest("GET", "/items/42", nil)
		if tc.sent != "" {
			req.Header.Set(HeaderRequestID, tc.sent)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get(HeaderRequestID)
		switch {
		case got != seen:
			t.Errorf("sent %q: echoed %q but the handler saw %q", tc.sent, got, seen)
		case tc.want != "" && got != tc.want:
			t.Errorf("sent %q: echoed %q, want it honoured", tc.sent, got)
		case tc.want == "" && (got == "" || got == tc.sent):
			t.Errorf("sent %q: echoed %q, want a new id", tc.sent, got)
		}
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/random/path/1", nil))
	if n := testutil.ToFloat64(m.requests.WithLabelValues("GET", "/items/{id}", "418")); n != 4 {
		t.Errorf("requests{route=/items/{id},status=418} = %v, want 4 (labelled by pattern, not path)", n)
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("GET", "unmatched", "404")); n != 1 {
		t.Errorf("requests{route=unmatched} = %v, want 1", n)
	}
}
