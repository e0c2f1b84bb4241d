//go:build race

package dispatch_test

// raceEnabled: the race detector is on (tests that load the machine scale down).
const raceEnabled = true
