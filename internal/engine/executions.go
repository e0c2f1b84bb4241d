package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// createTask stores a new version of a task after validating it.
func (e *Engine) createTask(r *http.Request, id string) (int, any, error) {
	agentID := chi.URLParam(r, "agent_id")
	if _, err := e.getResource(r.Context(), KindAgent, agentID); err != nil {
		return 0, nil, err
	}
	def, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	if issues := checkTask(def); len(issues) > 0 {
		parts := make([]string, len(issues))
		details := make([]any, len(issues))
		for i, is := range issues {
			parts[i] = is.Location + ": " + is.Message
			details[i] = map[string]any{"location": is.Location, "message": is.Message, "severity": is.Severity, "type": is.Type}
		}
		// A malformed shape is refused by Julep's request model (pydantic)
		// before its expression check: 422, a validation error.
		for _, is := range issues {
			if is.Type == "schema" {
				return 0, nil, &apiError{Status: http.StatusUnprocessableEntity, Type: "validation_error",
					Message: "Invalid task: " + strings.Join(parts, "; "), Details: details}
			}
		}
		return 0, nil, &apiError{Status: http.StatusBadRequest, Message: "Invalid task: " + strings.Join(parts, "; "), Details: details}
	}
	if cycle := workflowCycle(def); cycle != nil {
		msg := "workflow recursion: " + strings.Join(cycle, " -> ")
		return 0, nil, &apiError{Status: http.StatusBadRequest, Message: "Invalid task: " + cycle[0] + ": " + msg,
			Details: []any{map[string]any{"location": cycle[0], "message": msg, "severity": "error", "type": "recursion"}}}
	}
	if _, err := compileSchema(def["input_schema"]); err != nil {
		return 0, nil, &apiError{Status: http.StatusBadRequest, Message: "Invalid task: input_schema: " + err.Error(),
			Details: []any{map[string]any{"location": "input_schema", "message": err.Error(), "severity": "error", "type": "schema"}}}
	}
	meta, err := asMetadata(def["metadata"])
	if err != nil {
		return 0, nil, validationError([]any{fieldError("metadata", err.Error())})
	}
	delete(def, "id")
	delete(def, "created_at")
	delete(def, "updated_at")
	raw, err := json.Marshal(def)
	if err != nil {
		return 0, nil, fmt.Errorf("encode task: %w", err)
	}
	now := e.now()
	t, err := e.state.PutTask(r.Context(), Task{ID: id, AgentID: agentID, CreatedAt: now, UpdatedAt: now, Metadata: meta, Body: raw})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, taskView(t), nil
}

func taskView(t Task) map[string]any {
	v := decodeBody(t.Body)
	v["id"], v["agent_id"] = t.ID, t.AgentID
	v["created_at"], v["updated_at"] = ts(t.CreatedAt), ts(t.UpdatedAt)
	if _, ok := v["metadata"]; !ok {
		v["metadata"] = map[string]any{}
	}
	if _, ok := v["tools"]; !ok {
		v["tools"] = []any{}
	}
	if _, ok := v["inherit_tools"]; !ok {
		v["inherit_tools"] = false
	}
	return v
}

func compileSchema(s any) (*jsonschema.Schema, error) {
	m, ok := s.(map[string]any)
	if s == nil || (ok && len(m) == 0) {
		return nil, nil
	}
	if !ok {
		return nil, errors.New("must be a JSON Schema object")
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("input_schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("input_schema.json")
}

// inputSchema is the compiled input schema of a task version (nil when it
// has none). Versions never change, so each is compiled once: compiling
// cost more than the rest of a create.
func (e *Engine) inputSchema(t Task) (*jsonschema.Schema, error) {
	key := fmt.Sprintf("%s@%d", t.ID, t.Version)
	e.cache.mu.Lock()
	sc, ok := e.cache.schemas[key]
	e.cache.mu.Unlock()
	if ok {
		return sc, nil
	}
	sc, err := compileSchema(decodeBody(t.Body)["input_schema"])
	if err != nil {
		return nil, err
	}
	e.cache.mu.Lock()
	if len(e.cache.schemas) >= 1024 {
		clear(e.cache.schemas)
	}
	e.cache.schemas[key] = sc
	e.cache.mu.Unlock()
	return sc, nil
}

// createExecution validates the input and queues a new execution pinned to
// the task's current version.
func (e *Engine) createExecution(r *http.Request) (int, any, error) {
	taskID := chi.URLParam(r, "task_id")
	t, err := e.state.GetTask(r.Context(), taskID, 0)
	if err != nil {
		return 0, nil, stateErr(err, "task", taskID)
	}
	in, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	input, ok := in["input"].(map[string]any)
	if !ok {
		msg := "Field required"
		if in["input"] != nil {
			msg = "Input should be a valid dictionary"
		}
		return 0, nil, validationError([]any{map[string]any{"loc": []any{"body", "input"}, "msg": msg, "type": "missing"}})
	}
	meta, err := asMetadata(in["metadata"])
	if err != nil {
		return 0, nil, validationError([]any{fieldError("metadata", err.Error())})
	}
	schema, err := e.inputSchema(t)
	if err != nil {
		return 0, nil, errorf(http.StatusBadRequest, "the task's input_schema is invalid: %v", err)
	}
	if schema != nil {
		if err := schema.Validate(any(input)); err != nil {
			var ve *jsonschema.ValidationError
			msg := err.Error()
			if errors.As(err, &ve) {
				msg = schemaMessage(ve)
			}
			return 0, nil, &apiError{Status: http.StatusBadRequest, Message: "Invalid input: " + msg,
				Details: []any{map[string]any{"location": "input", "message": msg, "severity": "error", "type": "input_schema"}}}
		}
	}
	now := e.now()
	x := Execution{ID: newID(), TaskID: t.ID, TaskVersion: t.Version, Status: StatusQueued, Input: input,
		Metadata: meta, CreatedAt: now, UpdatedAt: now, TraceParent: requestTrace(r)}
	key := r.Header.Get("Idempotency-Key")
	if key != "" {
		if len(key) > maxIdempotencyKey {
			return 0, nil, errorf(http.StatusBadRequest, "Idempotency-Key is longer than %d bytes", maxIdempotencyKey)
		}
		x.ID = executionIDFor(t.ID, key)
		if prev, ok := e.replay(r.Context(), x.ID, t.ID); ok {
			return http.StatusCreated, prev, nil
		}
	}
	// Created already claimed by this engine when it can start it at once:
	// no claim write, and no other instance's sweep takes it meanwhile.
	accepting, owned := e.admits()
	if owned {
		x.LeaseOwner, x.LeaseToken, x.LeaseUntil = e.owner, newID(), now.Add(e.lease)
	}
	// Not the request's context: once the row may be written, the client
	// going away must not leave it queued with nobody running it.
	if err := e.state.CreateExecution(context.WithoutCancel(r.Context()), x); err != nil {
		if key != "" {
			// Another request with the key inserted it first.
			if prev, ok := e.replay(r.Context(), x.ID, t.ID); ok {
				return http.StatusCreated, prev, nil
			}
		}
		return 0, nil, err
	}
	switch {
	case owned:
		if !e.enqueueRun(x.ID, &x, &x) {
			e.release(x.ID, x.LeaseToken)
		}
	case accepting:
		e.enqueueRun(x.ID, nil, &x) // claimed when a slot frees, unless another engine is first
	}
	return http.StatusCreated, createdView(x), nil
}

// createdView is create's answer. Julep answers create with metadata
// {"jobs": [the workflow run's id]} (routers/tasks/create_task_execution.py);
// the stored metadata is the caller's. The engine's run of an execution is
// named by its id.
func createdView(x Execution) map[string]any {
	v := executionView(x)
	v["metadata"] = map[string]any{"jobs": []any{x.ID}}
	return v
}

// An Idempotency-Key on create makes a repeat of the request (a client
// that timed out, a second dispatcher that took over a row while the first
// one's create was still in flight) answer the execution the first one
// made instead of starting the work again. Julep v1 ignores the header; the
// key names the execution: a UUIDv5 of the task and the key, so two racing
// creates collide on the execution's id and only one is stored.
const maxIdempotencyKey = 255

var idempotencyNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/astra-app/astra/engine/idempotency-key"))

func executionIDFor(taskID, key string) string {
	return uuid.NewSHA1(idempotencyNamespace, []byte(taskID+"\x00"+key)).String()
}

// replay answers a create whose key already made execution id.
func (e *Engine) replay(ctx context.Context, id, taskID string) (map[string]any, bool) {
	x, err := e.state.GetExecution(ctx, id)
	if err != nil || x.TaskID != taskID {
		return nil, false
	}
	return createdView(x), true
}

var schemaPrinter = message.NewPrinter(language.English)

// schemaMessage flattens a validation error to its leaf causes, one line.
func schemaMessage(ve *jsonschema.ValidationError) string {
	var parts []string
	var walk func(*jsonschema.ValidationError)
	walk = func(v *jsonschema.ValidationError) {
		if len(v.Causes) == 0 {
			loc := "/" + strings.Join(v.InstanceLocation, "/")
			parts = append(parts, fmt.Sprintf("at %s: %s", loc, v.ErrorKind.LocalizedString(schemaPrinter)))
			return
		}
		for _, c := range v.Causes {
			walk(c)
		}
	}
	walk(ve)
	return strings.Join(parts, "; ")
}

func executionView(x Execution) map[string]any {
	var errv any
	if x.Error != "" {
		errv = x.Error
	}
	meta := x.Metadata
	if meta == nil {
		meta = map[string]any{}
	}
	input := x.Input
	if input == nil {
		input = map[string]any{}
	}
	return map[string]any{"id": x.ID, "task_id": x.TaskID, "status": x.Status, "input": input, "output": x.Output,
		"error": errv, "transition_count": x.TransitionCount, "metadata": meta,
		"created_at": ts(x.CreatedAt), "updated_at": ts(x.UpdatedAt)}
}

func transitionView(t Transition) map[string]any {
	var next any
	if t.Next != nil {
		next = t.Next
	}
	var label any
	if t.StepLabel != "" {
		label = t.StepLabel
	}
	meta := t.Metadata
	if meta == nil {
		meta = map[string]any{}
	}
	return map[string]any{"id": t.ID, "execution_id": t.ExecutionID, "type": t.Type, "output": t.Output,
		"current": t.Current, "next": next, "step_label": label, "metadata": meta,
		"created_at": ts(t.CreatedAt), "updated_at": ts(t.CreatedAt)}
}

// updateExecution cancels an execution or resumes one awaiting input.
func (e *Engine) updateExecution(r *http.Request) (int, any, error) {
	id := chi.URLParam(r, "id")
	in, err := readObject(r)
	if err != nil {
		return 0, nil, err
	}
	// The update must finish (and a resume be enqueued) even if the client leaves.
	ctx := context.WithoutCancel(r.Context())
	x, err := e.state.GetExecution(ctx, id)
	if err != nil {
		return 0, nil, stateErr(err, "execution", id)
	}
	status, _ := in["status"].(string)
	now := e.now()
	switch status {
	case StatusCancelled:
		if terminal(x.Status) {
			return 0, nil, errorf(http.StatusBadRequest, "execution %s is already %s", id, x.Status)
		}
		reason, _ := in["reason"].(string)
		from := x.Status
		next := x
		next.Status, next.UpdatedAt = StatusCancelled, now
		// No lease: the write is guarded by status and count alone, and the
		// owner's run, elsewhere, finds its lease gone and stops.
		next.LeaseOwner, next.LeaseToken, next.LeaseUntil = "", "", time.Time{}
		next.TransitionCount++
		tr := Transition{ID: newID(), ExecutionID: id, Seq: next.TransitionCount, Type: "cancelled",
			Output: map[string]any{"reason": reason}, Current: e.currentCursor(x), CreatedAt: now}
		scope(&tr, id)
		if err := e.state.Advance(ctx, next, []string{from}, []Transition{tr}); err != nil {
			if errors.Is(err, ErrConflict) {
				return 0, nil, errorf(http.StatusConflict, "execution %s changed status meanwhile; retry", id)
			}
			return 0, nil, err
		}
		e.changes.publish(next)
		e.metrics.executions.WithLabelValues(StatusCancelled).Inc()
		if rn := e.runFor(id); rn != nil {
			rn.cancel(errors.New("cancelled"))
		}
		return http.StatusOK, nil, nil
	case StatusRunning:
		if x.Status != StatusAwaitingInput {
			return 0, nil, errorf(http.StatusBadRequest, "execution %s is %s, not awaiting_input", id, x.Status)
		}
		input, _ := in["input"].(map[string]any)
		if input == nil {
			input = map[string]any{}
		}
		raw, err := e.openCheckpoint(id, x.Checkpoint)
		if err == nil {
			raw, err = resumeCheckpoint(raw, input)
		}
		if err == nil {
			var secrets map[string]string
			if secrets, err = e.secretValues(ctx); err == nil {
				raw, err = e.sealCheckpoint(id, raw, secrets)
			}
		}
		if err != nil {
			return 0, nil, fmt.Errorf("checkpoint of %s: %w", id, err)
		}
		next := x
		next.Status, next.UpdatedAt, next.Checkpoint = StatusRunning, now, raw
		// Unfenced, so the lease is cleared and any engine may claim it.
		next.LeaseOwner, next.LeaseToken, next.LeaseUntil = "", "", time.Time{}
		// Julep writes no transition of its own for a resume: the waiting
		// step's next transition carries the input (transition.py turns
		// the PartialTransition(type="resume") into "step" or "finish").
		if err := e.state.Advance(ctx, next, []string{StatusAwaitingInput}, nil); err != nil {
			if errors.Is(err, ErrConflict) {
				return 0, nil, errorf(http.StatusConflict, "execution %s changed status meanwhile; retry", id)
			}
			return 0, nil, err
		}
		e.changes.publish(next)
		e.enqueue(id)
		return http.StatusOK, nil, nil
	}
	return 0, nil, validationError([]any{map[string]any{"loc": []any{"body", "status"},
		"msg": "must be cancelled or running", "type": "value_error"}})
}

// resumeCheckpoint records input as the answer to the pause the checkpoint
// waits at. Only those two fields change: the rest (in whatever form it was
// written, references included) is kept byte for byte.
func resumeCheckpoint(ckpt json.RawMessage, input map[string]any) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	var ck struct {
		Waiting string         `json:"waiting"`
		Resumes map[string]any `json:"resumes"`
	}
	if err := json.Unmarshal(ckpt, &fields); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := json.Unmarshal(ckpt, &ck); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if ck.Resumes == nil {
		ck.Resumes = map[string]any{}
	}
	ck.Resumes[ck.Waiting] = input
	var err error
	if fields["resumes"], err = json.Marshal(ck.Resumes); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	fields["waiting"] = json.RawMessage(`""`)
	return json.Marshal(fields)
}

func (e *Engine) currentCursor(x Execution) Cursor {
	var ck checkpoint
	if raw, err := e.openCheckpoint(x.ID, x.Checkpoint); err == nil {
		_ = json.Unmarshal(raw, &ck)
	}
	return Cursor{Workflow: "main", Step: ck.Step}
}
