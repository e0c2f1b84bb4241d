package server

import (
	"context"
	"net/http"
	"time"
)

func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	encode(w, http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
}

func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.Readiness != nil {
		s.Readiness.ServeHTTP(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		// The reason is for operators and load balancers; it names a
		// dependency, not user data.
		encode(w, http.StatusServiceUnavailable, errorBody{Error: "Not ready: " + err.Error()})
		return
	}
	encode(w, http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
}
