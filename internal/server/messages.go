package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/httpobs"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/telemetry"
)

// Limits on a posted message.
const (
	MaxContentRunes   = 2000    // the original's limit, counted after trimming
	MaxMetadataBytes  = 8 << 10 // encoded
	MaxMetadataDepth  = 16
	listMessagesLimit = 50
)

// newMessage is a validated POST body.
type newMessage struct {
	Content  string
	Metadata map[string]any
}

func invalid(msg string) error { return responder.Errorf(responder.EINVALID, "%s", msg) }

// decodeMessage validates a POST /api/responder/messages body with the
// original app's rules and texts, plus limits on metadata that keep it
// storable in MongoDB (no "$"-prefixed or dotted keys) and small.
func decodeMessage(body []byte) (newMessage, error) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return newMessage{}, invalid("Invalid JSON")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return newMessage{}, invalid("Invalid payload")
	}
	raw, _ := obj["content"].(string)
	content := strings.TrimFunc(raw, isJSSpace)
	if content == "" {
		return newMessage{}, invalid("Message content is required")
	}
	if utf8.RuneCountInString(content) > MaxContentRunes {
		return newMessage{}, invalid("Message is too long")
	}
	m := newMessage{Content: content}
	// A null metadata is treated as absent: the row stores null either way.
	if md, present := obj["metadata"]; present && md != nil {
		mo, ok := md.(map[string]any)
		if !ok {
			return newMessage{}, invalid("Metadata must be an object")
		}
		if err := checkMetadata(mo, 1); err != nil {
			return newMessage{}, err
		}
		if b, err := json.Marshal(mo); err != nil || len(b) > MaxMetadataBytes {
			return newMessage{}, invalid("Metadata is too large")
		}
		m.Metadata = mo
	}
	return m, nil
}

// isJSSpace is what JavaScript's String.prototype.trim removes: Unicode
// white space plus the byte order mark.
func isJSSpace(r rune) bool { return unicode.IsSpace(r) || r == '\uFEFF' }

// checkMetadata refuses keys MongoDB would read as operators or paths, at
// any depth, and nesting deeper than MaxMetadataDepth.
func checkMetadata(v any, depth int) error {
	if depth > MaxMetadataDepth {
		return invalid("Metadata is too deeply nested")
	}
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if strings.HasPrefix(k, "$") || strings.Contains(k, ".") {
				return invalid("Metadata keys must not start with $ or contain .")
			}
			if err := checkMetadata(x, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := checkMetadata(x, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *server) handlePostMessage(w http.ResponseWriter, r *http.Request) {
	id := auth.FromContext(r.Context())
	if ok, wait := s.limit.allow(id.User.ID, s.Now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
		s.writeError(w, r, responder.Errorf(responder.ERATELIMITED,
			"Too many messages: please wait %d seconds before sending another", retryAfterSeconds(wait)))
		return
	}
	in, err := decode(w, r, s.MaxMessageBytes, decodeMessage)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	julepUser := id.User.JulepUserID
	if julepUser == "" {
		// Deterministic, so the dispatcher's create-or-update lands on the
		// same Julep user; Julep itself is not called on the request path.
		julepUser = responder.JulepUserID(id.User.ID)
	}
	m := responder.Message{UserID: id.User.ID, JulepUserID: julepUser, Content: in.Content, Metadata: in.Metadata,
		TraceParent: telemetry.Traceparent(r.Context())} // the dispatcher continues this request's trace
	if err := s.Store.Enqueue(r.Context(), &m); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "message received", "outbox_id", m.ID, "user", m.UserID,
		"request_id", httpobs.RequestID(r.Context()))
	// Every tab of the person shows the message at once (this instance's
	// sockets; other instances learn of it with its first event).
	s.Hub.PublishOutbox(m)
	if s.OnEnqueue != nil {
		s.OnEnqueue(m)
	}
	encode(w, http.StatusAccepted, struct {
		OK     bool             `json:"ok"`
		ID     string           `json:"id"`
		Status responder.Status `json:"status"`
	}{true, m.ID, responder.StatusPending})
}

// messageJSON is a message as GET /api/responder/messages shows it.
type messageJSON struct {
	ID          string `json:"id"`
	Content     string `json:"content"`
	CreatedAt   string `json:"createdAt"`
	Status      string `json:"status"`
	LastError   string `json:"lastError,omitempty"`
	ExecutionID string `json:"executionId,omitempty"`
	// RetryOf links a message the person sent again (Retry) to the failed one.
	RetryOf string `json:"retryOf,omitempty"`
}

func toMessageJSON(m *responder.Message) messageJSON {
	return messageJSON{
		ID: m.ID, Content: m.Content, CreatedAt: isoTime(m.CreatedAt),
		Status: string(responder.ParseStatus(string(m.Status))), LastError: m.LastError, ExecutionID: m.ExecutionID,
		RetryOf: retryOf(m),
	}
}

// retryOf is the failed message m was sent again for, if any.
func retryOf(m *responder.Message) string {
	id, _ := m.Metadata["retryOf"].(string)
	return id
}

func (s *server) handleListMessages(w http.ResponseWriter, r *http.Request) {
	id := auth.FromContext(r.Context())
	msgs, err := s.Store.UserMessages(r.Context(), id.User.ID, listMessagesLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]messageJSON, 0, len(msgs))
	for i := range msgs {
		out = append(out, toMessageJSON(&msgs[i]))
	}
	encode(w, http.StatusOK, struct {
		Messages []messageJSON `json:"messages"`
	}{out})
}

var errMessageNotFound = responder.Errorf(responder.ENOTFOUND, "Message not found")

// handleExecution shows a message's Julep execution to its owner. Another
// user's message is "not found", exactly like a missing one, so ids cannot
// be probed.
func (s *server) handleExecution(w http.ResponseWriter, r *http.Request) {
	id := auth.FromContext(r.Context())
	m, err := s.Store.Message(r.Context(), chi.URLParam(r, "id"))
	if responder.IsNotFound(err) || (err == nil && m.UserID != id.User.ID) {
		s.writeError(w, r, errMessageNotFound)
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		ID          string  `json:"id"`
		Status      string  `json:"status"`
		LastError   string  `json:"lastError,omitempty"`
		ExecutionID *string `json:"executionId"`
		Execution   any     `json:"execution"`
	}{ID: m.ID, Status: string(responder.ParseStatus(string(m.Status))), LastError: m.LastError}
	if m.ExecutionID != "" {
		out.ExecutionID = &m.ExecutionID
		if s.Execution != nil {
			if out.Execution, err = s.Execution(r.Context(), m.ExecutionID); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
	}
	encode(w, http.StatusOK, out)
}

// isoTime formats t as JavaScript's Date.toISOString does: UTC, milliseconds, "Z".
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
