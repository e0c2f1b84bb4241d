package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
)

// apiError is an error with the HTTP status and shape Julep answers with.
type apiError struct {
	Status  int
	Message string
	Type    string // http_error unless set
	Details any
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{Status: status, Message: fmt.Sprintf(format, args...)}
}

func notFound(what, id string) *apiError {
	return errorf(http.StatusNotFound, "%s %s not found", what, id)
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func decodeBody(raw json.RawMessage) map[string]any {
	m := map[string]any{}
	_ = json.Unmarshal(raw, &m)
	return m
}

func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil
}

func asMetadata(v any) (map[string]any, error) {
	switch m := v.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return m, nil
	}
	return nil, errors.New("metadata must be an object")
}

// putUser creates or replaces a user (create-or-update keeps created_at).
func (e *Engine) putUser(ctx context.Context, id string, in map[string]any) (map[string]any, error) {
	var details []any
	name, ok := in["name"].(string)
	if in["name"] != nil && !ok {
		details = append(details, fieldError("name", "must be a string"))
	}
	if len([]rune(name)) > 120 {
		details = append(details, fieldError("name", "must be at most 120 characters"))
	}
	about, ok := in["about"].(string)
	if in["about"] != nil && !ok {
		details = append(details, fieldError("about", "must be a string"))
	}
	meta, err := asMetadata(in["metadata"])
	if err != nil {
		details = append(details, fieldError("metadata", err.Error()))
	}
	if len(details) > 0 {
		return nil, validationError(details)
	}
	body := map[string]any{"id": id, "name": name, "about": about, "metadata": meta}
	if p, ok := in["project"].(string); ok {
		body["project"] = p
	}
	return e.putResource(ctx, KindUser, id, "", meta, body, nil)
}

// putAgent creates or replaces an agent.
func (e *Engine) putAgent(ctx context.Context, id string, in map[string]any) (map[string]any, error) {
	var details []any
	name, _ := in["name"].(string)
	if strings.TrimSpace(name) == "" {
		details = append(details, fieldError("name", "is required"))
	} else if len([]rune(name)) > 255 {
		details = append(details, fieldError("name", "must be at most 255 characters"))
	}
	meta, err := asMetadata(in["metadata"])
	if err != nil {
		details = append(details, fieldError("metadata", err.Error()))
	}
	switch v := in["instructions"].(type) {
	case nil, string:
	case []any:
		for _, i := range v {
			if _, ok := i.(string); !ok {
				details = append(details, fieldError("instructions", "must be a string or a list of strings"))
				break
			}
		}
	default:
		details = append(details, fieldError("instructions", "must be a string or a list of strings"))
	}
	if len(details) > 0 {
		return nil, validationError(details)
	}
	body := map[string]any{"id": id, "name": name, "about": "", "model": "", "instructions": []any{},
		"default_settings": map[string]any{}, "metadata": meta}
	for _, k := range []string{"about", "model", "instructions", "default_settings", "default_system_template", "project", "canonical_name"} {
		if v, ok := in[k]; ok && v != nil {
			body[k] = v
		}
	}
	defer e.cache.dropAgent(id)
	return e.putResource(ctx, KindAgent, id, "", meta, body, nil)
}

// putResource creates or replaces a resource; under a fence (a running
// execution's write) only while the execution's claim holds.
func (e *Engine) putResource(ctx context.Context, kind, id, parent string, meta, body map[string]any, f *Fence) (map[string]any, error) {
	now := e.now()
	created := now
	if old, err := e.state.GetResource(ctx, kind, id); err == nil {
		created = old.CreatedAt
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	body["created_at"], body["updated_at"] = ts(created), ts(now)
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	res := Resource{Kind: kind, ID: id, Parent: parent, CreatedAt: created, UpdatedAt: now, Metadata: meta, Body: raw}
	if f != nil {
		err = e.state.PutResourceFenced(ctx, res, *f)
	} else {
		err = e.state.PutResource(ctx, res)
	}
	if err != nil {
		return nil, err
	}
	return body, nil
}

func (e *Engine) getResource(ctx context.Context, kind, id string) (map[string]any, error) {
	r, err := e.state.GetResource(ctx, kind, id)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound(kind, id)
	}
	if err != nil {
		return nil, err
	}
	return decodeBody(r.Body), nil
}

func (e *Engine) listResources(ctx context.Context, q ListQuery) ([]any, error) {
	rs, err := e.state.ListResources(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(rs))
	for i, r := range rs {
		out[i] = decodeBody(r.Body)
	}
	return out, nil
}

// createDoc adds a doc to a user (see createOwnedDoc).
func (e *Engine) createDoc(ctx context.Context, userID string, in map[string]any, sc *stepScope) (map[string]any, error) {
	return e.createOwnedDoc(ctx, docOwner{Role: "user", ID: userID}, in, sc)
}

func (e *Engine) deleteDoc(ctx context.Context, userID, docID string, sc *stepScope) (map[string]any, error) {
	return e.deleteOwnedDoc(ctx, docOwner{Role: "user", ID: userID}, docID, sc)
}

// searchDocs searches a user's docs (see searchOwnedDocs).
func (e *Engine) searchDocs(ctx context.Context, userID string, req map[string]any) (map[string]any, error) {
	if err := e.userExists(ctx, userID); err != nil {
		return nil, err
	}
	return e.searchOwnedDocs(ctx, []docOwner{{Role: "user", ID: userID}}, req)
}

var stopwords = map[string]bool{"a": true, "an": true, "the": true, "and": true, "or": true, "of": true,
	"to": true, "in": true, "on": true, "is": true, "are": true, "was": true, "it": true, "for": true,
	"with": true, "as": true, "at": true, "by": true, "be": true, "this": true, "that": true}

func tokenize(s string) []string {
	fields := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	out := fields[:0]
	for _, f := range fields {
		if !stopwords[f] {
			out = append(out, f)
		}
	}
	return out
}

// containsJSON is JSONB containment (@>) of filter in m.
func containsJSON(m map[string]any, filter map[string]any) bool {
	for k, want := range filter {
		got, ok := m[k]
		if !ok || !jsonContains(got, want) {
			return false
		}
	}
	return true
}

func jsonContains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		return ok && containsJSON(g, w)
	case []any:
		g, ok := got.([]any)
		if !ok {
			return false
		}
		for _, wi := range w {
			found := false
			for _, gi := range g {
				if jsonContains(gi, wi) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}

// systemTool runs a `system` tool with the argument shapes of Julep's
// handlers, for the step sc.
func (e *Engine) systemTool(ctx context.Context, sys map[string]any, args map[string]any, sc *stepScope) (any, error) {
	resource, _ := sys["resource"].(string)
	sub, _ := sys["subresource"].(string)
	op, _ := sys["operation"].(string)
	userID, _ := args["user_id"].(string)
	// Agent, doc and session tools: systools.go.
	if out, ok, err := e.resourceSystemTool(ctx, resource, sub, op, args, sc); ok {
		return out, err
	}
	switch {
	case resource == "user" && sub == "" && op == "get":
		return e.getResource(ctx, KindUser, userID)
	case resource == "user" && sub == "" && op == "list":
		q, err := toolListQuery(KindUser, "", args)
		if err != nil {
			return nil, err
		}
		return e.listResources(ctx, q)
	}
	return nil, fmt.Errorf("system tool %s/%s/%s is not supported by the embedded engine", resource, sub, op)
}

func toolListQuery(kind, parent string, args map[string]any) (ListQuery, error) {
	q := ListQuery{Kind: kind, Parent: parent, Limit: 100, Desc: true, SortBy: "created_at"}
	if l, ok := toFloat(args["limit"]); ok {
		if l < 1 || l > 1000 {
			return q, errors.New("limit must be between 1 and 1000")
		}
		q.Limit = int(l)
	}
	if o, ok := toFloat(args["offset"]); ok && o >= 0 {
		q.Offset = int(o)
	}
	if s, _ := args["sort_by"].(string); s == "updated_at" {
		q.SortBy = s
	}
	if d, _ := args["direction"].(string); d == "asc" {
		q.Desc = false
	}
	if mf, ok := args["metadata_filter"].(map[string]any); ok {
		q.MetadataFilter = map[string]string{}
		for k, v := range mf {
			q.MetadataFilter[k] = textValue(v)
		}
	}
	return q, nil
}

// textValue renders a JSON value as Postgres renders jsonb ->> text.
func textValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return fmt.Sprintf("%d", int64(v))
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Secrets

func (e *Engine) seedSecrets(ctx context.Context, secrets map[string]string) error {
	for name, value := range secrets {
		if _, err := e.putSecret(ctx, "", map[string]any{"name": name, "value": value}, true); err != nil {
			return fmt.Errorf("engine: seed secret %s: %w", name, err)
		}
	}
	return nil
}

func (e *Engine) secretByName(ctx context.Context, name string) (map[string]any, error) {
	rs, err := e.state.ListResources(ctx, ListQuery{Kind: KindSecret})
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		b := decodeBody(r.Body)
		if b["name"] == name {
			return b, nil
		}
	}
	return nil, nil
}

// putSecret creates (id "") or updates a secret. upsert lets a create
// replace a secret of the same name (seeding); otherwise that is a 409.
func (e *Engine) putSecret(ctx context.Context, id string, in map[string]any, upsert bool) (map[string]any, error) {
	name, _ := in["name"].(string)
	value, ok := in["value"].(string)
	var details []any
	if name == "" {
		details = append(details, fieldError("name", "is required"))
	}
	if !ok {
		details = append(details, fieldError("value", "is required"))
	}
	meta, err := asMetadata(in["metadata"])
	if err != nil {
		details = append(details, fieldError("metadata", err.Error()))
	}
	if len(details) > 0 {
		return nil, validationError(details)
	}
	existing, err := e.secretByName(ctx, name)
	if err != nil {
		return nil, err
	}
	if id == "" {
		if existing != nil && !upsert {
			return nil, errorf(http.StatusConflict, "a secret named %q already exists", name)
		}
		id = newID()
		if existing != nil {
			id, _ = existing["id"].(string)
		}
	} else {
		if _, err := e.getResource(ctx, KindSecret, id); err != nil {
			return nil, err
		}
		if existing != nil && existing["id"] != id {
			return nil, errorf(http.StatusConflict, "a secret named %q already exists", name)
		}
	}
	body := map[string]any{"id": id, "name": name, "value": value, "metadata": meta}
	if d, ok := in["description"].(string); ok {
		body["description"] = d
	}
	defer e.cache.dropSecrets()
	return e.putResource(ctx, KindSecret, id, "", meta, body, nil)
}

// secretValues maps secret names to values for `secrets` in expressions.
func (e *Engine) secretValues(ctx context.Context) (map[string]string, error) {
	e.cache.mu.Lock()
	c := e.cache.secrets
	e.cache.mu.Unlock()
	if c.v != nil && time.Since(c.at) < e.cache.validFor {
		return c.v, nil
	}
	rs, err := e.state.ListResources(ctx, ListQuery{Kind: KindSecret})
	if err != nil {
		return nil, fmt.Errorf("load secrets: %w", err)
	}
	out := make(map[string]string, len(rs))
	for _, r := range rs {
		b := decodeBody(r.Body)
		n, _ := b["name"].(string)
		v, _ := b["value"].(string)
		out[n] = v
	}
	e.cache.mu.Lock()
	e.cache.secrets = cached[map[string]string]{out, time.Now()}
	e.cache.mu.Unlock()
	return out, nil
}

// docNamespace is the UUIDv5 namespace of the ids of docs that executions
// create.
var docNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/astra-app/astra/engine/doc"))

// stepScope is where a running step's effects come from: the claim they
// are made under, and the step's path, which with the execution's id and a
// count of the step's doc creates names each doc it creates. A step run
// again after a hand-off (or a replay) so writes the docs it wrote before
// instead of adding copies.
type stepScope struct {
	fence Fence
	x     *executor
	path  string
}

func (x *executor) scope(path string) *stepScope {
	return &stepScope{fence: Fence{ExecutionID: x.ex.ID, Token: x.ex.LeaseToken}, x: x, path: path}
}

// docID is the id of the step's next doc create.
func (sc *stepScope) docID() string {
	x := sc.x
	x.stateMu.Lock()
	if x.docCalls == nil {
		x.docCalls = map[string]int{}
	}
	n := x.docCalls[sc.path]
	x.docCalls[sc.path]++
	x.stateMu.Unlock()
	return uuid.NewSHA1(docNamespace, []byte(sc.fence.ExecutionID+"/"+sc.path+"/"+strconv.Itoa(n))).String()
}
