package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/astra-app/astra/internal/httpjson"
	"github.com/astra-app/astra/internal/responder"
)

type errorBody = httpjson.ErrorBody

// encode writes v as a JSON response with the given status.
func encode(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

// writeError answers with err as {"error": "..."}; see httpjson.Error.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpjson.Error(w, r, s.log, err)
}

// decode reads a JSON request body of at most limit bytes and hands it to
// parse, which validates it. A missing Content-Type is read as JSON: only
// non-browser clients and same-origin scripts can send one (a cross-site
// form always sets a form type, which is refused), and the original app
// read the body as JSON whatever the header said.
func decode[T any](w http.ResponseWriter, r *http.Request, limit int64, parse func([]byte) (T, error)) (T, error) {
	var zero T
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return zero, responder.Errorf(responder.EUNSUPPORTED, "Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return zero, responder.Errorf(responder.ETOOLARGE, "Request body is too large")
		}
		return zero, responder.Errorf(responder.EINVALID, "Invalid JSON")
	}
	return parse(body)
}

// isJSON accepts application/json (with parameters) and application/*+json.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	encode(w, http.StatusNotFound, errorBody{Error: "Not found"})
}
