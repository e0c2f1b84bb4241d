package dispatch

import (
	"sync"
	"time"
)

// ensureTTL is how long an ensured Julep user is trusted to exist.
const ensureTTL = 10 * time.Minute

// maxEnsured bounds the users remembered at once; past it some are
// forgotten, which costs each of them one more create-or-update.
const maxEnsured = 100_000

// ensuredUsers remembers Julep users created-or-updated recently, so a busy
// user costs one Julep call per ensureTTL rather than one per message.
// Entries older than ensureTTL are dropped at most once per ensureTTL, so
// it holds about the users served in the last two TTLs, never more than
// maxEnsured.
type ensuredUsers struct {
	mu    sync.Mutex
	at    map[string]time.Time
	swept time.Time
}

// fresh reports whether id was ensured less than ensureTTL before now.
func (e *ensuredUsers) fresh(id string, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	at, ok := e.at[id]
	return ok && now.Sub(at) <= ensureTTL
}

// add notes that id was ensured at now.
func (e *ensuredUsers) add(id string, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.at == nil {
		e.at = map[string]time.Time{}
	}
	if now.Sub(e.swept) > ensureTTL || len(e.at) >= maxEnsured {
		for k, at := range e.at {
			if now.Sub(at) > ensureTTL {
				delete(e.at, k)
			}
		}
		e.swept = now
		// Still full of fresh users: forget any half (random order).
		for k := range e.at {
			if len(e.at) < maxEnsured/2 {
				break
			}
			delete(e.at, k)
		}
	}
	e.at[id] = now
}

func (e *ensuredUsers) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.at)
}
