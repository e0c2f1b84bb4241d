package julep

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/astra-app/astra/internal/julep/julepapi"
	"github.com/astra-app/astra/internal/responder"
)

// ---- users

// CreateUser creates a user with a server-assigned id. Not repeated after an
// ambiguous failure; prefer CreateOrUpdateUser with a deterministic id.
func (c *Client) CreateUser(ctx context.Context, in UserInput) (*User, error) {
	var out User
	err := c.do(ctx, call{op: "create user", mode: retryUnsent, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.CreateUser(ctx, in) }})
	return result(&out, err)
}

// CreateOrUpdateUser creates the user with this id or overwrites it. Safe to repeat.
func (c *Client) CreateOrUpdateUser(ctx context.Context, id string, in UserInput) (*User, error) {
	op := "create or update user " + id
	if err := requireID(op, id); err != nil {
		return nil, err
	}
	var out User
	err := c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.CreateOrUpdateUser(ctx, id, in) }})
	return result(&out, err)
}

// GetUser returns one user; a missing one is an *APIError with Status 404.
func (c *Client) GetUser(ctx context.Context, id string) (*User, error) {
	op := "get user " + id
	if err := requireID(op, id); err != nil {
		return nil, err
	}
	var out User
	err := c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.GetUser(ctx, id) }})
	return result(&out, err)
}

// ListUsers returns every user whose metadata matches all of metadataFilter
// (text equality; nil for all users).
func (c *Client) ListUsers(ctx context.Context, metadataFilter map[string]string) ([]User, error) {
	return pageAll(ctx, func(ctx context.Context, limit, offset int) ([]User, error) {
		var out julepapi.UserList
		err := c.do(ctx, call{op: fmt.Sprintf("list users (offset %d)", offset), mode: retrySafe, out: &out,
			send: func(ctx context.Context) (*http.Response, error) {
				return c.api.ListUsers(ctx, &julepapi.ListUsersParams{Limit: &limit, Offset: &offset, SortBy: ptr(julepapi.CreatedAt), Direction: ptr(julepapi.Asc)}, withMetadataFilter(metadataFilter))
			}})
		return out.Items, err
	}, func(u User) string { return u.Id })
}

// ---- agents

// CreateAgent creates an agent with a server-assigned id (not repeated after
// an ambiguous failure).
func (c *Client) CreateAgent(ctx context.Context, in AgentInput) (*Agent, error) {
	var out Agent
	err := c.do(ctx, call{op: "create agent", mode: retryUnsent, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.CreateAgent(ctx, in) }})
	return result(&out, err)
}

// CreateOrUpdateAgent creates the agent with this id or overwrites it. Safe to repeat.
func (c *Client) CreateOrUpdateAgent(ctx context.Context, id string, in AgentInput) (*Agent, error) {
	op := "create or update agent " + id
	if err := requireID(op, id); err != nil {
		return nil, err
	}
	var out Agent
	err := c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.CreateOrUpdateAgent(ctx, id, in) }})
	return result(&out, err)
}

// GetAgent returns one agent.
func (c *Client) GetAgent(ctx context.Context, id string) (*Agent, error) {
	op := "get agent " + id
	if err := requireID(op, id); err != nil {
		return nil, err
	}
	var out Agent
	err := c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.GetAgent(ctx, id) }})
	return result(&out, err)
}

// ListAgents returns every agent, oldest first.
func (c *Client) ListAgents(ctx context.Context) ([]Agent, error) {
	return pageAll(ctx, func(ctx context.Context, limit, offset int) ([]Agent, error) {
		var out julepapi.AgentList
		err := c.do(ctx, call{op: fmt.Sprintf("list agents (offset %d)", offset), mode: retrySafe, out: &out,
			send: func(ctx context.Context) (*http.Response, error) {
				return c.api.ListAgents(ctx, &julepapi.ListAgentsParams{Limit: &limit, Offset: &offset, SortBy: ptr(julepapi.CreatedAt), Direction: ptr(julepapi.Asc)})
			}})
		return out.Items, err
	}, func(a Agent) string { return a.Id })
}

// ---- tasks

// YAML is a task definition in YAML, sent as application/yaml (the server
// parses it; comments are dropped).
type YAML []byte

// taskBody encodes a task definition: json.RawMessage or []byte are sent as
// JSON unchanged, YAML as YAML, anything else (TaskInput, a map) marshalled.
func taskBody(def any) (contentType string, body []byte, err error) {
	switch d := def.(type) {
	case YAML:
		return "application/yaml", d, nil
	case json.RawMessage:
		body = d
	case []byte:
		body = d
	default:
		if body, err = json.Marshal(def); err != nil {
			return "", nil, responder.Errorf(responder.EINVALID, "task definition does not encode as JSON: %v", err)
		}
		switch def.(type) {
		case TaskInput, *TaskInput:
			if body, err = dropUnsetTaskFields(body); err != nil {
				return "", nil, responder.Errorf(responder.EINVALID, "task definition does not encode as JSON: %v", err)
			}
		}
	}
	if !json.Valid(body) {
		return "", nil, responder.Errorf(responder.EINVALID, "task definition is not valid JSON")
	}
	return "application/json", body, nil
}

// dropUnsetTaskFields removes the optional fields a TaskInput encodes even
// when unset: its generated MarshalJSON (which must carry sub-workflow keys)
// ignores omitempty, and Julep refuses the empty canonical_name it would send.
func dropUnsetTaskFields(body []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	for _, k := range []string{"canonical_name", "description", "inherit_tools", "metadata"} {
		switch string(m[k]) {
		case `""`, "false", "null":
			delete(m, k)
		}
	}
	return json.Marshal(m)
}

// CreateTask creates a task with a server-assigned id (not repeated after an
// ambiguous failure). See CreateOrUpdateTask for the definition's forms.
func (c *Client) CreateTask(ctx context.Context, agentID string, definition any) (*Task, error) {
	op := "create task of agent " + agentID
	if err := requireID(op, agentID); err != nil {
		return nil, err
	}
	ct, body, err := taskBody(definition)
	if err != nil {
		return nil, fmt.Errorf("julep: %s: %w", op, err)
	}
	var out Task
	err = c.do(ctx, call{op: op, mode: retryUnsent, out: &out,
		send: func(ctx context.Context) (*http.Response, error) {
			return c.api.CreateTaskWithBody(ctx, agentID, ct, bytes.NewReader(body))
		}})
	return result(&out, err)
}

// CreateOrUpdateTask stores a new version of the task with this id.
// definition is a json.RawMessage (sent unchanged), YAML, a TaskInput or a
// map. Safe to repeat: a repeat stores an identical version. An invalid task
// is an *APIError with Status 400 whose Message names the issues.
func (c *Client) CreateOrUpdateTask(ctx context.Context, agentID, taskID string, definition any) (*Task, error) {
	op := fmt.Sprintf("create or update task %s of agent %s", taskID, agentID)
	if err := requireID(op, agentID, taskID); err != nil {
		return nil, err
	}
	ct, body, err := taskBody(definition)
	if err != nil {
		return nil, fmt.Errorf("julep: %s: %w", op, err)
	}
	var out Task
	err = c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) {
			return c.api.CreateOrUpdateTaskWithBody(ctx, agentID, taskID, ct, bytes.NewReader(body))
		}})
	return result(&out, err)
}

// GetTask returns the latest version of a task.
func (c *Client) GetTask(ctx context.Context, id string) (*Task, error) {
	op := "get task " + id
	if err := requireID(op, id); err != nil {
		return nil, err
	}
	var out Task
	err := c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.GetTask(ctx, id) }})
	return result(&out, err)
}

// ListTasks returns every task of an agent, oldest first.
func (c *Client) ListTasks(ctx context.Context, agentID string) ([]Task, error) {
	if err := requireID("list tasks", agentID); err != nil {
		return nil, err
	}
	return pageAll(ctx, func(ctx context.Context, limit, offset int) ([]Task, error) {
		var out julepapi.TaskList
		err := c.do(ctx, call{op: fmt.Sprintf("list tasks of agent %s (offset %d)", agentID, offset), mode: retrySafe, out: &out,
			send: func(ctx context.Context) (*http.Response, error) {
				return c.api.ListTasks(ctx, agentID, &julepapi.ListTasksParams{Limit: &limit, Offset: &offset, SortBy: ptr(julepapi.CreatedAt), Direction: ptr(julepapi.Asc)})
			}})
		return out.Items, err
	}, func(t Task) string { return t.Id })
}

// ---- executions

// CreateExecution starts an execution of a task. It is NOT repeated after an
// ambiguous failure (timeout, reset, 5xx), because the first attempt may have
// started it: IsTransient(err) tells the caller to look for it by metadata
// (ListExecutions) before trying again. Only a request that never left
// (connection refused, DNS) is repeated here.
//
// The returned execution's Metadata is the server's {"jobs": [...]}, not the
// metadata sent; get or list the execution to read that.
func (c *Client) CreateExecution(ctx context.Context, taskID string, input, metadata map[string]any) (*Execution, error) {
	return c.CreateExecutionOnce(ctx, taskID, "", input, metadata)
}

// CreateExecutionOnce is CreateExecution with an Idempotency-Key: a server
// that honours it (the embedded engine) answers a repeat of the key with
// the execution the first request made, so a create whose answer was lost,
// or one a second caller races, starts the work once. Julep v1 ignores the
// header, which is why callers still look for an earlier execution after an
// ambiguous failure. An empty key sends none.
func (c *Client) CreateExecutionOnce(ctx context.Context, taskID, key string, input, metadata map[string]any) (*Execution, error) {
	op := "create execution of task " + taskID
	if err := requireID(op, taskID); err != nil {
		return nil, err
	}
	if input == nil {
		input = map[string]any{}
	}
	body := julepapi.ExecutionInput{Input: input, Metadata: metadata}
	var editors []julepapi.RequestEditorFn
	if key != "" {
		editors = append(editors, func(_ context.Context, r *http.Request) error {
			r.Header.Set("Idempotency-Key", key)
			return nil
		})
	}
	var out Execution
	err := c.do(ctx, call{op: op, mode: retryUnsent, out: &out,
		send: func(ctx context.Context) (*http.Response, error) {
			return c.api.CreateExecution(ctx, taskID, body, editors...)
		}})
	return result(&out, err)
}

// GetExecution returns one execution.
func (c *Client) GetExecution(ctx context.Context, id string) (*Execution, error) {
	op := "get execution " + id
	if err := requireID(op, id); err != nil {
		return nil, err
	}
	var out Execution
	err := c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.GetExecution(ctx, id) }})
	return result(&out, err)
}

// ListExecutions returns one page of a task's executions, newest first.
// limit <= 0 means the server's default (100); above 100 it is capped at 100.
func (c *Client) ListExecutions(ctx context.Context, taskID string, limit, offset int) ([]Execution, error) {
	op := fmt.Sprintf("list executions of task %s (offset %d)", taskID, offset)
	if err := requireID(op, taskID); err != nil {
		return nil, err
	}
	params := &julepapi.ListTaskExecutionsParams{SortBy: ptr(julepapi.CreatedAt), Direction: ptr(julepapi.Desc)}
	if limit > 0 {
		params.Limit = ptr(min(limit, pageSize))
	}
	if offset > 0 {
		params.Offset = &offset
	}
	var out julepapi.ExecutionList
	err := c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) {
			return c.api.ListTaskExecutions(ctx, taskID, params)
		}})
	if err != nil {
		return nil, err
	}
	return out.Items, nil
}

// ListAllTaskExecutions returns every execution of a task, oldest first
// (ascending order keeps offsets stable while new executions arrive).
func (c *Client) ListAllTaskExecutions(ctx context.Context, taskID string) ([]Execution, error) {
	if err := requireID("list executions", taskID); err != nil {
		return nil, err
	}
	return pageAll(ctx, func(ctx context.Context, limit, offset int) ([]Execution, error) {
		var out julepapi.ExecutionList
		err := c.do(ctx, call{op: fmt.Sprintf("list executions of task %s (offset %d)", taskID, offset), mode: retrySafe, out: &out,
			send: func(ctx context.Context) (*http.Response, error) {
				return c.api.ListTaskExecutions(ctx, taskID, &julepapi.ListTaskExecutionsParams{Limit: &limit, Offset: &offset, SortBy: ptr(julepapi.CreatedAt), Direction: ptr(julepapi.Asc)})
			}})
		return out.Items, err
	}, func(e Execution) string { return e.Id })
}

// ListTransitions returns every transition of an execution, oldest first.
func (c *Client) ListTransitions(ctx context.Context, execID string) ([]Transition, error) {
	if err := requireID("list transitions", execID); err != nil {
		return nil, err
	}
	return pageAll(ctx, func(ctx context.Context, limit, offset int) ([]Transition, error) {
		var out julepapi.TransitionList
		err := c.do(ctx, call{op: fmt.Sprintf("list transitions of execution %s (offset %d)", execID, offset), mode: retrySafe, out: &out,
			send: func(ctx context.Context) (*http.Response, error) {
				return c.api.ListExecutionTransitions(ctx, execID, &julepapi.ListExecutionTransitionsParams{Limit: &limit, Offset: &offset, SortBy: ptr(julepapi.CreatedAt), Direction: ptr(julepapi.Asc)})
			}})
		return out.Items, err
	}, func(t Transition) string { return t.Id })
}

// CancelExecution asks Julep to stop an execution.
func (c *Client) CancelExecution(ctx context.Context, id, reason string) error {
	return c.updateExecution(ctx, "cancel execution "+id, id, julepapi.ExecutionUpdate{Status: julepapi.ExecutionUpdateStatusCancelled, Reason: reason})
}

// ResumeExecution gives input to an execution awaiting it (a wait_for_input step).
func (c *Client) ResumeExecution(ctx context.Context, id string, input map[string]any) error {
	if input == nil {
		input = map[string]any{}
	}
	return c.updateExecution(ctx, "resume execution "+id, id, julepapi.ExecutionUpdate{Status: julepapi.ExecutionUpdateStatusRunning, Input: input})
}

func (c *Client) updateExecution(ctx context.Context, op, id string, body julepapi.ExecutionUpdate) error {
	if err := requireID(op, id); err != nil {
		return err
	}
	// The server answers 200 with a null body: nothing to decode.
	return c.do(ctx, call{op: op, mode: retrySafe,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.UpdateExecution(ctx, id, body) }})
}

// ---- user docs

// CreateUserDoc stores a doc owned by the user (not repeated after an
// ambiguous failure, which could store it twice).
func (c *Client) CreateUserDoc(ctx context.Context, userID string, in DocInput) (*Doc, error) {
	op := "create doc of user " + userID
	if err := requireID(op, userID); err != nil {
		return nil, err
	}
	var out Doc
	err := c.do(ctx, call{op: op, mode: retryUnsent, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.CreateUserDoc(ctx, userID, in) }})
	return result(&out, err)
}

// ListUserDocs returns every doc of the user whose metadata matches all of
// metadataFilter (text equality; nil for all), oldest first, without embeddings.
func (c *Client) ListUserDocs(ctx context.Context, userID string, metadataFilter map[string]string) ([]Doc, error) {
	if err := requireID("list docs", userID); err != nil {
		return nil, err
	}
	return pageAll(ctx, func(ctx context.Context, limit, offset int) ([]Doc, error) {
		var out julepapi.DocList
		err := c.do(ctx, call{op: fmt.Sprintf("list docs of user %s (offset %d)", userID, offset), mode: retrySafe, out: &out,
			send: func(ctx context.Context) (*http.Response, error) {
				return c.api.ListUserDocs(ctx, userID, &julepapi.ListUserDocsParams{Limit: &limit, Offset: &offset, SortBy: ptr(julepapi.CreatedAt), Direction: ptr(julepapi.Asc), IncludeEmbeddings: ptr(false)}, withMetadataFilter(metadataFilter))
			}})
		return out.Items, err
	}, func(d Doc) string { return d.Id })
}

// SearchUserDocs searches the user's docs (read-only, so repeatable).
func (c *Client) SearchUserDocs(ctx context.Context, userID string, req DocSearchRequest) (*DocSearchResponse, error) {
	op := "search docs of user " + userID
	if err := requireID(op, userID); err != nil {
		return nil, err
	}
	var out DocSearchResponse
	err := c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.SearchUserDocs(ctx, userID, req) }})
	return result(&out, err)
}

// DeleteUserDoc deletes one doc. A doc already gone on a repeated attempt
// counts as deleted.
func (c *Client) DeleteUserDoc(ctx context.Context, userID, docID string) error {
	op := fmt.Sprintf("delete doc %s of user %s", docID, userID)
	if err := requireID(op, userID, docID); err != nil {
		return err
	}
	return c.do(ctx, call{op: op, mode: retrySafe, goneOK: true,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.DeleteUserDoc(ctx, userID, docID) }})
}

// ---- secrets

// ListSecrets returns the developer's secrets.
func (c *Client) ListSecrets(ctx context.Context) ([]Secret, error) {
	return pageAll(ctx, func(ctx context.Context, limit, offset int) ([]Secret, error) {
		var out []Secret
		err := c.do(ctx, call{op: fmt.Sprintf("list secrets (offset %d)", offset), mode: retrySafe, out: &out,
			send: func(ctx context.Context) (*http.Response, error) {
				return c.api.ListSecrets(ctx, &julepapi.ListSecretsParams{Limit: &limit, Offset: &offset})
			}})
		return out, err
	}, func(s Secret) string { return s.Id })
}

// CreateSecret stores a secret; a name in use is an *APIError with Status 409.
// Never repeated after an ambiguous failure.
func (c *Client) CreateSecret(ctx context.Context, in SecretInput) (*Secret, error) {
	var out Secret
	err := c.do(ctx, call{op: "create secret " + in.Name, mode: retryUnsent, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.CreateSecret(ctx, in) }})
	return result(&out, err)
}

// UpdateSecret overwrites a secret.
func (c *Client) UpdateSecret(ctx context.Context, id string, in SecretInput) (*Secret, error) {
	op := "update secret " + id
	if err := requireID(op, id); err != nil {
		return nil, err
	}
	var out Secret
	err := c.do(ctx, call{op: op, mode: retrySafe, out: &out,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.UpdateSecret(ctx, id, in) }})
	return result(&out, err)
}

// DeleteSecret deletes a secret; one already gone on a repeated attempt counts as deleted.
func (c *Client) DeleteSecret(ctx context.Context, id string) error {
	op := "delete secret " + id
	if err := requireID(op, id); err != nil {
		return err
	}
	return c.do(ctx, call{op: op, mode: retrySafe, goneOK: true,
		send: func(ctx context.Context) (*http.Response, error) { return c.api.DeleteSecret(ctx, id) }})
}

func result[T any](v *T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}
