package taskdef

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// LockName is the lock file beside julep.yaml, in the Julep CLI's shape.
const LockName = "julep-lock.json"

// LockfileVersion is written to new lock files.
const LockfileVersion = "0.1.0"

// Lock records what was pushed: a stable id per definition path and the
// revision hash last sent, so unchanged definitions are skipped.
type Lock struct {
	LockfileVersion string        `json:"lockfile_version"`
	Agents          []LockEntry   `json:"agents"`
	Tasks           []LockEntry   `json:"tasks"`
	Tools           []LockEntry   `json:"tools"`
	Relationships   Relationships `json:"relationships"`
}

// LockEntry is one pushed definition.
type LockEntry struct {
	Path         string `json:"path"`
	ID           string `json:"id"`
	LastSynced   string `json:"last_synced"`
	RevisionHash string `json:"revision_hash"`
}

// Relationships ties tasks (and agent tools) to their agents.
type Relationships struct {
	Tasks []TaskRelation `json:"tasks"`
	Tools []ToolRelation `json:"tools"`
}

// TaskRelation says which agent a task was pushed under.
type TaskRelation struct {
	ID      string `json:"id"`
	AgentID string `json:"agent_id"`
}

// ToolRelation says which agent a tool belongs to.
type ToolRelation struct {
	ID      string `json:"id"`
	AgentID string `json:"agent_id"`
}

// ReadLock reads a lock file; a missing file is an empty lock.
func ReadLock(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Lock{LockfileVersion: LockfileVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock file: %w", err)
	}
	var l Lock
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("lock file %s is not valid JSON: %w", path, err)
	}
	for _, e := range slices.Concat(l.Agents, l.Tasks) {
		if uuid.Validate(e.ID) != nil {
			return nil, fmt.Errorf("lock file %s: entry %q has id %q, not a UUID", path, e.Path, e.ID)
		}
	}
	if l.LockfileVersion == "" {
		l.LockfileVersion = LockfileVersion
	}
	return &l, nil
}

// WriteLock writes the lock sorted by path, atomically (temp file + rename),
// so an interrupted push never leaves half a lock file.
func WriteLock(path string, l *Lock) error {
	sortEntries := func(es []LockEntry) []LockEntry {
		es = slices.Clone(es)
		slices.SortFunc(es, func(a, b LockEntry) int { return strings.Compare(a.Path, b.Path) })
		if es == nil {
			es = []LockEntry{}
		}
		return es
	}
	out := *l
	out.Agents, out.Tasks, out.Tools = sortEntries(l.Agents), sortEntries(l.Tasks), sortEntries(l.Tools)
	out.Relationships.Tasks = slices.Clone(l.Relationships.Tasks)
	slices.SortFunc(out.Relationships.Tasks, func(a, b TaskRelation) int { return strings.Compare(a.ID, b.ID) })
	if out.Relationships.Tasks == nil {
		out.Relationships.Tasks = []TaskRelation{}
	}
	if out.Relationships.Tools == nil {
		out.Relationships.Tools = []ToolRelation{}
	}
	b, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lock file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".julep-lock-*.json")
	if err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write lock file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return nil
}

func (l *Lock) list(kind string) *[]LockEntry {
	if kind == KindAgent {
		return &l.Agents
	}
	return &l.Tasks
}

// Entry returns the lock entry of a definition path, or nil.
func (l *Lock) Entry(kind, path string) *LockEntry {
	es := l.list(kind)
	for i := range *es {
		if (*es)[i].Path == path {
			return &(*es)[i]
		}
	}
	return nil
}

// ID returns the stable id of a definition path, and whether the lock has
// one. A definition without one gets NewID at its first push.
func (l *Lock) ID(kind, path string) (string, bool) {
	if e := l.Entry(kind, path); e != nil {
		return e.ID, true
	}
	return "", false
}

// NewID is a fresh UUIDv4 for a definition pushed for the first time.
func NewID() string { return uuid.NewString() }

// Record notes a successful push of a definition.
func (l *Lock) Record(kind, path, id, hash string, at time.Time) {
	e := LockEntry{Path: path, ID: id, RevisionHash: hash, LastSynced: at.UTC().Format(time.RFC3339)}
	if cur := l.Entry(kind, path); cur != nil {
		*cur = e
		return
	}
	es := l.list(kind)
	*es = append(*es, e)
}

// TaskAgent returns the agent id a task was last pushed under.
func (l *Lock) TaskAgent(taskID string) string {
	for _, r := range l.Relationships.Tasks {
		if r.ID == taskID {
			return r.AgentID
		}
	}
	return ""
}

// RelateTask records the agent a task was pushed under.
func (l *Lock) RelateTask(taskID, agentID string) {
	for i, r := range l.Relationships.Tasks {
		if r.ID == taskID {
			l.Relationships.Tasks[i].AgentID = agentID
			return
		}
	}
	l.Relationships.Tasks = append(l.Relationships.Tasks, TaskRelation{ID: taskID, AgentID: agentID})
}
