package dispatch

import "time"

// SetAfterFunc replaces d's still-working timer; call it before Run.
func SetAfterFunc(d *Dispatcher, f func(time.Duration, func()) (stop func() bool)) { d.afterFunc = f }

// EnsuredLen is how many Julep users d remembers as ensured.
func EnsuredLen(d *Dispatcher) int { return d.ensured.len() }
