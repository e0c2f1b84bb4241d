package engine

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// agentRoutes are the agent routes beyond create/get and tasks: update,
// patch, delete, tools and docs. r is the /agents/{agent_id} router.
func (e *Engine) agentRoutes(r chi.Router) {
	agent := func(r *http.Request) string { return chi.URLParam(r, "agent_id") }
	r.Put("/", e.updateHandler(KindAgent, "agent_id", false))
	r.Patch("/", e.updateHandler(KindAgent, "agent_id", true))
	r.Delete("/", e.handle(func(r *http.Request) (int, any, error) {
		d, err := e.deleteOwner(r.Context(), KindAgent, agent(r))
		return http.StatusAccepted, d, err
	}))

	r.Post("/tools", e.handle(func(r *http.Request) (int, any, error) {
		in, err := readObject(r)
		if err != nil {
			return 0, nil, err
		}
		t, err := e.putTool(r.Context(), agent(r), newID(), in)
		return http.StatusCreated, t, err
	}))
	r.Get("/tools", e.handle(func(r *http.Request) (int, any, error) {
		if _, err := e.getResource(r.Context(), KindAgent, agent(r)); err != nil {
			return 0, nil, err
		}
		return e.list(r, KindTool, agent(r))
	}))
	r.Route("/tools/{tool_id}", func(r chi.Router) {
		r.Use(e.uuidParam("tool_id"))
		update := func(patch bool) http.HandlerFunc {
			return e.handle(func(r *http.Request) (int, any, error) {
				in, err := readObject(r)
				if err != nil {
					return 0, nil, err
				}
				old, err := e.getTool(r.Context(), agent(r), chi.URLParam(r, "tool_id"))
				if err != nil {
					return 0, nil, err
				}
				if patch {
					in = mergePatch(old, in)
				}
				t, err := e.putTool(r.Context(), agent(r), chi.URLParam(r, "tool_id"), in)
				return http.StatusOK, t, err
			})
		}
		r.Put("/", update(false))
		r.Patch("/", update(true))
		r.Delete("/", e.handle(func(r *http.Request) (int, any, error) {
			id := chi.URLParam(r, "tool_id")
			if _, err := e.getTool(r.Context(), agent(r), id); err != nil {
				return 0, nil, err
			}
			if err := e.state.DeleteResource(r.Context(), KindTool, id); err != nil && !errors.Is(err, ErrNotFound) {
				return 0, nil, err
			}
			e.cache.dropAgent(agent(r))
			return http.StatusAccepted, map[string]any{"id": id, "deleted_at": ts(e.now()), "jobs": []any{}}, nil
		}))
	})

	owner := func(r *http.Request) docOwner { return docOwner{Role: "agent", ID: agent(r)} }
	r.Post("/docs", e.handle(func(r *http.Request) (int, any, error) {
		in, err := readObject(r)
		if err != nil {
			return 0, nil, err
		}
		d, err := e.createOwnedDoc(r.Context(), owner(r), in, nil)
		return http.StatusCreated, d, err
	}))
	r.Get("/docs", e.handle(func(r *http.Request) (int, any, error) {
		if err := e.ownerExists(r.Context(), owner(r)); err != nil {
			return 0, nil, err
		}
		return e.listDocs(r, owner(r).parent())
	}))
	r.Delete("/docs", e.handle(func(r *http.Request) (int, any, error) {
		return e.bulkDeleteDocs(r, owner(r))
	}))
	r.With(e.uuidParam("doc_id")).Delete("/docs/{doc_id}", e.handle(func(r *http.Request) (int, any, error) {
		d, err := e.deleteOwnedDoc(r.Context(), owner(r), chi.URLParam(r, "doc_id"), nil)
		return http.StatusAccepted, d, err
	}))
	r.Post("/search", e.handle(func(r *http.Request) (int, any, error) {
		in, err := readObject(r)
		if err != nil {
			return 0, nil, err
		}
		if b, ok := in["body"].(map[string]any); ok && in["text"] == nil && in["vector"] == nil {
			in = b
		}
		if err := e.ownerExists(r.Context(), owner(r)); err != nil {
			return 0, nil, err
		}
		res, err := e.searchOwnedDocs(r.Context(), []docOwner{owner(r)}, in)
		return http.StatusOK, res, err
	}))
}

// sessionRoutes are sessions, chat, history and render, and the routes that
// belong to no resource: docs.get, embed, healthz.
func (e *Engine) sessionRoutes(r chi.Router) {
	r.Post("/sessions", e.handle(func(r *http.Request) (int, any, error) {
		in, err := readObject(r)
		if err != nil {
			return 0, nil, err
		}
		s, err := e.putSession(r.Context(), newID(), in, nil)
		return http.StatusCreated, s, err
	}))
	r.Get("/sessions", e.listHandler(KindSession, ""))
	r.Route("/sessions/{id}", func(r chi.Router) {
		r.Use(e.uuidParam("id"))
		id := func(r *http.Request) string { return chi.URLParam(r, "id") }
		r.Post("/", e.handle(func(r *http.Request) (int, any, error) {
			in, err := readObject(r)
			if err != nil {
				return 0, nil, err
			}
			s, err := e.putSession(r.Context(), id(r), in, nil)
			return http.StatusCreated, s, err
		}))
		r.Get("/", e.handle(func(r *http.Request) (int, any, error) {
			s, err := e.getResource(r.Context(), KindSession, id(r))
			return http.StatusOK, s, err
		}))
		r.Put("/", e.handle(func(r *http.Request) (int, any, error) {
			in, err := readObject(r)
			if err != nil {
				return 0, nil, err
			}
			old, err := e.getResource(r.Context(), KindSession, id(r))
			if err != nil {
				return 0, nil, err
			}
			s, err := e.putSession(r.Context(), id(r), in, old)
			return http.StatusOK, s, err
		}))
		r.Patch("/", e.handle(func(r *http.Request) (int, any, error) {
			in, err := readObject(r)
			if err != nil {
				return 0, nil, err
			}
			s, err := e.patchSession(r.Context(), id(r), in)
			return http.StatusOK, s, err
		}))
		r.Delete("/", e.handle(func(r *http.Request) (int, any, error) {
			d, err := e.deleteSession(r.Context(), id(r))
			return http.StatusAccepted, d, err
		}))
		r.Post("/chat", e.chat)
		r.Post("/render", e.handle(e.render))
		r.Get("/history", e.handle(func(r *http.Request) (int, any, error) {
			h, err := e.history(r.Context(), id(r))
			return http.StatusOK, h, err
		}))
		// Resetting a session is deleting its history.
		r.Delete("/history", e.handle(func(r *http.Request) (int, any, error) {
			if _, err := e.getResource(r.Context(), KindSession, id(r)); err != nil {
				return 0, nil, err
			}
			if err := e.clearHistory(r.Context(), id(r)); err != nil {
				return 0, nil, err
			}
			return http.StatusAccepted, map[string]any{"id": id(r), "deleted_at": ts(e.now()), "jobs": []any{}}, nil
		}))
	})

	r.With(e.uuidParam("id")).Get("/docs/{id}", e.handle(func(r *http.Request) (int, any, error) {
		id := chi.URLParam(r, "id")
		d, err := e.state.GetResource(r.Context(), KindDoc, id)
		if err != nil {
			return 0, nil, stateErr(err, "doc", id)
		}
		with, err := includeEmbeddings(r)
		if err != nil {
			return 0, nil, err
		}
		doc := decodeBody(d.Body)
		delete(doc, "updated_at")
		if err := e.withEmbeddings(r.Context(), d.Parent, []any{doc}, with); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, doc, nil
	}))
	r.Post("/embed", e.handle(e.embedTexts))
	r.Get("/healthz", e.handle(func(r *http.Request) (int, any, error) {
		if _, err := e.state.ListResources(r.Context(), ListQuery{Kind: KindAgent, Limit: 1}); err != nil {
			return 0, nil, errorf(http.StatusServiceUnavailable, "state unavailable: %v", err)
		}
		return http.StatusOK, map[string]any{"status": "ok"}, nil
	}))
}

// notBuilt answers a request for one of the spec's operations the engine
// does not serve (NotBuilt) with 501 and a JSON error naming it; it reports
// false for any other request. The router's not-found and
// method-not-allowed handlers ask it, so the 501 routes never shadow
// served ones.
func (e *Engine) notBuilt(w http.ResponseWriter, r *http.Request) bool {
	op, ok := matchOperation(r.Method, r.URL.Path)
	if !ok || !op.NotBuilt {
		return false
	}
	e.writeErr(w, r, &apiError{Status: http.StatusNotImplemented, Type: "not_implemented",
		Message: op.ID + " (" + op.Method + " " + op.Path + ") is not implemented by the embedded engine"})
	return true
}

func (e *Engine) updateHandler(kind, param string, patch bool) http.HandlerFunc {
	return e.handle(func(r *http.Request) (int, any, error) {
		in, err := readObject(r)
		if err != nil {
			return 0, nil, err
		}
		v, err := e.updateResource(r.Context(), kind, chi.URLParam(r, param), in, patch)
		return http.StatusOK, v, err
	})
}

func (e *Engine) bulkDeleteDocs(r *http.Request, o docOwner) (int, any, error) {
	in, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	if err := e.ownerExists(r.Context(), o); err != nil {
		return 0, nil, err
	}
	res, err := e.deleteOwnedDocs(r.Context(), o, in)
	if err != nil {
		return 0, nil, err
	}
	out := []any{}
	for _, id := range res["deleted"].([]any) {
		out = append(out, map[string]any{"id": id, "deleted_at": res["deleted_at"], "jobs": []any{}})
	}
	return http.StatusAccepted, out, nil
}

// includeEmbeddings reads the include_embeddings query parameter (default
// true, as Julep's list and get routes).
func includeEmbeddings(r *http.Request) (bool, error) {
	switch r.URL.Query().Get("include_embeddings") {
	case "", "true", "True", "1":
		return true, nil
	case "false", "False", "0":
		return false, nil
	}
	return false, validationError([]any{map[string]any{"loc": []any{"query", "include_embeddings"}, "msg": "must be true or false", "type": "bool_parsing"}})
}

// listDocs lists the docs under parent, without their vectors when the
// request says include_embeddings=false.
func (e *Engine) listDocs(r *http.Request, parent string) (int, any, error) {
	with, err := includeEmbeddings(r)
	if err != nil {
		return 0, nil, err
	}
	status, body, err := e.list(r, KindDoc, parent)
	if err != nil {
		return status, body, err
	}
	return status, body, e.withEmbeddings(r.Context(), parent, body.(map[string]any)["items"].([]any), with)
}
