package taskdef

import (
	"fmt"
	"strings"
)

// Severities. Only errors make a definition invalid; warnings name things
// Julep accepts at create but that are likely mistakes or fail at run time.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Issue types, after Julep's split of create-time validation issues.
const (
	TypeSyntax     = "syntax"     // the file is not YAML or not representable as JSON
	TypeSchema     = "schema"     // a value has the wrong shape
	TypeExpression = "expression" // a `$ ` expression or template does not compile
	TypeReference  = "reference"  // a tool, workflow or label that does not resolve
)

// Issue is one problem in a definition. File, Line and Column are set when the
// definition came from a file; Path is the YAML path (main[2].prompt) and
// Location the same path as Julep reports it for JSON bodies.
type Issue struct {
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Path     string `json:"path"`
	Location string `json:"location"`
	Message  string `json:"message"`
	Severity string `json:"severity"`
	Type     string `json:"type"`
	// AtRunTime marks an error in a place Julep v1 does not check at create
	// (a prompt, a tool's arguments...): validate and push refuse it, but the
	// engine, like Julep, accepts the task and fails the step when it runs.
	AtRunTime bool `json:"atRunTime,omitempty"`

	keyPos bool // placed at the mapping key rather than the value
}

// String is the one-line form printed by `astra tasks validate`:
// "tasks/responder.yaml:14:9: main[2].prompt: message". Warnings say so
// after the path.
func (i Issue) String() string {
	var b strings.Builder
	if i.File != "" {
		b.WriteString(i.File)
		if i.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", i.Line, i.Column)
		}
		b.WriteString(": ")
	}
	if i.Path != "" {
		b.WriteString(i.Path)
		b.WriteString(": ")
	}
	if i.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(i.Message)
	return b.String()
}

// HasErrors reports whether any issue is an error (not only warnings).
func HasErrors(issues []Issue) bool {
	for _, i := range issues {
		if i.Severity != SeverityWarning {
			return true
		}
	}
	return false
}

// maxIssues is how many issues one file (or one body) reports: a file with
// 100,000 bad steps needs its first problems fixed, not 33,000 lines.
const maxIssues = 50

// capIssues keeps the first maxIssues issues and sums up the rest in one
// last issue ("and 33284 more errors").
func capIssues(issues []Issue) []Issue {
	if len(issues) <= maxIssues {
		return issues
	}
	rest := issues[maxIssues:]
	errs := 0
	for _, is := range rest {
		if is.Severity != SeverityWarning {
			errs++
		}
	}
	// Placed where the omitted issues start, so it sorts after the kept ones.
	summary := Issue{File: rest[0].File, Line: rest[0].Line, Column: rest[0].Column, Severity: SeverityWarning, Type: rest[0].Type}
	switch {
	case errs == len(rest):
		summary.Message = fmt.Sprintf("and %d more errors", errs)
	case errs == 0:
		summary.Message = fmt.Sprintf("and %d more warnings", len(rest))
	default:
		summary.Message = fmt.Sprintf("and %d more errors and %d more warnings", errs, len(rest)-errs)
	}
	if errs > 0 {
		summary.Severity = SeverityError
	}
	return append(issues[:maxIssues:maxIssues], summary)
}
