package taskdef

import "github.com/astra-app/astra/internal/expr"

// checkExpression says whether a task string compiles under Julep's rules
// (a "$ " expression, a legacy form, or an f-string). It is the one place
// that knows who checks, so the engine and the validator agree.
func checkExpression(s string) error { return expr.Check(s) }

// isExpression reports whether Julep evaluates s as a Python expression (a
// "$ " prefix or a legacy form rewritten to one) rather than an f-string.
func isExpression(s string) bool { return expr.IsExpression(s) }
