package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/astra-app/astra/internal/responder"
)

// Benchmarks (numbers in the package report of this helper):
//
//	go test ./internal/server -run '^$' -bench . -benchtime 20000x     # POST
//	go test ./internal/server -run '^$' -bench PublishLatency -benchtime 10x
//	go test ./internal/server -run '^$' -bench IdleSocketMemory -benchtime 1x

func raiseFileLimit(b testing.TB, need uint64) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		b.Fatal(err)
	}
	if l.Cur < need {
		l.Cur = min(need, l.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			b.Fatal(err)
		}
	}
	if l.Cur < need {
		b.Skipf("RLIMIT_NOFILE is %d, need %d", l.Cur, need)
	}
}

// BenchmarkPostMessage: POST /api/responder/messages on SQLite, many
// clients at once, through the real handler and session checks.
func BenchmarkPostMessage(b *testing.B) {
	e := newEnv(b)
	u := e.newUser("Ada")
	cookie := u.withCookie()
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	client := &http.Client{Transport: tr}
	url := e.srv.URL + "/api/responder/messages"
	body := []byte(`{"content":"How does my week look?","metadata":{"source":"bench"}}`)
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Cookie", cookie)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkPublishLatency: 1,000 sockets (one per user); each iteration
// publishes one event to every user and waits until every socket has it.
// Latency is publish call to client receipt, client in the same process.
func BenchmarkPublishLatency(b *testing.B) {
	const sockets = 1000
	raiseFileLimit(b, 3*sockets+100)
	e := newEnv(b)
	ctx := context.Background()
	users := make([]*user, sockets)
	conns := make([]*websocket.Conn, sockets)
	for i := range users {
		users[i] = e.newUser(fmt.Sprint("u", i))
		c, _, err := e.dial(ctx, users[i].withCookie(), "")
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		for range 2 { // init, then the message states
			if _, _, err := c.Read(ctx); err != nil {
				b.Fatal(err)
			}
		}
		conns[i] = c
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		round     sync.WaitGroup
	)
	for _, c := range conns {
		go func() {
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				// The content is the publish time in UnixNano.
				i := bytes.Index(data, []byte(`"content":"`))
				j := bytes.IndexByte(data[i+11:], '"')
				sent, _ := strconv.ParseInt(string(data[i+11:i+11+j]), 10, 64)
				d := time.Since(time.Unix(0, sent))
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
				round.Done()
			}
		}()
	}
	publish := func(u *user) {
		e.hub.PublishEvent(responder.Event{ID: responder.NewID(), UserID: u.ID, Role: responder.RoleAssistant,
			Content: strconv.FormatInt(time.Now().UnixNano(), 10), CreatedAt: time.Now()})
	}
	report := func(b *testing.B) {
		slices.Sort(latencies)
		pct := func(p float64) float64 {
			return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(float64(sockets), "sockets")
		latencies = latencies[:0]
	}
	// burst: every iteration publishes to all 1,000 users at once (the
	// last socket waits for the 999 before it).
	b.Run("burst", func(b *testing.B) {
		for range b.N {
			round.Add(sockets)
			for _, u := range users {
				publish(u)
			}
			round.Wait()
		}
		b.StopTimer()
		report(b)
	})
	// paced: the same events spread at 5,000 events/s, a busy but steady load.
	b.Run("paced", func(b *testing.B) {
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for range b.N {
			round.Add(sockets)
			for _, u := range users {
				<-tick.C
				publish(u)
			}
			round.Wait()
		}
		b.StopTimer()
		report(b)
	})
}

// BenchmarkIdleSocketMemory opens 5,000 authenticated sockets from a child
// process (so only the server's memory is counted) and reports the growth
// of this process's RSS and of the Go runtime's heap+stacks per socket.
func BenchmarkIdleSocketMemory(b *testing.B) {
	const sockets, usersN = 5000, 100
	raiseFileLimit(b, sockets+200)
	// 50 sockets a user: above the default cap, which would close the
	// oldest and never let the count reach 5,000.
	e := newEnv(b, func(c *envConfig) { c.deps.SocketsPerUser = sockets })
	cookies := make([]string, usersN)
	for i := range cookies {
		cookies[i] = e.newUser(fmt.Sprint("u", i)).withCookie()
	}
	for range b.N {
		rss0, heap0 := memNow()
		cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperSocketClients$", "-test.v")
		cmd.Env = append(os.Environ(), "ASTRA_BENCH_CLIENT_URL="+e.srv.URL, "ASTRA_BENCH_CLIENT_N="+strconv.Itoa(sockets),
			"ASTRA_BENCH_CLIENT_COOKIES="+strings.Join(cookies, "\n"))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		ready := false
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready = true
				break
			}
		}
		if !ready {
			b.Fatal("client process did not get ready")
		}
		for e.hub.Stats().Subscribers < sockets {
			time.Sleep(10 * time.Millisecond) // the last handshakes finishing server-side
		}
		rss1, heap1 := memNow()
		b.ReportMetric(float64(rss1-rss0)/sockets/1024, "RSS-KiB/socket")
		b.ReportMetric(float64(heap1-heap0)/sockets/1024, "heap+stack-KiB/socket")
		stdin.Close()
		_ = cmd.Wait()
		for e.hub.Stats().Subscribers > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// memNow returns VmRSS and the Go heap in use plus goroutine stacks, after
// a GC that hands free memory back to the OS.
func memNow() (rss, heap int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss = kb * 1024
		}
	}
	return rss, int64(ms.HeapInuse + ms.StackInuse)
}

// TestHelperSocketClients is the client side of BenchmarkIdleSocketMemory,
// run in a child process; it does nothing in a normal test run.
func TestHelperSocketClients(t *testing.T) {
	url := os.Getenv("ASTRA_BENCH_CLIENT_URL")
	if url == "" {
		t.Skip("only run by BenchmarkIdleSocketMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("ASTRA_BENCH_CLIENT_N"))
	cookies := strings.Split(os.Getenv("ASTRA_BENCH_CLIENT_COOKIES"), "\n")
	var l syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	l.Cur = l.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	ws := "ws" + strings.TrimPrefix(url, "http") + "/api/responder/socket"
	ctx := context.Background()
	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			h := http.Header{"Cookie": {cookies[i%len(cookies)]}}
			c, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: h})
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			for range 2 { // init, then the message states
				if _, _, err := c.Read(ctx); err != nil {
					t.Errorf("init %d: %v", i, err)
				}
			}
			c.CloseRead(ctx) // keep answering pings, read nothing else
			conns[i] = c
		})
	}
	wg.Wait()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent is done measuring
	for _, c := range conns {
		if c != nil {
			c.CloseNow()
		}
	}
}
