package dispatch

import (
	"fmt"
	"path/filepath"

	"github.com/astra-app/astra/internal/taskdef"
)

// ResponderTaskPath is the responder task's definition path in tasks/.
const ResponderTaskPath = "responder.yaml"

// TaskIDFromLock returns the responder task's id from the lock file that
// `astra tasks push` writes in tasksDir: the entry for responder.yaml, or
// the only task when the project names it differently.
func TaskIDFromLock(tasksDir string) (string, error) {
	path := filepath.Join(tasksDir, taskdef.LockName)
	lock, err := taskdef.ReadLock(path)
	if err != nil {
		return "", err
	}
	if id, ok := lock.ID(taskdef.KindTask, ResponderTaskPath); ok {
		return id, nil
	}
	if len(lock.Tasks) == 1 {
		return lock.Tasks[0].ID, nil
	}
	return "", fmt.Errorf("%s has no responder task (%s): run `astra tasks push` first", path, ResponderTaskPath)
}
