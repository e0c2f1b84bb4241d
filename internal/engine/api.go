package engine

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"go.yaml.in/yaml/v3"

	"github.com/astra-app/astra/internal/yamlsize"
)

// maxBody bounds request bodies (task definitions are the largest).
const maxBody = 8 << 20

// Handler serves the API at its root. It routes on the path it receives,
// so it works behind http.StripPrefix("/julep", ...).
func (e *Engine) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(e.auth)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		if e.notBuilt(w, r) {
			return
		}
		e.writeErr(w, r, errorf(http.StatusNotFound, "Not Found"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		if e.notBuilt(w, r) {
			return
		}
		e.writeErr(w, r, errorf(http.StatusMethodNotAllowed, "Method Not Allowed"))
	})

	r.Post("/users", e.handle(func(r *http.Request) (int, any, error) {
		in, err := readObject(r)
		if err != nil {
			return 0, nil, err
		}
		u, err := e.putUser(r.Context(), newID(), in)
		return http.StatusCreated, u, err
	}))
	r.Get("/users", e.listHandler(KindUser, ""))
	r.Route("/users/{id}", func(r chi.Router) {
		r.Use(e.uuidParam("id"))
		r.Post("/", e.handle(func(r *http.Request) (int, any, error) {
			in, err := readObject(r)
			if err != nil {
				return 0, nil, err
			}
			u, err := e.putUser(r.Context(), chi.URLParam(r, "id"), in)
			return http.StatusCreated, u, err
		}))
		r.Get("/", e.handle(func(r *http.Request) (int, any, error) {
			u, err := e.getResource(r.Context(), KindUser, chi.URLParam(r, "id"))
			return http.StatusOK, u, err
		}))
		r.Put("/", e.updateHandler(KindUser, "id", false))
		r.Patch("/", e.updateHandler(KindUser, "id", true))
		r.Delete("/", e.handle(func(r *http.Request) (int, any, error) {
			d, err := e.deleteOwner(r.Context(), KindUser, chi.URLParam(r, "id"))
			return http.StatusAccepted, d, err
		}))
		r.Delete("/docs", e.handle(func(r *http.Request) (int, any, error) {
			return e.bulkDeleteDocs(r, docOwner{Role: "user", ID: chi.URLParam(r, "id")})
		}))
		r.Post("/docs", e.handle(func(r *http.Request) (int, any, error) {
			in, err := readObject(r)
			if err != nil {
				return 0, nil, err
			}
			d, err := e.createDoc(r.Context(), chi.URLParam(r, "id"), in, nil)
			return http.StatusCreated, d, err
		}))
		r.Get("/docs", e.handle(func(r *http.Request) (int, any, error) {
			id := chi.URLParam(r, "id")
			if err := e.userExists(r.Context(), id); err != nil {
				return 0, nil, err
			}
			return e.listDocs(r, id)
		}))
		r.With(e.uuidParam("doc_id")).Delete("/docs/{doc_id}", e.handle(func(r *http.Request) (int, any, error) {
			d, err := e.deleteDoc(r.Context(), chi.URLParam(r, "id"), chi.URLParam(r, "doc_id"), nil)
			return http.StatusAccepted, d, err
		}))
		r.Post("/search", e.handle(func(r *http.Request) (int, any, error) {
			in, err := readObject(r)
			if err != nil {
				return 0, nil, err
			}
			if b, ok := in["body"].(map[string]any); ok && in["text"] == nil && in["vector"] == nil { // the published spec's wrapper
				in = b
			}
			res, err := e.searchDocs(r.Context(), chi.URLParam(r, "id"), in)
			return http.StatusOK, res, err
		}))
	})

	r.Post("/agents", e.handle(func(r *http.Request) (int, any, error) {
		in, err := readObject(r)
		if err != nil {
			return 0, nil, err
		}
		a, err := e.putAgent(r.Context(), newID(), in)
		return http.StatusCreated, a, err
	}))
	r.Get("/agents", e.listHandler(KindAgent, ""))
	r.Route("/agents/{agent_id}", func(r chi.Router) {
		r.Use(e.uuidParam("agent_id"))
		r.Post("/", e.handle(func(r *http.Request) (int, any, error) {
			in, err := readObject(r)
			if err != nil {
				return 0, nil, err
			}
			a, err := e.putAgent(r.Context(), chi.URLParam(r, "agent_id"), in)
			return http.StatusCreated, a, err
		}))
		r.Get("/", e.handle(func(r *http.Request) (int, any, error) {
			a, err := e.getResource(r.Context(), KindAgent, chi.URLParam(r, "agent_id"))
			return http.StatusOK, a, err
		}))
		e.agentRoutes(r)
		r.Post("/tasks", e.handle(func(r *http.Request) (int, any, error) {
			return e.createTask(r, newID())
		}))
		r.With(e.uuidParam("task_id")).Post("/tasks/{task_id}", e.handle(func(r *http.Request) (int, any, error) {
			return e.createTask(r, chi.URLParam(r, "task_id"))
		}))
		// PUT is a create-or-update of an existing task: a new version.
		r.With(e.uuidParam("task_id")).Put("/tasks/{task_id}", e.handle(func(r *http.Request) (int, any, error) {
			id := chi.URLParam(r, "task_id")
			if _, err := e.state.GetTask(r.Context(), id, 0); err != nil {
				return 0, nil, stateErr(err, "task", id)
			}
			_, body, err := e.createTask(r, id)
			return http.StatusOK, body, err
		}))
		r.Get("/tasks", e.handle(func(r *http.Request) (int, any, error) {
			agentID := chi.URLParam(r, "agent_id")
			if _, err := e.getResource(r.Context(), KindAgent, agentID); err != nil {
				return 0, nil, err
			}
			q, err := listQuery(r, "", agentID)
			if err != nil {
				return 0, nil, err
			}
			ts, err := e.state.ListTasks(r.Context(), q)
			if err != nil {
				return 0, nil, err
			}
			items := make([]any, len(ts))
			for i, t := range ts {
				items[i] = taskView(t)
			}
			return http.StatusOK, map[string]any{"items": items}, nil
		}))
	})

	r.Route("/tasks/{task_id}", func(r chi.Router) {
		r.Use(e.uuidParam("task_id"))
		r.Get("/", e.handle(func(r *http.Request) (int, any, error) {
			t, err := e.state.GetTask(r.Context(), chi.URLParam(r, "task_id"), 0)
			if err != nil {
				return 0, nil, stateErr(err, "task", chi.URLParam(r, "task_id"))
			}
			return http.StatusOK, taskView(t), nil
		}))
		r.Post("/executions", e.handle(e.createExecution))
		r.Get("/executions", e.handle(func(r *http.Request) (int, any, error) {
			id := chi.URLParam(r, "task_id")
			if _, err := e.state.GetTask(r.Context(), id, 0); err != nil {
				return 0, nil, stateErr(err, "task", id)
			}
			q, err := listQuery(r, "", id)
			if err != nil {
				return 0, nil, err
			}
			q.MetadataFilter = nil // as the real server: ignored here
			xs, err := e.state.ListExecutions(r.Context(), q)
			if err != nil {
				return 0, nil, err
			}
			items := make([]any, len(xs))
			for i, x := range xs {
				items[i] = executionView(x)
			}
			return http.StatusOK, map[string]any{"items": items}, nil
		}))
	})

	r.Route("/executions/{id}", func(r chi.Router) {
		r.Use(e.uuidParam("id"))
		r.Get("/", e.handle(func(r *http.Request) (int, any, error) {
			x, err := e.state.GetExecution(r.Context(), chi.URLParam(r, "id"))
			if err != nil {
				return 0, nil, stateErr(err, "execution", chi.URLParam(r, "id"))
			}
			return http.StatusOK, executionView(x), nil
		}))
		r.Put("/", e.handle(e.updateExecution))
		r.Get("/transitions", e.handle(func(r *http.Request) (int, any, error) {
			id := chi.URLParam(r, "id")
			if _, err := e.state.GetExecution(r.Context(), id); err != nil {
				return 0, nil, stateErr(err, "execution", id)
			}
			q, err := listQuery(r, "", id)
			if err != nil {
				return 0, nil, err
			}
			trs, err := e.state.ListTransitions(r.Context(), id, q.Limit, q.Offset, q.Desc)
			if err != nil {
				return 0, nil, err
			}
			items := make([]any, len(trs))
			for i, t := range trs {
				items[i] = transitionView(t)
			}
			return http.StatusOK, map[string]any{"items": items}, nil
		}))
		r.Get("/status.stream", func(w http.ResponseWriter, r *http.Request) {
			e.serveStatusStream(w, r, chi.URLParam(r, "id"))
		})
		r.Get("/deltas.stream", func(w http.ResponseWriter, r *http.Request) {
			e.serveDeltaStream(w, r, chi.URLParam(r, "id"))
		})
	})

	// Secrets: api/julep.yaml's /secrets and /secrets/{secret_id}, plus the
	// published spec's /secrets/{developer_id}[/{secret_id}] (the developer id
	// is ignored: the engine has one developer).
	r.Get("/secrets", e.handle(func(r *http.Request) (int, any, error) {
		items, err := e.listSecrets(r)
		return http.StatusOK, items, err
	}))
	r.Post("/secrets", e.handle(func(r *http.Request) (int, any, error) {
		return e.createSecret(r, http.StatusOK)
	}))
	r.Route("/secrets/{id}", func(r chi.Router) {
		r.Use(e.uuidParam("id"))
		r.Get("/", e.handle(func(r *http.Request) (int, any, error) {
			items, err := e.listSecrets(r)
			return http.StatusOK, map[string]any{"items": items}, err
		}))
		r.Post("/", e.handle(func(r *http.Request) (int, any, error) {
			return e.createSecret(r, http.StatusCreated)
		}))
		r.Put("/", e.handle(func(r *http.Request) (int, any, error) {
			return e.updateSecret(r, chi.URLParam(r, "id"))
		}))
		r.Delete("/", e.handle(func(r *http.Request) (int, any, error) {
			return e.deleteSecret(r, chi.URLParam(r, "id"))
		}))
		r.With(e.uuidParam("secret_id")).Put("/{secret_id}", e.handle(func(r *http.Request) (int, any, error) {
			return e.updateSecret(r, chi.URLParam(r, "secret_id"))
		}))
		r.With(e.uuidParam("secret_id")).Delete("/{secret_id}", e.handle(func(r *http.Request) (int, any, error) {
			return e.deleteSecret(r, chi.URLParam(r, "secret_id"))
		}))
	})
	e.sessionRoutes(r)
	return r
}

// auth accepts the key as `Authorization: Bearer <key>` or `X-Auth-Key`.
func (e *Engine) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Auth-Key")
		if key == "" {
			if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
				key = strings.TrimSpace(a[7:])
			}
		}
		if subtle.ConstantTimeCompare([]byte(key), []byte(e.key)) != 1 {
			e.writeErr(w, r, errorf(http.StatusForbidden, "Invalid API key"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (e *Engine) uuidParam(name string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if v := chi.URLParam(r, name); !validID(v) {
				if e.notBuilt(w, r) {
					return
				}
				e.writeErr(w, r, &apiError{Status: http.StatusUnprocessableEntity, Type: "validation_error",
					Message: fmt.Sprintf("path.%s: %q is not a valid UUID", name, v),
					Details: []any{map[string]any{"loc": []any{"path", name}, "msg": "Input should be a valid UUID", "type": "uuid_parsing"}}})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// handle adapts a handler returning (status, body, error) and writes JSON.
func (e *Engine) handle(fn func(*http.Request) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := fn(r)
		if err != nil {
			e.writeErr(w, r, err)
			return
		}
		writeJSON(w, status, body)
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (e *Engine) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			return // the client went away
		}
		e.log.Error("engine: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = errorf(http.StatusInternalServerError, "Internal Server Error")
	}
	typ := ae.Type
	if typ == "" {
		typ = "http_error"
	}
	code := "http_" + strconv.Itoa(ae.Status)
	if typ == "validation_error" {
		code = "validation_error"
	}
	body := map[string]any{"message": ae.Message, "code": code, "type": typ}
	if ae.Details != nil {
		body["details"] = ae.Details
	}
	writeJSON(w, ae.Status, map[string]any{"error": body})
}

func stateErr(err error, what, id string) error {
	if errors.Is(err, ErrNotFound) {
		return notFound(what, id)
	}
	return err
}

func fieldError(field, msg string) map[string]any {
	return map[string]any{"loc": []any{"body", field}, "msg": msg, "type": "value_error"}
}

func validationError(details []any) *apiError {
	parts := make([]string, 0, len(details))
	for _, d := range details {
		if m, ok := d.(map[string]any); ok {
			loc, _ := m["loc"].([]any)
			segs := make([]string, len(loc))
			for i, l := range loc {
				segs[i] = fmt.Sprint(l)
			}
			parts = append(parts, strings.Join(segs, ".")+": "+fmt.Sprint(m["msg"]))
		}
	}
	return &apiError{Status: http.StatusUnprocessableEntity, Type: "validation_error",
		Message: "Invalid request: " + strings.Join(parts, "; "), Details: details}
}

// readObject reads a JSON (or, for task definitions, YAML) object body.
func readObject(r *http.Request) (map[string]any, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body too large or unreadable: %v", err)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var v any
	if strings.Contains(mt, "yaml") {
		// Refuse an alias bomb before yaml.Unmarshal follows the aliases.
		if err := yamlsize.CheckBytes(b); err != nil {
			return nil, &apiError{Status: http.StatusUnprocessableEntity, Type: "validation_error",
				Message: "Invalid YAML: " + err.Error(),
				Details: []any{map[string]any{"loc": []any{"body"}, "msg": err.Error(), "type": "yaml_invalid"}}}
		}
		if err := yaml.Unmarshal(b, &v); err != nil {
			return nil, &apiError{Status: http.StatusUnprocessableEntity, Type: "validation_error",
				Message: "Invalid YAML: " + err.Error(),
				Details: []any{map[string]any{"loc": []any{"body"}, "msg": err.Error(), "type": "yaml_invalid"}}}
		}
		// Round-trip through JSON so numbers and maps have JSON's Go types.
		jb, err := json.Marshal(v)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "YAML body cannot be represented as JSON: %v", err)
		}
		b, v = jb, nil
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, &apiError{Status: http.StatusUnprocessableEntity, Type: "validation_error",
			Message: "Invalid JSON body: " + err.Error(),
			Details: []any{map[string]any{"loc": []any{"body"}, "msg": err.Error(), "type": "json_invalid"}}}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, validationError([]any{map[string]any{"loc": []any{"body"}, "msg": "Input should be an object", "type": "dict_type"}})
	}
	return m, nil
}

// listQuery reads limit, offset, sort_by, direction and metadata_filter.
func listQuery(r *http.Request, kind, parent string) (ListQuery, error) {
	q := ListQuery{Kind: kind, Parent: parent, Limit: 100, Desc: true, SortBy: "created_at"}
	v := r.URL.Query()
	var details []any
	bad := func(name, msg string) {
		details = append(details, map[string]any{"loc": []any{"query", name}, "msg": msg, "type": "value_error"})
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			bad("limit", "must be an integer between 1 and 100")
		}
		q.Limit = n
	}
	if s := v.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			bad("offset", "must be an integer >= 0")
		}
		q.Offset = n
	}
	switch s := v.Get("sort_by"); s {
	case "", "created_at":
	case "updated_at":
		q.SortBy = s
	default:
		bad("sort_by", "must be created_at or updated_at")
	}
	switch s := v.Get("direction"); s {
	case "", "desc":
	case "asc":
		q.Desc = false
	default:
		bad("direction", "must be asc or desc")
	}
	for k, vals := range v {
		if name, ok := strings.CutPrefix(k, "metadata_filter."); ok && name != "" && len(vals) > 0 {
			if q.MetadataFilter == nil {
				q.MetadataFilter = map[string]string{}
			}
			q.MetadataFilter[name] = vals[0]
		}
		if k == "metadata_filter" && len(vals) > 0 && vals[0] != "" && vals[0] != "{}" {
			var m map[string]any
			if err := json.Unmarshal([]byte(vals[0]), &m); err != nil {
				bad("metadata_filter", "must be a JSON object")
				continue
			}
			if q.MetadataFilter == nil {
				q.MetadataFilter = map[string]string{}
			}
			for mk, mv := range m {
				q.MetadataFilter[mk] = textValue(mv)
			}
		}
	}
	if len(details) > 0 {
		return q, validationError(details)
	}
	return q, nil
}

func (e *Engine) list(r *http.Request, kind, parent string) (int, any, error) {
	q, err := listQuery(r, kind, parent)
	if err != nil {
		return 0, nil, err
	}
	items, err := e.listResources(r.Context(), q)
	if err != nil {
		return 0, nil, err
	}
	if items == nil {
		items = []any{}
	}
	return http.StatusOK, map[string]any{"items": items}, nil
}

func (e *Engine) listHandler(kind, parent string) http.HandlerFunc {
	return e.handle(func(r *http.Request) (int, any, error) { return e.list(r, kind, parent) })
}

func (e *Engine) listSecrets(r *http.Request) ([]any, error) {
	q, err := listQuery(r, KindSecret, "")
	if err != nil {
		return nil, err
	}
	items, err := e.listResources(r.Context(), q)
	if items == nil {
		items = []any{}
	}
	return items, err
}

func (e *Engine) createSecret(r *http.Request, status int) (int, any, error) {
	in, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	s, err := e.putSecret(r.Context(), "", in, false)
	return status, s, err
}

func (e *Engine) updateSecret(r *http.Request, id string) (int, any, error) {
	in, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	s, err := e.putSecret(r.Context(), id, in, false)
	return http.StatusOK, s, err
}

func (e *Engine) deleteSecret(r *http.Request, id string) (int, any, error) {
	defer e.cache.dropSecrets()
	if err := e.state.DeleteResource(r.Context(), KindSecret, id); err != nil {
		return 0, nil, stateErr(err, "secret", id)
	}
	return http.StatusAccepted, map[string]any{"id": id, "deleted_at": ts(e.now()), "jobs": []any{}}, nil
}
