package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/astra-app/astra/internal/httpserve"
)

// routes lists every route the server answers.
func (s *server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusMethodNotAllowed, errorBody{Error: "Method not allowed"})
	})

	// Health and metrics answer any Host: probes and scrapers address an
	// instance by its IP, and these carry no one's data. The engine answers
	// any Host too: it authenticates by API key, never by cookie, so a
	// rebound name gains a browser nothing there (the dispatcher calls it
	// at 127.0.0.1 even when the app URL is public).
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	if s.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", s.Metrics)
	}
	if s.Engine != nil {
		r.With(httpserve.NoDeadlinesForStreams).Mount("/julep", http.StripPrefix("/julep", s.Engine))
	}

	// Everything a browser uses with the person's cookie: only for the
	// configured hosts.
	r.Group(func(r chi.Router) {
		r.Use(s.checkHost)
		r.Route("/api/responder", func(r chi.Router) {
			r.Use(s.checkOrigin)
			r.With(s.Sessions.Require).Post("/messages", s.handlePostMessage)
			r.With(s.Sessions.Require).Get("/messages", s.handleListMessages)
			r.With(s.Sessions.Require).Get("/messages/{id}/execution", s.handleExecution)
			r.With(s.Sessions.Require).Get("/audio/{id}", s.handleAudio)
			// The socket authenticates itself: it keeps the session token to
			// re-check it while the connection lives. It outlives any read
			// deadline; its pings detect a dead peer.
			r.With(httpserve.NoDeadlines).Get("/socket", s.handleSocket)
		})
		s.consoleRoutes(r)
		if s.AuthRoutes != nil {
			r.With(s.checkOriginUnsafe).Mount("/api/auth", s.AuthRoutes)
		}
		if s.Dashboard != nil {
			r.Handle("/*", s.Dashboard)
		}
	})
	return r
}
