package julep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrNotSupported is returned (wrapped) by StreamStatus and StreamDeltas when
// the server has no such stream (404): callers fall back to polling.
var ErrNotSupported = errors.New("not supported by this Julep server")

// ErrStreamInterrupted is returned (wrapped) when an event stream ends or goes
// silent before it should have. It is transient: reconnect or poll.
var ErrStreamInterrupted = errors.New("event stream interrupted")

// APIError is a non-2xx answer from Julep, carrying the server's own message.
type APIError struct {
	Status  int    // HTTP status
	Code    string // Julep's error code, e.g. "http_404"
	Message string // Julep's message, readable by a person
	Type    string // Julep's error class, e.g. "http_error"
	// Details holds validation failures (422, or 400 from task validation) as sent.
	Details json.RawMessage
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "status %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Transient reports whether the same request may succeed later: 408, 409, 429
// and 5xx, the statuses Julep's own SDKs retry.
func (e *APIError) Transient() bool {
	switch {
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusConflict,
		e.Status == http.StatusTooManyRequests, e.Status >= 500:
		return true
	}
	return false
}

// transportError is a failure to get any HTTP answer (connection refused,
// reset, per-attempt timeout). unsent is true only when the request certainly
// never reached the server (dial or DNS failure), the one case where a
// non-idempotent call may be repeated without risk of doing it twice.
type transportError struct {
	err    error
	unsent bool
}

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func newTransportError(err error) *transportError {
	te := &transportError{err: err}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if (errors.As(err, &opErr) && opErr.Op == "dial") || errors.As(err, &dnsErr) {
		te.unsent = true
	}
	return te
}

// IsTransient reports whether err is worth retrying later: a network failure,
// an interrupted stream, or an APIError with status 408, 409, 429 or 5xx.
// Cancellation by the caller's context is not transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Transient()
	}
	return errors.Is(err, ErrStreamInterrupted)
}

// IsNotFound reports whether err is Julep's 404.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// StatusCode returns the HTTP status of the APIError in err's chain, or 0.
func StatusCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// newAPIError reads Julep's error body. Besides its own
// {"error":{message,code,type}} it accepts FastAPI's {"detail": ...}, which
// request validation and some handlers answer, and falls back to the raw text.
func newAPIError(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var env struct {
		Error *struct {
			Message string          `json:"message"`
			Code    any             `json:"code"`
			Type    string          `json:"type"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &env) == nil {
		switch {
		case env.Error != nil:
			e.Message, e.Type, e.Details = env.Error.Message, env.Error.Type, env.Error.Details
			if env.Error.Code != nil {
				e.Code = fmt.Sprint(env.Error.Code)
			}
		case len(env.Detail) > 0:
			e.Details = env.Detail
			e.Message = detailMessage(env.Detail)
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 300 {
			e.Message = e.Message[:300] + "..."
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	if e.Code == "" {
		e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	}
	return e
}

// detailMessage renders FastAPI's detail: a string, or a list of
// {loc, msg} / {location, message} issues joined into one line.
func detailMessage(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var issues []struct {
		Loc      []any  `json:"loc"`
		Msg      string `json:"msg"`
		Location string `json:"location"`
		Message  string `json:"message"`
	}
	if json.Unmarshal(raw, &issues) == nil && len(issues) > 0 {
		parts := make([]string, 0, len(issues))
		for _, is := range issues {
			loc, msg := is.Location, is.Message
			if msg == "" {
				msg = is.Msg
			}
			if loc == "" && len(is.Loc) > 0 {
				segs := make([]string, len(is.Loc))
				for i, l := range is.Loc {
					segs[i] = fmt.Sprint(l)
				}
				loc = strings.Join(segs, ".")
			}
			if loc != "" {
				msg = loc + ": " + msg
			}
			parts = append(parts, msg)
		}
		return strings.Join(parts, "; ")
	}
	return string(bytes.TrimSpace(raw))
}

// parseRetryAfter reads delay-seconds or an HTTP date; zero when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
