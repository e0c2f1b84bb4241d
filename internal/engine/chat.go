package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/go-chi/chi/v5"
)

// chat answers POST /sessions/{id}/chat: Julep's legacy chat. The turn is
// rendered (renderChat), sent to the engine's model, and with save (the
// default) the new messages and the answer are appended to the history.
// stream: true answers Server-Sent Events, one ChunkChatResponse per
// delta, and saves once the answer is whole. remember is accepted and has
// no effect, as in Julep v1 ("will be enabled in a future release").
func (e *Engine) chat(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sessionID := chi.URLParam(r, "id")
	in, err := readObject(r)
	if err != nil {
		e.writeErr(w, r, err)
		return
	}
	turn, err := e.renderChat(ctx, sessionID, in)
	if err != nil {
		e.writeErr(w, r, err)
		return
	}
	save := true
	if b, ok := in["save"].(bool); ok {
		save = b
	}
	stream, _ := in["stream"].(bool)
	req := turn.modelRequest()
	id, created := newID(), ts(e.now())
	model := req.Model

	if !stream {
		out, err := e.completeTurn(ctx, sessionID, turn, save)
		if err != nil {
			e.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
		return
	}

	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(delta map[string]any, finish string, usage any) {
		chunk := map[string]any{"id": id, "created_at": created, "docs": turn.docs, "jobs": []any{}, "usage": usage,
			"choices": []any{map[string]any{"index": 0, "finish_reason": finish, "delta": delta}}}
		b, _ := json.Marshal(chunk)
		_, _ = fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	res, err := e.model.Chat(ctx, req, func(d string) {
		send(map[string]any{"role": "assistant", "content": d}, "stop", nil)
	})
	if err != nil {
		// The status line is sent: say what failed in the stream itself.
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": "model: " + err.Error(), "code": "http_502", "type": "http_error"}})
		_, _ = fmt.Fprintf(w, "data: %s\n\n", b)
		return
	}
	send(map[string]any{"role": "assistant", "content": ""}, finishReason(res.FinishReason), res.Usage)
	if save {
		// The client may be gone; the answer it was sent is still saved.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := e.saveTurn(sctx, sessionID, model, turn, res.Content, res.FinishReason); err != nil {
			e.log.Error("engine: save streamed chat turn", "session_id", sessionID, "err", err)
		}
	}
}

// completeTurn asks the model for a rendered turn's answer, saves the turn
// when asked to, and answers Julep's MessageChatResponse.
func (e *Engine) completeTurn(ctx context.Context, sessionID string, turn *chatTurn, save bool) (map[string]any, error) {
	req := turn.modelRequest()
	res, err := e.model.Chat(ctx, req, nil)
	if err != nil {
		return nil, errorf(http.StatusBadGateway, "model: %v", err)
	}
	if save {
		if err := e.saveTurn(ctx, sessionID, req.Model, turn, res.Content, res.FinishReason); err != nil {
			return nil, err
		}
	}
	return map[string]any{"id": newID(), "created_at": ts(e.now()), "jobs": []any{}, "docs": turn.docs,
		"usage": res.Usage, "choices": []any{map[string]any{"index": 0, "finish_reason": finishReason(res.FinishReason),
			"message": map[string]any{"role": "assistant", "content": res.Content}}}}, nil
}

func finishReason(s string) string {
	if s == "" {
		return "stop"
	}
	return s
}

func (e *Engine) saveTurn(ctx context.Context, sessionID, model string, t *chatTurn, answer, finish string) error {
	if err := e.addEntries(ctx, sessionID, model, "api_request", t.newMsgs); err != nil {
		return err
	}
	return e.addEntries(ctx, sessionID, model, "api_response", []map[string]any{{"role": "assistant", "content": answer}})
}

// render answers POST /sessions/{id}/render: the messages, docs and tools a
// chat with this input would send.
func (e *Engine) render(r *http.Request) (int, any, error) {
	in, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	t, err := e.renderChat(r.Context(), chi.URLParam(r, "id"), in)
	if err != nil {
		return 0, nil, err
	}
	msgs := make([]any, len(t.messages))
	for i, m := range t.messages {
		msgs[i] = m
	}
	return http.StatusOK, map[string]any{"messages": msgs, "docs": t.docs, "tools": t.tools}, nil
}

// Agent tools

var toolTypes = map[string]bool{"function": true, "integration": true, "system": true, "api_call": true,
	"computer_20241022": true, "text_editor_20241022": true, "bash_20241022": true}

// toolName is Julep's tool name rule: a Python identifier of at most 40.
var toolName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,39}$`)

// putTool creates or replaces one of an agent's tools. The block named by
// the type (function, system, api_call, integration, ...) is required.
func (e *Engine) putTool(ctx context.Context, agentID, id string, in map[string]any) (map[string]any, error) {
	if _, err := e.getResource(ctx, KindAgent, agentID); err != nil {
		return nil, err
	}
	var details []any
	name, _ := in["name"].(string)
	if !toolName.MatchString(name) {
		details = append(details, fieldError("name", "must be a valid identifier of at most 40 characters"))
	}
	typ, _ := in["type"].(string)
	if !toolTypes[typ] {
		details = append(details, fieldError("type", "must be one of function, integration, system, api_call, computer_20241022, text_editor_20241022, bash_20241022"))
	} else if _, ok := in[typ].(map[string]any); !ok {
		details = append(details, fieldError(typ, "is required for a tool of type "+typ))
	} else if err := checkToolBlock(typ, in[typ].(map[string]any)); err != nil {
		details = append(details, fieldError(typ, err.Error()))
	}
	if d, ok := in["description"]; ok && d != nil {
		if _, ok := d.(string); !ok {
			details = append(details, fieldError("description", "must be a string"))
		}
	}
	if len(details) > 0 {
		return nil, validationError(details)
	}
	body := map[string]any{"id": id, "agent_id": agentID, "name": name, "type": typ, "description": in["description"], typ: in[typ]}
	defer e.cache.dropAgent(agentID)
	return e.putResource(ctx, KindTool, id, agentID, map[string]any{}, body, nil)
}

func checkToolBlock(typ string, b map[string]any) error {
	switch typ {
	case "system":
		for _, k := range []string{"resource", "operation"} {
			if s, _ := b[k].(string); s == "" {
				return fmt.Errorf("%s is required", k)
			}
		}
	case "api_call":
		if s, _ := b["method"].(string); s == "" {
			return errors.New("method is required")
		}
		if s, _ := b["url"].(string); s == "" {
			return errors.New("url is required")
		}
	case "integration":
		if s, _ := b["provider"].(string); s == "" {
			return errors.New("provider is required")
		}
	}
	return nil
}

func (e *Engine) getTool(ctx context.Context, agentID, id string) (map[string]any, error) {
	r, err := e.state.GetResource(ctx, KindTool, id)
	if errors.Is(err, ErrNotFound) || (err == nil && r.Parent != agentID) {
		return nil, notFound("tool", id)
	}
	if err != nil {
		return nil, err
	}
	return decodeBody(r.Body), nil
}

// Users and agents: update, patch, delete

// updateResource is PUT (replace) or PATCH (merge) of a user or agent
// that must exist.
func (e *Engine) updateResource(ctx context.Context, kind, id string, in map[string]any, patch bool) (map[string]any, error) {
	old, err := e.getResource(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	if patch {
		in = mergePatch(old, in)
	} else if kind == KindAgent {
		// PUT keeps what Julep's UpdateAgentRequest does not carry.
		if _, ok := in["default_system_template"]; !ok {
			in["default_system_template"] = old["default_system_template"]
		}
	}
	if kind == KindUser {
		return e.putUser(ctx, id, in)
	}
	return e.putAgent(ctx, id, in)
}

// deleteOwner deletes a user or agent with its docs (and an agent's tools).
func (e *Engine) deleteOwner(ctx context.Context, kind, id string) (map[string]any, error) {
	if _, err := e.getResource(ctx, kind, id); err != nil {
		return nil, err
	}
	o := docOwner{Role: kind, ID: id}
	kinds := map[string]string{KindDoc: o.parent(), KindDocVectors: o.parent()}
	if kind == KindAgent {
		kinds[KindTool] = id
	}
	for k, parent := range kinds {
		rs, err := e.state.ListResources(ctx, ListQuery{Kind: k, Parent: parent})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if err := e.state.DeleteResource(ctx, k, r.ID); err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
	}
	if err := e.state.DeleteResource(ctx, kind, id); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	e.cache.mu.Lock()
	delete(e.cache.users, id)
	e.cache.mu.Unlock()
	e.cache.dropAgent(id)
	return map[string]any{"id": id, "deleted_at": ts(e.now()), "jobs": []any{}}, nil
}

// embedTexts answers POST /embed: {text: string | [string]} (also inside
// the published spec's {"body": ...}) -> {vectors}.
func (e *Engine) embedTexts(r *http.Request) (int, any, error) {
	in, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	if b, ok := in["body"].(map[string]any); ok && in["text"] == nil {
		in = b
	}
	var texts []string
	switch t := in["text"].(type) {
	case string:
		texts = []string{t}
	case []any:
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return 0, nil, validationError([]any{fieldError("text", "must be a string or a list of strings")})
			}
			texts = append(texts, s)
		}
	}
	if len(texts) == 0 || len(texts) > 100 {
		return 0, nil, validationError([]any{fieldError("text", "must be a string or a list of 1 to 100 strings")})
	}
	vecs, err := e.embed.Embed(r.Context(), texts)
	if err != nil {
		return 0, nil, errorf(http.StatusBadGateway, "embed: %v", err)
	}
	return http.StatusOK, map[string]any{"vectors": vecs}, nil
}
