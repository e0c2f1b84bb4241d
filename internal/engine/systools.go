package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// resourceSystemTool runs the agent, agent-doc, doc-search and session
// system tools with the argument shapes Julep's execute_system gives its
// handlers (activities/execute_system.py, common/utils/evaluator.py
// get_handler). ok is false for a tool it does not handle.
//
// From a running step (sc not nil) docs and sessions get ids derived from
// the step, so a step run again after a hand-off writes the same ones; a
// session chat's history entries and model call are at least once, as a
// prompt step's model call is.
func (e *Engine) resourceSystemTool(ctx context.Context, resource, sub, op string, args map[string]any, sc *stepScope) (out any, ok bool, err error) {
	str := func(k string) string { s, _ := args[k].(string); return s }
	data := func() (map[string]any, error) {
		d, _ := args["data"].(map[string]any)
		if d == nil {
			return nil, fmt.Errorf("%s %s needs {data: {...}}", resource, op)
		}
		return d, nil
	}
	newResourceID := func() string {
		if sc != nil {
			return sc.docID()
		}
		return newID()
	}
	switch {
	case resource == "agent" && sub == "" && op == "list":
		q, err := toolListQuery(KindAgent, "", args)
		if err != nil {
			return nil, true, err
		}
		out, err = e.listResources(ctx, q)
		return out, true, err
	case resource == "agent" && sub == "" && op == "get":
		out, err = e.getResource(ctx, KindAgent, str("agent_id"))
		return out, true, err
	case resource == "agent" && sub == "" && op == "create":
		d, err := data()
		if err != nil {
			return nil, true, err
		}
		id := str("agent_id")
		if id == "" {
			id = newResourceID()
		}
		out, err = e.putAgent(ctx, id, d)
		return out, true, err
	case resource == "agent" && sub == "" && op == "update":
		d, err := data()
		if err != nil {
			return nil, true, err
		}
		out, err = e.updateResource(ctx, KindAgent, str("agent_id"), d, false)
		return out, true, err
	case resource == "agent" && sub == "" && op == "delete":
		out, err = e.deleteOwner(ctx, KindAgent, str("agent_id"))
		return out, true, err

	case sub == "doc" && (resource == "agent" || resource == "user"):
		o := docOwner{Role: resource, ID: str(resource + "_id")}
		switch op {
		case "list":
			if err := e.ownerExists(ctx, o); err != nil {
				return nil, true, err
			}
			q, err := toolListQuery(KindDoc, o.parent(), args)
			if err != nil {
				return nil, true, err
			}
			docs, err := e.listResources(ctx, q)
			if err != nil {
				return nil, true, err
			}
			with, ok := args["include_embeddings"].(bool)
			return docs, true, e.withEmbeddings(ctx, o.parent(), docs, with || !ok)
		case "create":
			d, err := data()
			if err != nil {
				return nil, true, err
			}
			out, err = e.createOwnedDoc(ctx, o, d, sc)
			return out, true, err
		case "delete":
			out, err = e.deleteOwnedDoc(ctx, o, str("doc_id"), sc)
			return out, true, err
		case "search":
			req, err := toolSearchRequest(args)
			if err != nil {
				return nil, true, err
			}
			if err := e.ownerExists(ctx, o); err != nil {
				return nil, true, err
			}
			out, err = e.searchOwnedDocs(ctx, []docOwner{o}, req)
			return out, true, err
		}

	case resource == "session" && sub == "":
		switch op {
		case "list":
			q, err := toolListQuery(KindSession, "", args)
			if err != nil {
				return nil, true, err
			}
			out, err = e.listResources(ctx, q)
			return out, true, err
		case "get":
			out, err = e.getResource(ctx, KindSession, str("session_id"))
			return out, true, err
		case "create":
			in := withoutKeys(args, "session_id")
			id := str("session_id")
			if id == "" {
				id = newResourceID()
			}
			out, err = e.putSession(ctx, id, in, nil)
			return out, true, err
		case "create_or_update":
			d, err := data()
			if err != nil {
				return nil, true, err
			}
			out, err = e.putSession(ctx, str("session_id"), d, nil)
			return out, true, err
		case "update":
			old, err := e.getResource(ctx, KindSession, str("session_id"))
			if err != nil {
				return nil, true, err
			}
			out, err = e.putSession(ctx, str("session_id"), withoutKeys(args, "session_id"), old)
			return out, true, err
		case "delete":
			out, err = e.deleteSession(ctx, str("session_id"))
			return out, true, err
		case "history":
			out, err = e.history(ctx, str("session_id"))
			return out, true, err
		case "chat":
			in := withoutKeys(args, "session_id", "x_custom_api_key")
			if s, _ := in["stream"].(bool); s {
				return nil, true, errors.New("session chat from a task cannot stream: leave stream unset")
			}
			turn, err := e.renderChat(ctx, str("session_id"), in)
			if err != nil {
				return nil, true, err
			}
			save := true
			if b, ok := in["save"].(bool); ok {
				save = b
			}
			res, err := e.completeTurn(ctx, str("session_id"), turn, save)
			if err != nil {
				return nil, true, err
			}
			out, err = jsonValue(res)
			return out, true, err
		}
	}
	return nil, false, nil
}

// toolSearchRequest is execute_system's _create_search_request: the
// arguments with search_params over them; its defaults differ from the
// HTTP route's (mmr_strength 0; confidence 0.7 for vector, 0.5 for hybrid;
// alpha 0.75), and like Julep it passes no metadata_filter on.
func toolSearchRequest(args map[string]any) (map[string]any, error) {
	sp := map[string]any{}
	for k, v := range args {
		sp[k] = v
	}
	if p, ok := args["search_params"].(map[string]any); ok {
		for k, v := range p {
			sp[k] = v
		}
	}
	_, hasText := sp["text"]
	_, hasVec := sp["vector"]
	req := map[string]any{"mmr_strength": float64(0)}
	if v, ok := sp["mmr_strength"]; ok {
		req["mmr_strength"] = v
	}
	if v, ok := sp["limit"]; ok {
		req["limit"] = v
	}
	switch {
	case hasText && hasVec:
		req["text"], req["vector"], req["alpha"], req["confidence"] = sp["text"], sp["vector"], 0.75, 0.5
		for _, k := range []string{"alpha", "confidence"} {
			if v, ok := sp[k]; ok {
				req[k] = v
			}
		}
	case hasText:
		req["text"] = sp["text"]
	case hasVec:
		req["vector"], req["confidence"] = sp["vector"], 0.7
		if v, ok := sp["confidence"]; ok {
			req["confidence"] = v
		}
	default:
		return nil, errors.New(`doc search needs {search_params: {text and/or vector, limit}}`)
	}
	return req, nil
}

func withoutKeys(m map[string]any, keys ...string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// jsonValue is v as the JSON types step outputs hold.
func jsonValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}
