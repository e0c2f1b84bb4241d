package httpserve

import (
	"net/http"
	"strings"
	"time"
)

// NoDeadlines lifts the server's read and write deadlines for a
// long-lived connection (a WebSocket, an SSE stream): ReadTimeout bounds a
// request, not a stream, and such routes keep themselves honest with pings.
func NoDeadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		next.ServeHTTP(w, r)
	})
}

// NoDeadlinesForStreams is NoDeadlines for the engine's SSE routes only
// (paths ending in .stream: …/status.stream, …/deltas.stream).
func NoDeadlinesForStreams(next http.Handler) http.Handler {
	streams := NoDeadlines(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".stream") {
			streams.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
