package dispatch_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/astra-app/astra/internal/server"
)

// BenchmarkLiveFanOut measures the live stream end to end, as issue 14's
// comparison with Centrifugo did: the real API, dispatcher and embedded
// engine in this process, asking a streaming model (12 fragments a reply,
// no delay of its own), and 1,000 WebSocket clients in a child process (so
// this process's CPU is the server's). Scenarios: 1,000 sockets of one
// user, and 1,000 users with one socket each; paced (one reply at a time)
// and back to back (20 messages posted at once). Reported: POST -> first
// delta and POST -> final append per (reply, socket), event created ->
// socket for the append (p50/p99/max), and server CPU per publish x
// socket (the process's user+system CPU over the scenario divided by the
// frames it had to deliver: 13 per reply (12 deltas + the append) times
// the sockets that reply goes to). Run with -benchtime=1x.
func BenchmarkLiveFanOut(b *testing.B) {
	sockets := 1000
	if n, err := strconv.Atoi(os.Getenv("ASTRA_FANOUT_SOCKETS")); err == nil && n > 0 {
		sockets = n // a smaller run, to try the benchmark out
	}
	raiseLimit(b, uint64(3*sockets+200))
	model := newModelServer(b,
		func(user string) string { return "Here is the streamed answer to " + user + ", one word at a time." },
		func(string) string { return "They asked; it streamed." })
	p := startProductWith(b, model, server.Deps{SocketsPerUser: sockets})
	oneUser := make([]string, sockets)
	for i := range oneUser {
		oneUser[i] = p.cookie
	}
	manyUsers := make([]string, sockets)
	for i := range manyUsers {
		manyUsers[i] = p.person(b, fmt.Sprint("Fan ", i))
	}
	for _, sc := range []struct {
		name    string
		cookies []string
		perPost int // sockets each reply reaches
	}{
		{fmt.Sprintf("one-user-%d-sockets", sockets), oneUser, sockets},
		{fmt.Sprintf("%d-users-1-socket", sockets), manyUsers, 1},
	} {
		for _, mode := range []string{"paced", "back-to-back"} {
			b.Run(sc.name+"/"+mode, func(b *testing.B) {
				for range b.N {
					runFanOut(b, p, sc.cookies, sc.perPost, mode)
				}
			})
		}
	}
}

func runFanOut(b *testing.B, p *product, cookies []string, perPost int, mode string) {
	cl := startClients(b, p.srv.URL, cookies, perPost)
	defer cl.stop()
	const replies = 20
	posted := map[string]time.Time{}
	// Who posts: the one user, or a different user per message.
	author := func(i int) string { return cookies[(i*37)%len(cookies)] }
	cpu0 := cpuTime()
	start := time.Now()
	switch mode {
	case "paced":
		for i := range replies {
			t := time.Now()
			id := p.postAs(b, author(i), fmt.Sprintf("paced %d", i))
			posted[id] = t
			cl.waitDone(b, id)
		}
	default:
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range replies {
			wg.Go(func() {
				t := time.Now()
				id := p.postAs(b, author(i), fmt.Sprintf("burst %d", i))
				mu.Lock()
				posted[id] = t
				mu.Unlock()
			})
		}
		wg.Wait()
		for id := range posted {
			cl.waitDone(b, id)
		}
	}
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	res := cl.result(b)
	var first, final []time.Duration
	for id, t := range posted {
		for _, at := range res.FirstDelta[id] {
			first = append(first, time.Unix(0, at).Sub(t))
		}
		for _, at := range res.Append[id] {
			final = append(final, time.Unix(0, at).Sub(t))
		}
	}
	if len(final) != replies*perPost {
		b.Fatalf("%d final appends received, want %d", len(final), replies*perPost)
	}
	lat := make([]time.Duration, len(res.EventLatency))
	for i, ns := range res.EventLatency {
		lat[i] = time.Duration(ns)
	}
	report := func(name string, d []time.Duration) {
		if len(d) == 0 {
			return
		}
		slices.Sort(d)
		ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
		b.ReportMetric(ms(d[len(d)/2]), name+"-p50-ms")
		b.ReportMetric(ms(d[(len(d)-1)*99/100]), name+"-p99-ms")
		b.ReportMetric(ms(d[len(d)-1]), name+"-max-ms")
	}
	report("post-first-delta", first)
	report("post-append", final)
	report("event-socket", lat)
	units := float64(replies * 13 * perPost)
	b.ReportMetric(float64(cpu.Microseconds())/units, "cpu-us/publish-socket")
	b.ReportMetric(float64(len(first))/float64(replies*perPost), "replies-with-deltas")
	b.ReportMetric(float64(res.Frames)/float64(replies*perPost), "frames/reply-socket")
	b.ReportMetric(float64(res.ProtocolErrors), "protocol-errors")
	b.ReportMetric(wall.Seconds(), "wall-s")
}

func raiseLimit(b testing.TB, need uint64) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		b.Fatal(err)
	}
	if l.Cur < need {
		l.Cur = min(need, l.Max)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	if l.Cur < need {
		b.Skipf("RLIMIT_NOFILE is %d, need %d", l.Cur, need)
	}
}

// fanClients is the child process holding the sockets.
type fanClients struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	lines chan string
	done  map[string]bool
}

type fanResult struct {
	FirstDelta     map[string][]int64 // outbox id -> per socket, unix ns
	Append         map[string][]int64
	EventLatency   []int64 // ns, append's createdAt -> received
	Frames         int     // delta and append frames received
	ProtocolErrors int
}

func startClients(b *testing.B, base string, cookies []string, perReply int) *fanClients {
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperFanOutClients$", "-test.v")
	cmd.Env = append(os.Environ(), "ASTRA_FANOUT_URL="+base, "ASTRA_FANOUT_COOKIES="+strings.Join(cookies, "\n"),
		"ASTRA_FANOUT_PER_REPLY="+strconv.Itoa(perReply))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &fanClients{cmd: cmd, stdin: stdin, lines: make(chan string, 1024), done: map[string]bool{}}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<30)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	for l := range c.lines {
		if l == "ready" {
			return c
		}
	}
	b.Fatal("the client process did not get ready")
	return nil
}

func (c *fanClients) waitDone(b *testing.B, id string) {
	timeout := time.After(2 * time.Minute)
	for !c.done[id] {
		select {
		case l, ok := <-c.lines:
			if !ok {
				b.Fatal("the client process ended")
			}
			if rest, ok := strings.CutPrefix(l, "done "); ok {
				c.done[rest] = true
			}
		case <-timeout:
			b.Fatalf("reply %s did not reach every socket within 2 minutes", id)
		}
	}
}

func (c *fanClients) result(b *testing.B) fanResult {
	c.stdin.Close()
	for l := range c.lines {
		if rest, ok := strings.CutPrefix(l, "result "); ok {
			var r fanResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				b.Fatal(err)
			}
			return r
		}
	}
	b.Fatal("no result from the client process")
	return fanResult{}
}

func (c *fanClients) stop() {
	c.stdin.Close()
	_ = c.cmd.Wait()
}

// TestHelperFanOutClients is BenchmarkLiveFanOut's client process: one
// socket per cookie; "done <outbox id>" when every socket has that reply's
// final append; on stdin's end, "result <json>".
func TestHelperFanOutClients(t *testing.T) {
	base := os.Getenv("ASTRA_FANOUT_URL")
	if base == "" {
		t.Skip("child process of BenchmarkLiveFanOut")
	}
	cookies := strings.Split(os.Getenv("ASTRA_FANOUT_COOKIES"), "\n")
	perReply, _ := strconv.Atoi(os.Getenv("ASTRA_FANOUT_PER_REPLY"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := "ws" + strings.TrimPrefix(base, "http") + "/api/responder/socket"
	var (
		mu     sync.Mutex
		res    = fanResult{FirstDelta: map[string][]int64{}, Append: map[string][]int64{}}
		counts = map[string]int{}
		out    = bufio.NewWriter(os.Stdout)
	)
	conns := make([]*websocket.Conn, len(cookies))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, ck := range cookies {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {ck}}})
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			c.SetReadLimit(1 << 24)
			conns[i] = c
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, c := range conns {
		go func() {
			seen := map[string]bool{}
			for {
				_, raw, err := c.Read(ctx)
				at := time.Now()
				if err != nil {
					if s := websocket.CloseStatus(err); s == websocket.StatusProtocolError {
						mu.Lock()
						res.ProtocolErrors++
						mu.Unlock()
					}
					return
				}
				var f struct {
					Type string `json:"type"`
					Data struct {
						OutboxID  string         `json:"outboxId"`
						Role      string         `json:"role"`
						CreatedAt string         `json:"createdAt"`
						Metadata  map[string]any `json:"metadata"`
					} `json:"data"`
				}
				if json.Unmarshal(raw, &f) != nil {
					continue
				}
				switch f.Type {
				case "messages:delta":
					mu.Lock()
					res.Frames++
					if !seen[f.Data.OutboxID] {
						seen[f.Data.OutboxID] = true
						res.FirstDelta[f.Data.OutboxID] = append(res.FirstDelta[f.Data.OutboxID], at.UnixNano())
					}
					mu.Unlock()
				case "messages:append":
					id, _ := f.Data.Metadata["outboxId"].(string)
					if f.Data.Role != "assistant" || id == "" {
						continue
					}
					created, _ := time.Parse(time.RFC3339Nano, f.Data.CreatedAt)
					mu.Lock()
					res.Frames++
					res.Append[id] = append(res.Append[id], at.UnixNano())
					res.EventLatency = append(res.EventLatency, int64(at.Sub(created)))
					if counts[id]++; counts[id] == perReply {
						fmt.Fprintln(out, "done "+id)
						out.Flush()
					}
					mu.Unlock()
				}
			}
		}()
	}
	fmt.Fprintln(out, "ready")
	out.Flush()
	_, _ = bufio.NewReader(os.Stdin).ReadString(0) // until the parent closes stdin
	time.Sleep(100 * time.Millisecond)             // frames in flight
	mu.Lock()
	b, _ := json.Marshal(res)
	fmt.Fprintln(out, "result "+string(b))
	out.Flush()
	mu.Unlock()
	for _, c := range conns {
		c.CloseNow()
	}
}
