package taskdef

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/astra-app/astra/internal/yamlsize"
)

// Limits that keep a hostile file (an alias bomb, absurd nesting) from
// exhausting memory or the stack: no real task comes near them. Nodes are
// counted after alias expansion; bytes are bounded by yamlsize before it.
const (
	maxNodes = 200_000
	maxDepth = 128
)

// Doc is one parsed YAML file: its value as JSON-compatible Go data
// (map[string]any, []any, string, bool, int64, float64, nil) and the
// position of every path's value and mapping key, so later checks can name
// file:line:column.
type Doc struct {
	File  string
	Value any
	vals  map[string]position
	keys  map[string]position
}

type position struct{ line, col int }

// Pos returns the line and column of the value at path (or of the nearest
// enclosing value that has one), 1-based; 0, 0 when unknown.
func (d *Doc) Pos(path string) (line, col int) {
	if d == nil {
		return 0, 0
	}
	for {
		if p, ok := d.vals[path]; ok {
			return p.line, p.col
		}
		if path == "" {
			return 0, 0
		}
		path = parentPath(path)
	}
}

// KeyPos returns the position of the mapping key whose value is at path,
// falling back to the value's position.
func (d *Doc) KeyPos(path string) (line, col int) {
	if d != nil {
		if p, ok := d.keys[path]; ok {
			return p.line, p.col
		}
	}
	return d.Pos(path)
}

// parentPath drops the last key or index: main[2].prompt -> main[2] -> main.
func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}

func joinKey(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func joinIndex(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// ParseYAML parses one YAML document. Syntax problems come back as issues
// (never a panic); the Doc is nil only when the bytes are not YAML at all.
func ParseYAML(file string, data []byte) (*Doc, []Issue) {
	d := &Doc{File: file, vals: map[string]position{}, keys: map[string]position{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return d, nil // empty file: a nil value, reported by the caller's checks
		}
		return nil, []Issue{syntaxIssue(file, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, []Issue{{File: file, Line: extra.Line, Column: extra.Column, Message: "more than one YAML document in the file",
			Severity: SeverityError, Type: TypeSyntax}}
	} else if !errors.Is(err, io.EOF) {
		return nil, []Issue{syntaxIssue(file, err)}
	}
	// Refuse an alias bomb before following any alias: counting nodes is
	// not enough when one aliased scalar is 200,000 characters long.
	var big *yamlsize.Error
	if err := yamlsize.Check(&root, yamlsize.Limit(len(data))); errors.As(err, &big) {
		return nil, []Issue{{File: file, Line: big.Line, Column: big.Column, Message: big.Reason(), Severity: SeverityError, Type: TypeSyntax}}
	}
	c := &converter{doc: d}
	d.Value = c.value(&root, "", 0)
	return d, capIssues(c.issues)
}

func syntaxIssue(file string, err error) Issue {
	is := Issue{File: file, Message: "invalid YAML: " + trimYAMLPrefix(err.Error()), Severity: SeverityError, Type: TypeSyntax}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		is.Line, _ = strconv.Atoi(m[1])
		is.Column = 1
	}
	return is
}

func trimYAMLPrefix(s string) string {
	if len(s) > 6 && s[:6] == "yaml: " {
		return s[6:]
	}
	return s
}

type converter struct {
	doc    *Doc
	nodes  int
	issues []Issue
	failed bool // a limit was hit: stop converting, one issue is enough
}

func (c *converter) fail(n *yaml.Node, path, msg string) {
	c.issues = append(c.issues, Issue{File: c.doc.File, Line: n.Line, Column: n.Column, Path: path, Location: path,
		Message: msg, Severity: SeverityError, Type: TypeSyntax})
}

func (c *converter) value(n *yaml.Node, path string, depth int) any {
	if c.failed {
		return nil
	}
	c.nodes++
	if c.nodes > maxNodes || depth > maxDepth {
		c.failed = true
		c.fail(n, path, fmt.Sprintf("document too large or too deeply nested (limits: %d nodes, depth %d)", maxNodes, maxDepth))
		return nil
	}
	if _, seen := c.doc.vals[path]; !seen && n.Kind != yaml.DocumentNode {
		c.doc.vals[path] = position{n.Line, n.Column}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return c.value(n.Content[0], path, depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil
		}
		return c.value(n.Alias, path, depth+1)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			out = append(out, c.value(item, joinIndex(path, i), depth+1))
		}
		return out
	case yaml.MappingNode:
		return c.mapping(n, path, depth)
	case yaml.ScalarNode:
		return c.scalar(n, path)
	}
	return nil
}

func (c *converter) mapping(n *yaml.Node, path string, depth int) map[string]any {
	out := map[string]any{}
	explicit := map[string]int{} // key -> line, for duplicate reports
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			c.fail(k, path, "mapping keys must be plain scalars")
			continue
		}
		p := joinKey(path, key)
		if line, dup := explicit[key]; dup {
			c.fail(k, p, fmt.Sprintf("duplicate key %q (first at line %d)", key, line))
			continue
		}
		explicit[key] = k.Line
		c.doc.keys[p] = position{k.Line, k.Column}
		out[key] = c.value(v, p, depth+1)
	}
	// Merge keys (<<: *base) fill only keys the mapping does not set itself.
	for _, m := range merges {
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, s := range srcs {
			for s.Kind == yaml.AliasNode && s.Alias != nil {
				s = s.Alias
			}
			if s.Kind != yaml.MappingNode {
				c.fail(s, path, "merge key (<<) needs a mapping")
				continue
			}
			merged, _ := c.mapping(s, path, depth+1), 0
			for k, v := range merged {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
		}
	}
	return out
}

func (c *converter) scalar(n *yaml.Node, path string) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err == nil {
			return b
		}
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i
		}
		var f float64
		if err := n.Decode(&f); err == nil {
			return f
		}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err == nil {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				c.fail(n, path, fmt.Sprintf("%s cannot be represented in JSON", n.Value))
				return n.Value
			}
			return f
		}
	}
	// Strings, timestamps, binary and custom tags keep their text: the task
	// is sent to Julep as JSON, where they are strings.
	return n.Value
}
