package httpjson

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/astra-app/astra/internal/responder"
)

func TestError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err        error
		status     int
		body       string
		logsDetail bool
	}{
		{responder.Errorf(responder.EINVALID, "Message is too long"), 400, `{"error":"Message is too long"}`, false},
		{fmt.Errorf("wrapped: %w", responder.Errorf(responder.ENOTFOUND, "Audio not found")), 404, `{"error":"Audio not found"}`, false},
		{responder.Errorf(responder.EUNAUTHORIZED, "Unauthorized"), 401, `{"error":"Unauthorized"}`, false},
		{responder.Errorf(responder.EFORBIDDEN, "Forbidden origin"), 403, `{"error":"Forbidden origin"}`, false},
		{responder.Errorf(responder.ECONFLICT, "c"), 409, `{"error":"c"}`, false},
		{responder.Errorf(responder.ETOOLARGE, "t"), 413, `{"error":"t"}`, false},
		{responder.Errorf(responder.EUNSUPPORTED, "u"), 415, `{"error":"u"}`, false},
		{responder.Errorf(responder.EUNAVAILABLE, "Julep is unavailable"), 503, `{"error":"Julep is unavailable"}`, true},
		{errors.New("sql: connection reset at 10.0.0.7"), 500, `{"error":"Internal error"}`, true},
	}
	for _, c := range cases {
		var logs bytes.Buffer
		w := httptest.NewRecorder()
		Error(w, httptest.NewRequest("GET", "/x", nil), slog.New(slog.NewTextHandler(&logs, nil)), c.err)
		if w.Code != c.status || strings.TrimSpace(w.Body.String()) != c.body {
			t.Errorf("%v: %d %s, want %d %s", c.err, w.Code, w.Body, c.status, c.body)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%v: Content-Type %q", c.err, ct)
		}
		if got := strings.Contains(logs.String(), c.err.Error()); got != c.logsDetail {
			t.Errorf("%v: logged=%v, want %v (%s)", c.err, got, c.logsDetail, logs.String())
		}
	}
	if Status("") != http.StatusInternalServerError {
		t.Error("an unknown code must be a 500")
	}
}
