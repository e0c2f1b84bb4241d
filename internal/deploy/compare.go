package deploy

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"go.yaml.in/yaml/v3"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/taskdef"
)

// Actions a push takes for one entry, decided against the live remote (as
// kubectl apply does), not against the lock: a remote changed by someone
// else's push is drift, and push puts it back.
const (
	ActionCreate = "create" // not on the remote
	ActionUpdate = "update" // on the remote, different
	ActionNone   = "none"   // on the remote, the same
)

// Change is one entry compared with its live remote copy.
type Change struct {
	Planned
	Action string
	// Local and Remote are the definitions as sorted YAML without server
	// fields; Remote is "" when the entry is not on the remote.
	Local, Remote string
	// RemoteAgent is the agent a remote task belongs to ("" if unknown).
	RemoteAgent string
}

// Compare reads pl's live remote copy and says what a push has to do.
func Compare(ctx context.Context, c *julep.Client, pl Planned) (Change, error) {
	ch := Change{Planned: pl, Action: ActionCreate}
	local, err := Comparable(pl.Entry.Definition(), nil)
	if err != nil {
		return ch, err
	}
	ch.Local = local
	var got any
	if pl.Entry.Kind == taskdef.KindAgent {
		got, err = c.GetAgent(ctx, pl.ID)
	} else {
		got, err = c.GetTask(ctx, pl.ID)
	}
	if julep.IsNotFound(err) {
		return ch, nil
	}
	if err != nil {
		return ch, err
	}
	if ch.Remote, err = Comparable(got, pl.Entry.Definition()); err != nil {
		return ch, err
	}
	if pl.Entry.Kind == taskdef.KindTask {
		ch.RemoteAgent = agentOf(got)
	}
	ch.Action = ActionNone
	if ch.Remote != ch.Local || ch.RemoteAgent != "" && pl.AgentID != "" && ch.RemoteAgent != pl.AgentID {
		ch.Action = ActionUpdate
	}
	return ch, nil
}

// Diff renders the change as a unified diff from the remote to the local
// file, "" when there is nothing to change.
func (ch Change) Diff() (string, error) {
	if ch.Action == ActionNone {
		return "", nil
	}
	from := "remote/" + ch.Entry.Path
	if ch.Action == ActionCreate {
		from = "/dev/null"
	}
	ud, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(ch.Remote), B: difflib.SplitLines(ch.Local),
		FromFile: from, ToFile: "local/" + ch.Entry.Path, Context: 3,
	})
	if err != nil {
		return "", err
	}
	if ud == "" && ch.RemoteAgent != ch.AgentID {
		ud = "# the remote task belongs to agent " + ch.RemoteAgent + "; push moves it to " + ch.AgentID + "\n"
	}
	return ud, nil
}

func agentOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var m struct {
		AgentID string `json:"agent_id"`
	}
	_ = json.Unmarshal(b, &m)
	return m.AgentID
}

// serverFields are set by Julep, not by a definition.
var serverFields = []string{"id", "created_at", "updated_at", "agent_id", "developer_id", "version", "default_system_template"}

// Comparable renders a definition as sorted YAML with empty top-level values
// and server fields dropped, so a remote copy and a local file compare by
// content. local, when given, keeps server-filled keys the file sets itself.
func Comparable(v any, local map[string]any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	for k, val := range m {
		drop := false
		for _, s := range serverFields {
			if k == s {
				_, inLocal := local[k]
				drop = local == nil || !inLocal
			}
		}
		switch x := val.(type) {
		case nil:
			drop = true
		case string:
			drop = drop || x == ""
		case bool:
			drop = drop || !x
		case []any:
			drop = drop || len(x) == 0
		case map[string]any:
			drop = drop || len(x) == 0
		}
		if drop {
			delete(m, k)
		}
	}
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return "", err
	}
	return out.String(), enc.Close()
}
