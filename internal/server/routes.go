package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// routes lists every route the server answers.
func (s *server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusMethodNotAllowed, errorBody{Error: "Method not allowed"})
	})

	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	if s.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", s.Metrics)
	}

	r.Route("/api/responder", func(r chi.Router) {
		r.Use(s.checkOrigin)
		r.With(s.Sessions.Require).Post("/messages", s.handlePostMessage)
		r.With(s.Sessions.Require).Get("/messages", s.handleListMessages)
		r.With(s.Sessions.Require).Get("/messages/{id}/execution", s.handleExecution)
		r.With(s.Sessions.Require).Get("/audio/{id}", s.handleAudio)
		// The socket authenticates itself: it keeps the session token to
		// re-check it while the connection lives.
		r.Get("/socket", s.handleSocket)
	})

	if s.AuthRoutes != nil {
		r.Mount("/api/auth", s.AuthRoutes)
	}
	if s.Engine != nil {
		r.Mount("/julep", http.StripPrefix("/julep", s.Engine))
	}
	if s.Dashboard != nil {
		r.Handle("/*", s.Dashboard)
	}
	return r
}
