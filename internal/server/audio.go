package server

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/responder"
)

var errAudioNotFound = responder.Errorf(responder.ENOTFOUND, "Audio not found")

// handleAudio serves a spoken reply to its owner only; another user's blob
// is "not found", so its existence is not revealed.
func (s *server) handleAudio(w http.ResponseWriter, r *http.Request) {
	id := auth.FromContext(r.Context())
	b, err := s.Store.Blob(r.Context(), chi.URLParam(r, "id"))
	if responder.IsNotFound(err) || (err == nil && b.UserID != id.User.ID) {
		s.writeError(w, r, errAudioNotFound)
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", b.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(b.Data)))
	h.Set("Cache-Control", "private, max-age=86400, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Data)
	}
}
