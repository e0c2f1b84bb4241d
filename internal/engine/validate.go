package engine

import (
	"github.com/astra-app/astra/internal/taskdef"
)

// issue is one problem in a task definition, as Julep reports it.
type issue struct {
	Location string
	Message  string
	Severity string
	Type     string
}

// checkTask is the check at task create: taskdef's, the checks `astra tasks
// validate` and push run, so a task validate passes is one the engine
// accepts. Warnings do not refuse a task, and neither does an expression
// error where Julep v1 checks nothing at create (a prompt, a tool's
// arguments): Julep accepts such a task and fails the step when it runs, and
// so does the engine; validate and push still refuse it.
func checkTask(def map[string]any) []issue {
	var out []issue
	for _, is := range taskdef.ValidateDefinition(def) {
		if is.Severity == taskdef.SeverityWarning || is.AtRunTime {
			continue // Julep accepts it at create too
		}
		out = append(out, issue{Location: is.Location, Message: is.Message, Severity: is.Severity, Type: is.Type})
	}
	return out
}

// isWorkflow reports whether a top-level list is a workflow: steps only.
func isWorkflow(list []any) bool {
	if len(list) == 0 {
		return false
	}
	for _, s := range list {
		m, ok := s.(map[string]any)
		if !ok || stepKind(m) == "" {
			return false
		}
	}
	return true
}
