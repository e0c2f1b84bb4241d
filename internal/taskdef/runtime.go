package taskdef

import (
	"regexp"
	"strings"
)

// julepChecked matches the paths whose expressions Julep v1 checks when a
// task is created (task_validation.py): evaluate, set and return values, if
// conditions and foreach sources. Everywhere else Julep accepts any string
// and an execution fails only when it reaches a bad one.
var julepChecked = regexp.MustCompile(`\.(?:(?:evaluate|set|return)\.[^.\[\]]+|if|foreach\.in)$`)

// atRunTime marks the issues from index from on as errors Julep would only
// find at run time when path is not one it checks at create, so the
// engine's create check accepts what Julep accepts while `astra tasks
// validate` and push still refuse a task that cannot run.
func atRunTime(issues []Issue, from int, path, s string) {
	if julepChecked.MatchString(path) && (strings.HasSuffix(path, ".if") || strings.HasSuffix(path, ".in") || julepChecks(s)) {
		return
	}
	for i := from; i < len(issues); i++ {
		issues[i].AtRunTime = true
	}
}
