// Package httpjson is the HTTP API's one way of answering: JSON bodies,
// {"error": "..."} for failures, and the single mapping of application error
// codes to HTTP statuses. The API routes and the sign-in routes both use it.
package httpjson

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/astra-app/astra/internal/httpobs"
	"github.com/astra-app/astra/internal/responder"
)

// ErrorBody is every error response: {"error": "<message a person can read>"}.
type ErrorBody struct {
	Error string `json:"error"`
}

// Status maps an application error code to an HTTP status; it is the only
// place that does.
func Status(code string) int {
	switch code {
	case responder.EINVALID:
		return http.StatusBadRequest
	case responder.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case responder.EFORBIDDEN:
		return http.StatusForbidden
	case responder.ENOTFOUND:
		return http.StatusNotFound
	case responder.ECONFLICT:
		return http.StatusConflict
	case responder.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case responder.EUNSUPPORTED:
		return http.StatusUnsupportedMediaType
	case responder.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case responder.ERATELIMITED:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// Write answers v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here; failing to encode one is a bug.
		b, status = []byte(`{"error":"Internal error"}`), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Error answers err with its code's status and message. Internal errors and
// unavailable dependencies are logged with their details; an internal error
// is shown only as "Internal error".
func Error(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := responder.ErrorCode(err)
	if code == responder.EINTERNAL || code == responder.EUNAVAILABLE {
		log.ErrorContext(r.Context(), "request failed", "request_id", httpobs.RequestID(r.Context()),
			"method", r.Method, "path", r.URL.Path, "err", err)
	}
	Write(w, Status(code), ErrorBody{responder.ErrorMessage(err)})
}
