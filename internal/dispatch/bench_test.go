package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/stream"
)

// createdHook is an http.RoundTripper that notes when Julep answered the
// create of each row's execution (by the outbox_id in the request).
type createdHook struct {
	next http.RoundTripper
	mu   sync.Mutex
	at   map[string]chan time.Time
}

func (h *createdHook) expect(outboxID string) <-chan time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan time.Time, 1)
	h.at[outboxID] = ch
	return ch
}

func (h *createdHook) RoundTrip(r *http.Request) (*http.Response, error) {
	var id string
	if isCreateExecution(r) && r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		var body struct {
			Metadata map[string]any `json:"metadata"`
		}
		_ = json.Unmarshal(b, &body)
		id, _ = body.Metadata["outbox_id"].(string)
	}
	resp, err := h.next.RoundTrip(r)
	if id != "" && err == nil && resp.StatusCode == http.StatusCreated {
		h.mu.Lock()
		if ch, ok := h.at[id]; ok {
			ch <- time.Now()
			delete(h.at, id)
		}
		h.mu.Unlock()
	}
	return resp, err
}

type benchEnv struct {
	st    responder.Store
	je    *julepEnv
	hub   *stream.Hub
	d     *dispatch.Dispatcher
	users []*responder.User
	hook  *createdHook
}

func newBenchEnv(b *testing.B, opts ...func(*dispatch.Options)) *benchEnv {
	b.Helper()
	st := openStore(b)
	je := startEngine(b, nil)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	hook := &createdHook{next: tr, at: map[string]chan time.Time{}}
	c, err := julep.New(je.URL, engineKey, julep.WithHTTPClient(&http.Client{Transport: hook}))
	if err != nil {
		b.Fatal(err)
	}
	hub := stream.NewHub(stream.Options{Buffer: 1 << 16})
	o := dispatch.Options{Store: st, Julep: c, Hub: hub, TaskID: je.TaskID, Sweep: time.Second}
	for _, f := range opts {
		f(&o)
	}
	r := runDispatcher(b, o)
	e := &benchEnv{st: st, je: je, hub: hub, d: r.d, hook: hook}
	for i := range 8 {
		e.users = append(e.users, newUser(b, st, fmt.Sprintf("Bench %d", i)))
	}
	// Warm up: every user ensured in Julep, connections open.
	for _, u := range e.users {
		sub := hub.Subscribe(u.ID)
		m := enqueue(b, st, u, "warm up", nil)
		e.d.Wake()
		waitEvent(b, sub, m.ID)
		sub.Close()
	}
	return e
}

// waitEvent waits for the assistant event of outboxID on sub.
func waitEvent(b testing.TB, sub *stream.Subscription, outboxID string) {
	waitEventWithin(b, sub, outboxID, 20*time.Second)
}

func waitEventWithin(b testing.TB, sub *stream.Subscription, outboxID string, d time.Duration) {
	timeout := time.After(d)
	for {
		select {
		case <-sub.Ready():
		case <-timeout:
			b.Fatalf("no event for %s within %v", outboxID, d)
		}
		frames, _ := sub.Drain()
		for _, f := range frames {
			if f.Event != nil && f.Event.OutboxID == outboxID && f.Event.Role == responder.RoleAssistant {
				return
			}
		}
	}
}

// cpuTime is the CPU time this process has used (user + system). Per
// message it is a figure other work on the machine does not distort.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration, n int) {
	if used := cpuTime() - since; used > 0 && n > 0 {
		b.ReportMetric(float64(used.Microseconds())/1000/float64(n), "cpu-ms/msg")
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) { reportPercentilesAs(b, lat, "") }

// reportPercentilesAs reports p50 and p99 in ms, the units prefixed with
// prefix when there are several series.
func reportPercentilesAs(b *testing.B, lat []time.Duration, prefix string) {
	if len(lat) == 0 {
		return
	}
	if prefix != "" {
		prefix += "-"
	}
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), prefix+"p50-ms")
	b.ReportMetric(p(0.99), prefix+"p99-ms")
}

// BenchmarkEnqueueToExecutionCreated: a POST's insert and Wake, to Julep
// answering the create of the row's execution. Each message is answered
// before the next is sent, so this is the latency one person sees, not
// the latency under the load of earlier executions.
func BenchmarkEnqueueToExecutionCreated(b *testing.B) {
	e := newBenchEnv(b)
	subs := map[string]*stream.Subscription{}
	for _, u := range e.users {
		subs[u.ID] = e.hub.Subscribe(u.ID)
		defer subs[u.ID].Close()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := e.users[i%len(e.users)]
		m := &responder.Message{ID: responder.NewID(), UserID: u.ID, JulepUserID: responder.JulepUserID(u.ID), Content: "how are my stars today?"}
		done := e.hook.expect(m.ID)
		start := time.Now()
		if err := e.st.Enqueue(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		e.d.Wake()
		select {
		case at := <-done:
			lat = append(lat, at.Sub(start))
		case <-time.After(20 * time.Second):
			b.Fatal("no execution within 20s")
		}
		b.StopTimer()
		waitEvent(b, subs[u.ID], m.ID)
		b.StartTimer()
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkEnqueueToEventPublished: insert and Wake, to the assistant event
// reaching the user's hub subscription (offline model, embedded engine).
func BenchmarkEnqueueToEventPublished(b *testing.B) {
	e := newBenchEnv(b)
	subs := map[string]*stream.Subscription{}
	for _, u := range e.users {
		subs[u.ID] = e.hub.Subscribe(u.ID)
		defer subs[u.ID].Close()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		u := e.users[i%len(e.users)]
		start := time.Now()
		m := enqueue(b, e.st, u, "how are my stars today?", nil)
		e.d.Wake()
		waitEvent(b, subs[u.ID], m.ID)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportCPU(b, cpu0, b.N)
	reportPercentiles(b, lat)
}

// BenchmarkThroughput: b.N messages enqueued at once (from many users) until
// every one is delivered; reports messages per second, and none may be lost.
func BenchmarkThroughput(b *testing.B) {
	e := newBenchEnv(b)
	for i := range 56 {
		e.users = append(e.users, newUser(b, e.st, fmt.Sprintf("Bench extra %d", i)))
	}
	base, err := e.st.CountByStatus(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		enqueue(b, e.st, e.users[i%len(e.users)], "quick one", nil)
		if i%16 == 0 {
			e.d.Wake()
		}
	}
	e.d.Wake()
	want := base[responder.StatusDelivered] + b.N
	for {
		counts, err := e.st.CountByStatus(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if counts[responder.StatusError] > 0 {
			b.Fatalf("%d rows failed", counts[responder.StatusError])
		}
		if counts[responder.StatusDelivered] == want {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("not all delivered: %v", counts)
		}
		// Counting is a query; polling slower would cost the run little
		// precision (runs last seconds) and it keeps the poll's own load low.
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	reportCPU(b, cpu0, b.N)
}
