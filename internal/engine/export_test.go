package engine

// Crash stops e as a killed process would: its runs stop where they are,
// writing nothing more, and its leases are kept until they run out.
func (e *Engine) Crash() {
	e.abandon.Store(true)
	e.Close()
}

// SetBeforeCleanup makes f run as each run ends, before the engine forgets
// it: a test holds f to widen the window between a run's last write and
// its cleanup.
func (e *Engine) SetBeforeCleanup(f func(id string)) { e.beforeCleanup.Store(&f) }

// SetStepHook makes f run as each step starts, in the goroutine that runs
// the step: a test panics there to check that a panic fails only its
// execution.
func (e *Engine) SetStepHook(f func(step map[string]any)) { e.stepHook.Store(&f) }
