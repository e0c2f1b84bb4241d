package taskdef

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// ManifestName is the project file, in the Julep CLI's julep.yaml shape.
const ManifestName = "julep.yaml"

// Entry kinds.
const (
	KindAgent = "agent"
	KindTask  = "task"
)

// Entry is one agent or task of a project: its definition file, parsed, and
// its revision hash.
type Entry struct {
	Kind string
	// Path is the definition path as the manifest writes it, relative to the
	// project directory; the lock file keys entries by it.
	Path string
	// File is the path to open and to name in messages (project dir + Path).
	File string
	Doc  *Doc
	Hash string
	// AgentIndex is the manifest index of a task's agent ("{agents[0].id}"),
	// or -1 when AgentID names a literal id.
	AgentIndex int
	AgentID    string
}

// Name is the definition's name field, or the path when it has none.
func (e *Entry) Name() string {
	if m, ok := e.Doc.Value.(map[string]any); ok {
		if n, ok := m["name"].(string); ok && n != "" {
			return n
		}
	}
	return e.Path
}

// Definition is the parsed definition as a JSON object.
func (e *Entry) Definition() map[string]any {
	m, _ := e.Doc.Value.(map[string]any)
	return m
}

// Project is a loaded julep.yaml with its agents and tasks.
type Project struct {
	Dir      string // the directory holding julep.yaml
	Manifest *Doc
	Name     string
	Agents   []*Entry
	Tasks    []*Entry
}

// LockPath is where the project's lock file lives.
func (p *Project) LockPath() string { return filepath.Join(p.Dir, LockName) }

var agentRefRE = regexp.MustCompile(`^\{\s*agents\[(\d+)\]\.id\s*\}$`)

// LoadProject reads a manifest (a julep.yaml file, or a directory holding
// one), every definition it names, and checks them all. The project is nil
// only when the manifest itself cannot be read or parsed.
func LoadProject(path string) (*Project, []Issue) {
	file := path
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		file = filepath.Join(path, ManifestName)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, []Issue{fileIssue(file, err)}
	}
	md, issues := ParseYAML(file, b)
	if md == nil {
		return nil, issues
	}
	p := &Project{Dir: filepath.Dir(file), Manifest: md}
	issues = append(issues, p.readManifest()...)
	sortByFile(issues, file)
	return p, issues
}

// sortByFile orders issues file by file (the manifest first, then files in
// the order they were named) and by position within each file.
func sortByFile(issues []Issue, first string) {
	rank := map[string]int{first: 0}
	for _, is := range issues {
		if _, ok := rank[is.File]; !ok {
			rank[is.File] = len(rank)
		}
	}
	slices.SortStableFunc(issues, func(a, b Issue) int {
		if c := cmp.Compare(rank[a.File], rank[b.File]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
}

func fileIssue(file string, err error) Issue {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Err.Error()
	}
	if errors.Is(err, fs.ErrNotExist) {
		msg = "file not found"
	}
	return Issue{File: file, Message: msg, Severity: SeverityError, Type: TypeSyntax}
}

func (p *Project) readManifest() []Issue {
	var issues []Issue
	bad := func(path, format string, args ...any) {
		issues = append(issues, Issue{Path: path, Location: path, Message: fmt.Sprintf(format, args...), Severity: SeverityError, Type: TypeSchema})
	}
	m, ok := p.Manifest.Value.(map[string]any)
	if !ok {
		bad("", "a manifest must be a mapping with agents and tasks")
		return place(p.Manifest, issues)
	}
	p.Name, _ = m["name"].(string)
	list := func(key string) []any {
		switch v := m[key].(type) {
		case nil:
			return nil
		case []any:
			return v
		default:
			bad(key, "want a list, got %s", jsonType(v))
			return nil
		}
	}
	definition := func(path string, item any) (string, map[string]any) {
		im, ok := item.(map[string]any)
		if !ok {
			bad(path, "want a mapping with definition, got %s", jsonType(item))
			return "", nil
		}
		def, ok := im["definition"].(string)
		if !ok || strings.TrimSpace(def) == "" {
			bad(joinKey(path, "definition"), "required: the path of a YAML definition")
			return "", nil
		}
		return def, im
	}
	var entryIssues []Issue
	agents := list("agents")
	for i, a := range agents {
		path := joinIndex("agents", i)
		def, _ := definition(path, a)
		if def == "" {
			p.Agents = append(p.Agents, nil)
			continue
		}
		e, is := p.loadEntry(KindAgent, path, def)
		p.Agents = append(p.Agents, e)
		entryIssues = append(entryIssues, is...)
	}
	for i, t := range list("tasks") {
		path := joinIndex("tasks", i)
		def, im := definition(path, t)
		if def == "" {
			continue
		}
		e, is := p.loadEntry(KindTask, path, def)
		entryIssues = append(entryIssues, is...)
		if e == nil {
			continue
		}
		ref, _ := im["agent_id"].(string)
		switch sm := agentRefRE.FindStringSubmatch(strings.TrimSpace(ref)); {
		case sm != nil:
			n, _ := strconv.Atoi(sm[1])
			if n >= len(agents) {
				bad(joinKey(path, "agent_id"), "%s: the manifest has %d agent(s)", ref, len(agents))
				continue
			}
			e.AgentIndex = n
		case uuid.Validate(ref) == nil:
			e.AgentIndex, e.AgentID = -1, ref
		default:
			bad(joinKey(path, "agent_id"), "want \"{agents[N].id}\" or an agent UUID, got %q", ref)
			continue
		}
		p.Tasks = append(p.Tasks, e)
	}
	// Agent tools and secrets (library manifests have them) are read but
	// not deployed: the responder needs neither.
	list("tools")
	issues = place(p.Manifest, issues)
	return append(issues, entryIssues...)
}

// loadEntry reads and checks one definition. A manifest path that escapes
// the project directory is refused: the lock keys entries by path.
func (p *Project) loadEntry(kind, manifestPath, def string) (*Entry, []Issue) {
	clean := filepath.ToSlash(filepath.Clean(filepath.FromSlash(def)))
	if filepath.IsAbs(def) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, place(p.Manifest, []Issue{{Path: joinKey(manifestPath, "definition"), Location: joinKey(manifestPath, "definition"),
			Message: fmt.Sprintf("%q is outside the project directory", def), Severity: SeverityError, Type: TypeSchema}})
	}
	file := filepath.Join(p.Dir, filepath.FromSlash(clean))
	b, err := os.ReadFile(file)
	if err != nil {
		is := fileIssue(file, err)
		is.Message = fmt.Sprintf("%s (named by %s)", is.Message, manifestPath+".definition")
		return nil, []Issue{is}
	}
	d, issues := ParseYAML(file, b)
	if d == nil {
		return nil, issues
	}
	e := &Entry{Kind: kind, Path: clean, File: file, Doc: d}
	if kind == KindAgent {
		issues = append(issues, ValidateAgent(d)...)
	} else {
		issues = append(issues, ValidateTask(d)...)
	}
	h, err := Hash(d.Value)
	if err != nil {
		issues = append(issues, Issue{File: file, Line: 1, Column: 1, Message: err.Error(), Severity: SeverityError, Type: TypeSyntax})
	}
	e.Hash = h
	return e, issues
}

// LoadFile reads one agent or task file and checks it; the kind is guessed
// from the content (a task has main or input_schema; an agent has neither).
func LoadFile(file string) (*Entry, []Issue) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, []Issue{fileIssue(file, err)}
	}
	d, issues := ParseYAML(file, b)
	if d == nil {
		return nil, issues
	}
	e := &Entry{Kind: KindTask, Path: filepath.ToSlash(file), File: file, Doc: d}
	m, _ := d.Value.(map[string]any)
	_, hasMain := m["main"]
	_, hasSchema := m["input_schema"]
	if m != nil && !hasMain && !hasSchema && (m["model"] != nil || m["about"] != nil || m["instructions"] != nil) {
		e.Kind = KindAgent
		issues = append(issues, ValidateAgent(d)...)
	} else {
		issues = append(issues, ValidateTask(d)...)
	}
	e.Hash, _ = Hash(d.Value)
	return e, issues
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
