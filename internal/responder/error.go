package responder

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps them to statuses in one place (server.statusFor).
const (
	EINVALID      = "invalid"      // bad input: 400
	EUNAUTHORIZED = "unauthorized" // no or bad session: 401
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed: 403
	ENOTFOUND     = "not_found"    // 404
	ECONFLICT     = "conflict"     // state does not allow it (e.g. lease lost): 409
	ETOOLARGE     = "too_large"    // 413
	EUNSUPPORTED  = "unsupported"  // wrong content type: 415
	EUNAVAILABLE  = "unavailable"  // a dependency is down: 503
	ERATELIMITED  = "rate_limited" // too many requests: 429
	EINTERNAL     = "internal"     // anything else: 500, details logged, not shown
)

// Error is the application error: a code callers branch on and a message a
// person can read. Anything that is not an *Error is treated as EINTERNAL.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or
// "Internal error" so internal details are never shown to a client.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error"
}

// IsNotFound reports whether err carries ENOTFOUND.
func IsNotFound(err error) bool { return ErrorCode(err) == ENOTFOUND }

// IsConflict reports whether err carries ECONFLICT.
func IsConflict(err error) bool { return ErrorCode(err) == ECONFLICT }
