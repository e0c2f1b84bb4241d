// Package deploy sends a task project (agents, then tasks) to a Julep API by
// create-or-update under stable ids, for `astra tasks push` and for
// `astra serve`, which deploys tasks/ to its embedded engine at start.
package deploy

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/taskdef"
)

// Entry states in a plan.
const (
	StateNew       = "new"
	StateChanged   = "changed"
	StateUnchanged = "unchanged"
)

// Planned is one agent or task with the id it is pushed under.
type Planned struct {
	Entry   *taskdef.Entry
	ID      string
	AgentID string // tasks: the agent to push under
	State   string // StateNew, StateChanged, StateUnchanged (against the lock)
}

// Plan gives every entry its stable id (the lock's, or a fresh one) and says
// whether it changed since the last push.
func Plan(p *taskdef.Project, lock *taskdef.Lock) (agents, tasks []Planned) {
	for _, a := range p.Agents {
		if a == nil {
			continue
		}
		agents = append(agents, planEntry(lock, a, ""))
	}
	for _, t := range p.Tasks {
		if t == nil {
			continue
		}
		agentID := t.AgentID
		if t.AgentIndex >= 0 && t.AgentIndex < len(agents) {
			agentID = agents[t.AgentIndex].ID
		}
		pt := planEntry(lock, t, agentID)
		if pt.State == StateUnchanged && lock.TaskAgent(pt.ID) != agentID {
			pt.State = StateChanged // moved to another agent
		}
		tasks = append(tasks, pt)
	}
	return agents, tasks
}

func planEntry(lock *taskdef.Lock, en *taskdef.Entry, agentID string) Planned {
	pl := Planned{Entry: en, AgentID: agentID, State: StateNew}
	if le := lock.Entry(en.Kind, en.Path); le != nil {
		pl.ID, pl.State = le.ID, StateChanged
		if le.RevisionHash == en.Hash {
			pl.State = StateUnchanged
		}
	} else {
		pl.ID = taskdef.NewID()
	}
	return pl
}

// Send creates or updates one entry under its id, whatever the remote holds.
func Send(ctx context.Context, c *julep.Client, pl Planned) error {
	if pl.Entry.Kind == taskdef.KindAgent {
		in, err := AgentInput(pl.Entry.Definition())
		if err != nil {
			return err
		}
		_, err = c.CreateOrUpdateAgent(ctx, pl.ID, in)
		return err
	}
	body, err := taskdef.CanonicalJSON(pl.Entry.Definition())
	if err != nil {
		return err
	}
	_, err = c.CreateOrUpdateTask(ctx, pl.AgentID, pl.ID, json.RawMessage(body))
	return err
}

// AgentInput converts an agent definition to the API's create body.
func AgentInput(def map[string]any) (julep.AgentInput, error) {
	var in julep.AgentInput
	b, err := json.Marshal(def)
	if err == nil {
		err = json.Unmarshal(b, &in)
	}
	if err != nil {
		return in, fmt.Errorf("agent definition: %w", err)
	}
	return in, nil
}

// Sync sends every agent and task of p to c (always, so the remote has
// exactly the local definitions) under the lock's ids, without writing the
// lock. Entries missing from the lock get an id derived from the path, so
// repeated starts of one deployment keep one id. It returns the task ids by
// definition path.
func Sync(ctx context.Context, c *julep.Client, p *taskdef.Project, lock *taskdef.Lock) (map[string]string, error) {
	agents, tasks := Plan(p, lock)
	for i := range agents {
		stabilise(&agents[i], lock)
	}
	for i := range tasks {
		stabilise(&tasks[i], lock)
		if idx := tasks[i].Entry.AgentIndex; idx >= 0 && idx < len(agents) {
			tasks[i].AgentID = agents[idx].ID
		}
	}
	ids := map[string]string{}
	for _, pl := range append(agents, tasks...) {
		if err := Send(ctx, c, pl); err != nil {
			return nil, fmt.Errorf("deploy %s %s: %w", pl.Entry.Kind, pl.Entry.Path, err)
		}
		if pl.Entry.Kind == taskdef.KindTask {
			ids[pl.Entry.Path] = pl.ID
		}
	}
	return ids, nil
}

var pathNamespace = uuid.MustParse("6f1d3c2e-8a55-4c1e-9a53-2f1b7f0e4a10")

func stabilise(pl *Planned, lock *taskdef.Lock) {
	if lock.Entry(pl.Entry.Kind, pl.Entry.Path) == nil {
		pl.ID = uuid.NewSHA1(pathNamespace, []byte(pl.Entry.Kind+":"+pl.Entry.Path)).String()
	}
}
