package main

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"
)

// BenchmarkProcesses measures end-to-end throughput (POST to delivered,
// offline model) of 1, 2 and 3 `astra serve` processes on one SQLite
// file. On a 2-core machine more processes cannot add CPU; the figure
// that matters is how little sharing the file costs.
func BenchmarkProcesses(b *testing.B) {
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("procs=%d", n), func(b *testing.B) {
			const users, perUser = 30, 10
			var rate float64
			for range b.N {
				rate = runThroughput(b, n, users, perUser)
			}
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func runThroughput(b *testing.B, procsN, users, perUser int) float64 {
	b.Helper()
	env := map[string]string{
		"ASTRA_ADDR":                "127.0.0.1:0",
		"ASTRA_TASKS_DIR":           "../../tasks",
		"ASTRA_ENGINE_KEY":          "engine-key-for-tests",
		"BETTER_AUTH_SECRET":        "scale-out-secret-0123456789",
		"ASTRA_LOG_LEVEL":           "warn",
		"ASTRA_DEV_LOGIN":           "true",
		"ASTRA_MESSAGES_PER_MINUTE": "0",
		"ASTRA_DISPATCH_SWEEP":      "200ms",
		"ASTRA_DATA_DIR":            b.TempDir(),
	}
	tb := testing.TB(b)
	procs := make([]*proc, procsN)
	for i := range procs {
		procs[i] = startProc(tb, fmt.Sprintf("bench-%d", i), maps.Clone(env))
	}
	people := make([]*person, users)
	for i := range people {
		people[i] = signInAt(tb, procs[i%procsN].url, fmt.Sprintf("bench%d@example.com", i))
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, pp := range people {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perUser {
				pp.send(tb, procs, fmt.Sprintf("msg-b%d-%d", i, n))
			}
		}()
	}
	wg.Wait()
	settled(tb, procs, people, 5*time.Minute)
	elapsed := time.Since(start)
	for _, p := range procs {
		p.term()
	}
	return float64(users*perUser) / elapsed.Seconds()
}

// BenchmarkLeaseHandoff measures how long after an instance is SIGKILLed
// mid-step the step runs again on another instance: the engine lease plus
// at most one sweep.
func BenchmarkLeaseHandoff(b *testing.B) {
	tb := testing.TB(b)
	var total time.Duration
	for range b.N {
		model, modelURL := newSlowModel(tb, 3*time.Second)
		env := scaleEnv(tb, modelURL)
		env["ASTRA_DATA_DIR"] = b.TempDir()
		env["ASTRA_LOG_LEVEL"] = "warn"
		first := startProc(tb, "first", env)
		pp := signInAt(tb, first.url, "handoff@example.com")
		pp.send(tb, []*proc{first}, "msg-handoff-0")
		waitFor(tb, func() bool { r, _, _ := model.counts(); return r["msg-handoff-0/reply"] == 1 })
		second := startProc(tb, "second", env)
		killed := time.Now()
		first.kill()
		waitFor(tb, func() bool { r, _, _ := model.counts(); return r["msg-handoff-0/reply"] == 2 })
		total += time.Since(killed)
		second.term()
	}
	b.ReportMetric((total / time.Duration(b.N)).Seconds(), "s-handoff")
	lease, _ := time.ParseDuration(scaleEnv(tb, "")["ASTRA_ENGINE_LEASE"])
	b.ReportMetric(lease.Seconds(), "s-lease")
	b.ReportMetric(0, "ns/op")
}

func waitFor(t testing.TB, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 2 minutes")
		}
	}
}
