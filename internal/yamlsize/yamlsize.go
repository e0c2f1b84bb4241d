// Package yamlsize measures how many bytes a YAML document stands for once
// its aliases are followed, so that callers can refuse an alias bomb (one
// long anchored scalar repeated by a thousand aliases) before decoding it.
package yamlsize

import (
	"bytes"
	"fmt"
	"math"

	"go.yaml.in/yaml/v3"
)

// MinLimit is the expansion every document may reach, whatever its size.
const MinLimit = 4 << 20

// Limit is the expansion allowed for a document of n bytes: 4 MB, or twice
// the input for larger documents (without aliases a document expands to
// about its own size, so only aliases can reach it).
func Limit(n int) int64 {
	return max(MinLimit, 2*int64(n))
}

// Error is a refused document: Line and Column are those of the alias that
// took the expansion past the limit (or of the node, if no alias did).
type Error struct {
	Line, Column int
	Size, Limit  int64 // Size saturates at math.MaxInt64
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (alias at line %d, column %d)", e.Reason(), e.Line, e.Column)
}

// Reason is the message without the position, for callers that report the
// position themselves.
func (e *Error) Reason() string {
	return fmt.Sprintf("YAML aliases expand the document to %s, over the limit of %s", human(e.Size), human(e.Limit))
}

// Check measures the document rooted at n and returns an *Error when it
// expands beyond limit bytes. Each anchored node is measured once, so the
// check is linear in the document even for nested aliases.
func Check(n *yaml.Node, limit int64) error {
	memo := map[*yaml.Node]int64{}
	total := size(n, memo, 0)
	if total <= limit {
		return nil
	}
	// Find the first node, in document order, that crosses the limit: an
	// alias, unless the document is simply that large.
	var run int64
	at := n
	var walk func(*yaml.Node) bool
	walk = func(x *yaml.Node) bool {
		switch x.Kind {
		case yaml.AliasNode:
			run = addSat(run, size(x.Alias, memo, 0))
		case yaml.ScalarNode:
			run = addSat(run, int64(len(x.Value))+1)
		default:
			run = addSat(run, 2)
			for _, c := range x.Content {
				if walk(c) {
					return true
				}
			}
			return false
		}
		if run > limit {
			at = x
			return true
		}
		return false
	}
	walk(n)
	return &Error{Line: at.Line, Column: at.Column, Size: total, Limit: limit}
}

// Size is the number of bytes the document rooted at n expands to
// (saturating).
func Size(n *yaml.Node) int64 {
	return size(n, map[*yaml.Node]int64{}, 0)
}

// CheckBytes parses data (its first document) and checks it with
// Limit(len(data)). Syntax errors are left to the caller's decoder: only an
// expansion over the limit is reported.
func CheckBytes(data []byte) error {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		return nil
	}
	return Check(&root, Limit(len(data)))
}

// size is the expansion of n. Anchored nodes (the only ones an alias can
// name) are memoised; one met again while being measured is a cycle, which
// the decoder rejects anyway, and counts as empty.
func size(n *yaml.Node, memo map[*yaml.Node]int64, depth int) int64 {
	if n == nil || depth > 10_000 {
		return 0
	}
	if n.Anchor != "" {
		if s, ok := memo[n]; ok {
			return s
		}
		memo[n] = 0
	}
	var s int64
	switch n.Kind {
	case yaml.AliasNode:
		s = size(n.Alias, memo, depth+1)
	case yaml.ScalarNode:
		s = int64(len(n.Value)) + 1
	default:
		s = 2
		for _, c := range n.Content {
			s = addSat(s, size(c, memo, depth+1))
		}
	}
	if n.Anchor != "" {
		memo[n] = s
	}
	return s
}

func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func human(n int64) string {
	switch {
	case n == math.MaxInt64:
		return "more than 8 EB"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
