package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
)

// Console is the operators' view of executions across users (the hosted
// Julep console's job). Every route checks the session and the admin role
// on the server; nil leaves the routes unmounted.
type Console struct {
	Julep *julep.Client
	// AdminEmails bootstrap operators before any user record carries Better
	// Auth's role "admin" (ASTRA_ADMIN_EMAILS).
	AdminEmails []string
}

// Console paging bounds: one request reads at most consoleScanPages pages of
// the engine's list, so a filter matching nothing costs a bounded amount.
const (
	consoleMaxLimit  = 100
	consolePage      = 100
	consoleScanPages = 10
)

// consoleRoutes mounts /api/console; r already checks Host and Origin.
func (s *server) consoleRoutes(r chi.Router) {
	if s.Console == nil || s.Console.Julep == nil {
		return
	}
	r.Route("/api/console", func(r chi.Router) {
		r.Use(s.checkOrigin, s.Sessions.Require)
		// Whether to show the console at all: any signed-in person may ask.
		r.Get("/access", func(w http.ResponseWriter, r *http.Request) {
			encode(w, http.StatusOK, map[string]bool{"admin": s.isAdmin(auth.FromContext(r.Context()))})
		})
		r.Group(func(r chi.Router) {
			r.Use(s.requireAdmin)
			r.Get("/tasks", s.handleConsoleTasks)
			r.Get("/executions", s.handleConsoleExecutions)
			r.Get("/executions/{id}", s.handleConsoleExecution)
			r.Post("/executions/{id}/cancel", s.handleConsoleCancel)
			r.Post("/executions/{id}/rerun", s.handleConsoleRerun)
		})
	})
}

// isAdmin: Better Auth's admin plugin's role (a comma-separated list may
// hold several), or an email of ASTRA_ADMIN_EMAILS.
func (s *server) isAdmin(id *auth.Identity) bool {
	if id == nil || id.User == nil {
		return false
	}
	for _, r := range strings.Split(id.User.Role, ",") {
		if strings.TrimSpace(r) == "admin" {
			return true
		}
	}
	return slices.ContainsFunc(s.Console.AdminEmails, func(e string) bool { return strings.EqualFold(strings.TrimSpace(e), id.User.Email) })
}

func (s *server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdmin(auth.FromContext(r.Context())) {
			s.writeError(w, r, responder.Errorf(responder.EFORBIDDEN, "The console is for operators"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) julepErr(err error) error {
	if julep.IsNotFound(err) {
		return responder.Errorf(responder.ENOTFOUND, "Execution not found")
	}
	s.log.Warn("console: Julep call failed", "err", err)
	return responder.Errorf(responder.EUNAVAILABLE, "Julep is unavailable")
}

type consoleTask struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	AgentID   string    `json:"agentId"`
	AgentName string    `json:"agentName"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func (s *server) consoleTasks(ctx context.Context) ([]consoleTask, error) {
	agents, err := s.Console.Julep.ListAgents(ctx)
	if err != nil {
		return nil, s.julepErr(err)
	}
	var out []consoleTask
	for _, a := range agents {
		ts, err := s.Console.Julep.ListTasks(ctx, a.Id)
		if err != nil {
			return nil, s.julepErr(err)
		}
		for _, t := range ts {
			out = append(out, consoleTask{ID: t.Id, Name: t.Name, AgentID: a.Id, AgentName: a.Name, UpdatedAt: t.UpdatedAt})
		}
	}
	return out, nil
}

func (s *server) handleConsoleTasks(w http.ResponseWriter, r *http.Request) {
	ts, err := s.consoleTasks(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ts == nil {
		ts = []consoleTask{}
	}
	encode(w, http.StatusOK, map[string]any{"tasks": ts})
}

// consoleRow is one execution in the console's list.
type consoleRow struct {
	ID         string    `json:"id"`
	TaskID     string    `json:"taskId"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	DurationMS *int64    `json:"durationMs,omitempty"`
	OutboxID   string    `json:"outboxId,omitempty"`
	UserID     string    `json:"userId,omitempty"`
	UserEmail  string    `json:"userEmail,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// handleConsoleExecutions lists one task's executions (default: the first
// task), newest first, filtered by status, user (email or id) and a
// created-at window, a page at a time: cursor is the offset in the engine's
// list where the next page starts.
func (s *server) handleConsoleExecutions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	limit := 25
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > consoleMaxLimit {
			s.writeError(w, r, responder.Errorf(responder.EINVALID, "limit must be 1 to %d", consoleMaxLimit))
			return
		}
		limit = n
	}
	offset := 0
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeError(w, r, responder.Errorf(responder.EINVALID, "cursor is not one this console gave"))
			return
		}
		offset = n
	}
	var since, until time.Time
	for name, dst := range map[string]*time.Time{"since": &since, "until": &until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.writeError(w, r, responder.Errorf(responder.EINVALID, "%s must be a time such as 2026-01-02T15:04:05Z", name))
				return
			}
			*dst = t
		}
	}
	status := q.Get("status")
	if status != "" && !slices.Contains([]string{"queued", "starting", "running", "awaiting_input", "succeeded", "failed", "cancelled"}, status) {
		s.writeError(w, r, responder.Errorf(responder.EINVALID, "status %q is not an execution status", status))
		return
	}
	userID := ""
	if u := strings.TrimSpace(q.Get("user")); u != "" {
		if strings.Contains(u, "@") {
			found, err := s.Store.UserByEmail(ctx, u)
			if responder.IsNotFound(err) {
				encode(w, http.StatusOK, map[string]any{"executions": []consoleRow{}, "next": ""})
				return
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			userID = found.ID
		} else {
			userID = u
		}
	}
	taskID := q.Get("task")
	if taskID == "" {
		ts, err := s.consoleTasks(ctx)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if len(ts) == 0 {
			encode(w, http.StatusOK, map[string]any{"executions": []consoleRow{}, "next": ""})
			return
		}
		taskID = ts[0].ID
	}

	rows := []consoleRow{}
	emails := map[string]string{}
	next := ""
scan:
	for page := 0; page < consoleScanPages; page++ {
		xs, err := s.Console.Julep.ListExecutions(ctx, taskID, consolePage, offset)
		if err != nil {
			s.writeError(w, r, s.julepErr(err))
			return
		}
		for i, x := range xs {
			row := s.consoleRow(ctx, x, emails)
			if (status == "" || string(x.Status) == status) && (userID == "" || row.UserID == userID) &&
				(since.IsZero() || !x.CreatedAt.Before(since)) && (until.IsZero() || x.CreatedAt.Before(until)) {
				rows = append(rows, row)
				if len(rows) == limit {
					if offset+i+1 < offset+len(xs) || len(xs) == consolePage {
						next = strconv.Itoa(offset + i + 1)
					}
					break scan
				}
			}
		}
		offset += len(xs)
		if len(xs) < consolePage {
			break
		}
		if page == consoleScanPages-1 {
			next = strconv.Itoa(offset) // scanned enough for one request
		}
	}
	encode(w, http.StatusOK, map[string]any{"executions": rows, "next": next, "taskId": taskID})
}

func (s *server) consoleRow(ctx context.Context, x julep.Execution, emails map[string]string) consoleRow {
	row := consoleRow{ID: x.Id, TaskID: x.TaskId, Status: string(x.Status), CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt, Error: x.Error}
	if julep.IsTerminal(x.Status) && !x.UpdatedAt.Before(x.CreatedAt) {
		d := x.UpdatedAt.Sub(x.CreatedAt).Milliseconds()
		row.DurationMS = &d
	}
	row.OutboxID, _ = x.Metadata["outbox_id"].(string)
	row.UserID, _ = x.Metadata["user_id"].(string)
	if row.UserID != "" {
		email, ok := emails[row.UserID]
		if !ok {
			if u, err := s.Store.UserByID(ctx, row.UserID); err == nil {
				email = u.Email
			}
			emails[row.UserID] = email
		}
		row.UserEmail = email
	}
	return row
}

// consoleStep is one step of an execution's timeline.
type consoleStep struct {
	Index      int       `json:"index"`
	Name       string    `json:"name"` // the step's label, else "main[3] prompt"
	Label      string    `json:"label,omitempty"`
	Type       string    `json:"type"` // the step kind (prompt, tool, ...), or the transition type
	Transition string    `json:"transition"`
	Workflow   string    `json:"workflow"`
	Step       int       `json:"step"`
	StartedAt  time.Time `json:"startedAt"`
	EndedAt    time.Time `json:"endedAt"`
	DurationMS int64     `json:"durationMs"`
	Retries    *int      `json:"retries,omitempty"`
	Input      any       `json:"input,omitempty"`
	Output     any       `json:"output,omitempty"`
	Error      string    `json:"error,omitempty"`
}

type consoleMessage struct {
	ID        string    `json:"id"`
	UserID    string    `json:"userId"`
	UserEmail string    `json:"userEmail,omitempty"`
	Content   string    `json:"content"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"lastError,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	RetryOf   string    `json:"retryOf,omitempty"`
	RerunOf   string    `json:"rerunOf,omitempty"`
}

func (s *server) handleConsoleExecution(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	x, err := s.Console.Julep.GetExecution(ctx, id)
	if err != nil {
		s.writeError(w, r, s.julepErr(err))
		return
	}
	trs, err := s.Console.Julep.ListTransitions(ctx, id)
	if err != nil {
		s.writeError(w, r, s.julepErr(err))
		return
	}
	out := map[string]any{"execution": redact(toJSONValue(x))}
	var def map[string]any
	if t, err := s.Console.Julep.GetTask(ctx, x.TaskId); err == nil {
		def, _ = toJSONValue(t).(map[string]any)
		task := map[string]any{"id": t.Id, "name": t.Name, "updatedAt": t.UpdatedAt}
		if agentID, _ := def["agent_id"].(string); agentID != "" {
			task["agentId"] = agentID
			if a, err := s.Console.Julep.GetAgent(ctx, agentID); err == nil {
				out["agent"] = map[string]any{"id": a.Id, "name": a.Name, "model": a.Model, "updatedAt": a.UpdatedAt}
			}
		}
		out["task"] = task
	}
	out["steps"] = timeline(x, trs, def)
	if ob, _ := x.Metadata["outbox_id"].(string); ob != "" {
		if m, err := s.Store.Message(ctx, ob); err == nil {
			cm := consoleMessage{ID: m.ID, UserID: m.UserID, Content: m.Content, Status: string(responder.ParseStatus(string(m.Status))),
				Attempts: m.Attempts, LastError: m.LastError, CreatedAt: m.CreatedAt}
			cm.RetryOf = retryOf(m)
			cm.RerunOf, _ = m.Metadata["rerunOf"].(string)
			if u, err := s.Store.UserByID(ctx, m.UserID); err == nil {
				cm.UserEmail = u.Email
			}
			out["message"] = cm
		}
	}
	encode(w, http.StatusOK, out)
}

// timeline turns transitions into steps: a step runs from the previous
// transition to its own, its input is the previous step's output (the
// execution's input for the first), as in Julep.
func timeline(x *julep.Execution, trs []julep.Transition, def map[string]any) []consoleStep {
	sort.SliceStable(trs, func(i, j int) bool { return trs[i].CreatedAt.Before(trs[j].CreatedAt) })
	steps := []consoleStep{}
	prevAt := x.CreatedAt
	var prevOut any = x.Input
	for i, t := range trs {
		st := consoleStep{Index: i, Transition: string(t.Type), Workflow: t.Current.Workflow, Step: t.Current.Step,
			Label: t.StepLabel, StartedAt: prevAt, EndedAt: t.CreatedAt}
		if d := t.CreatedAt.Sub(prevAt); d > 0 {
			st.DurationMS = d.Milliseconds()
		}
		// A step's own transition ("step", or "finish"/"error" for the
		// last one run) names the step; "init" is the start.
		kind := ""
		if t.Type != "init" {
			kind = stepKindAt(def, t.Current.Workflow, t.Current.Step)
		}
		st.Type = kind
		if st.Type == "" {
			st.Type = string(t.Type)
		}
		switch {
		case t.StepLabel != "":
			st.Name = t.StepLabel
		case t.Type == "init":
			st.Name = "start"
		case kind == "":
			st.Name = string(t.Type)
		default:
			st.Name = fmt.Sprintf("%s[%d] %s", t.Current.Workflow, t.Current.Step, kind)
		}
		if n, ok := t.Metadata["retries"].(float64); ok {
			r := int(n)
			st.Retries = &r
		}
		st.Input = redact(toJSONValue(prevOut))
		st.Output = redact(toJSONValue(t.Output))
		if t.Type == "error" {
			st.Error = x.Error
		}
		steps = append(steps, st)
		prevAt = t.CreatedAt
		if t.Type == "step" {
			prevOut = t.Output
		}
	}
	return steps
}

// stepKindAt finds workflow[step] in the task definition and names its kind.
func stepKindAt(def map[string]any, workflow string, step int) string {
	if def == nil {
		return ""
	}
	list, _ := def[workflow].([]any)
	if step < 0 || step >= len(list) {
		return ""
	}
	m, _ := list[step].(map[string]any)
	for _, k := range []string{"prompt", "tool", "evaluate", "if", "switch", "foreach", "over", "parallel",
		"get", "set", "log", "return", "sleep", "wait_for_input", "workflow", "yield", "error"} {
		if _, ok := m[k]; ok {
			return k
		}
	}
	return ""
}

func toJSONValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// secretKey reports whether a key names a credential, whose value the
// console never shows (redacted JSON).
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"authorization", "api_key", "apikey", "password", "secret", "token", "cookie"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if secretKey(k) {
				out[k] = "[redacted]"
				continue
			}
			out[k] = redact(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = redact(val)
		}
		return out
	}
	return v
}

func (s *server) handleConsoleCancel(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	who := auth.FromContext(r.Context()).User.Email
	if err := s.Console.Julep.CancelExecution(r.Context(), id, "cancelled in the console by "+who); err != nil {
		if julep.StatusCode(err) == http.StatusConflict || julep.StatusCode(err) == http.StatusBadRequest {
			s.writeError(w, r, responder.Errorf(responder.ECONFLICT, "The execution has already ended"))
			return
		}
		s.writeError(w, r, s.julepErr(err))
		return
	}
	s.log.Info("console: execution cancelled", "execution_id", id, "by", who)
	encode(w, http.StatusOK, map[string]any{"ok": true})
}

// handleConsoleRerun sends the execution's message again as a new message
// of the same person (metadata.rerunOf links it), through the ordinary
// outbox and dispatcher.
func (s *server) handleConsoleRerun(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	x, err := s.Console.Julep.GetExecution(ctx, id)
	if err != nil {
		s.writeError(w, r, s.julepErr(err))
		return
	}
	ob, _ := x.Metadata["outbox_id"].(string)
	if ob == "" {
		s.writeError(w, r, responder.Errorf(responder.EINVALID, "This execution was not started by a message; run it again with astra run"))
		return
	}
	m, err := s.Store.Message(ctx, ob)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	who := auth.FromContext(ctx).User.Email
	nm := responder.Message{UserID: m.UserID, JulepUserID: m.JulepUserID, Content: m.Content,
		Metadata: map[string]any{"rerunOf": m.ID, "rerunBy": who}}
	if err := s.Store.Enqueue(ctx, &nm); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.OnEnqueue != nil {
		s.OnEnqueue(nm)
	}
	s.log.Info("console: message re-run", "message_id", m.ID, "new_message_id", nm.ID, "by", who)
	encode(w, http.StatusAccepted, map[string]any{"ok": true, "id": nm.ID, "rerunOf": m.ID})
}
