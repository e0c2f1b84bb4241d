package dispatch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/responder"
)

// BenchmarkFairness: user A floods the outbox with floodSize messages, then
// user B sends one. Reports B's reply latency (enqueue to the assistant
// event on B's hub subscription) unloaded and behind the flood, and their
// ratio; with the per-user cap the flood should cost B little. The
// "no-cap" run shows what arrival-order claiming did.
//
//	go test -run '^$' -bench Fairness -benchtime 1x ./internal/dispatch/
func BenchmarkFairness(b *testing.B) {
	const floodSize = 1000
	for _, c := range []struct {
		name       string
		maxPerUser int
	}{{"cap=default", 0}, {"no-cap", -1}} {
		b.Run(c.name, func(b *testing.B) {
			e := newBenchEnv(b, func(o *dispatch.Options) { o.MaxPerUser = c.maxPerUser })
			a, bu := e.users[0], e.users[1]
			sub := e.hub.Subscribe(bu.ID)
			defer sub.Close()
			reply := func() time.Duration {
				start := time.Now()
				m := enqueue(b, e.st, bu, "and me?", nil)
				e.d.Wake()
				waitEventWithin(b, sub, m.ID, 5*time.Minute)
				return time.Since(start)
			}
			var unloaded, loaded []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				unloaded = append(unloaded, reply())
				b.StopTimer()
				// The flood arrives before B's message, as fast as the store
				// takes it.
				for j := range floodSize {
					m := &responder.Message{UserID: a.ID, JulepUserID: responder.JulepUserID(a.ID), Content: fmt.Sprint("flood ", j)}
					if err := e.st.Enqueue(context.Background(), m); err != nil {
						b.Fatal(err)
					}
				}
				e.d.Wake()
				b.StartTimer()
				loaded = append(loaded, reply())
			}
			b.StopTimer()
			u, l := median(unloaded), median(loaded)
			b.ReportMetric(float64(u.Microseconds())/1000, "unloaded-ms")
			b.ReportMetric(float64(l.Microseconds())/1000, "flooded-ms")
			b.ReportMetric(float64(l)/float64(u), "flooded/unloaded")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
