package httpserve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// start serves h on a loopback port with o and returns its address.
func start(t *testing.T, h http.Handler, o Options) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(h, o)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return s, ln.Addr().String()
}

// closedByServer waits until the server closes c (a read returns EOF or a
// reset), failing after a generous bound; it never asserts how soon.
func closedByServer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server kept the connection open", what)
	}
}

func echoBody(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	_, _ = w.Write(b)
}

// TestSlowBodyIsCutOff: a body trickled a byte at a time does not hold a
// connection past ReadTimeout.
func TestSlowBodyIsCutOff(t *testing.T) {
	t.Parallel()
	_, addr := start(t, http.HandlerFunc(echoBody), Options{ReadTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	closedByServer(t, c, "slow body")
}

// TestIdleKeepAliveIsClosed: a keep-alive connection that sends nothing
// more is closed after IdleTimeout.
func TestIdleKeepAliveIsClosed(t *testing.T) {
	t.Parallel()
	_, addr := start(t, http.HandlerFunc(echoBody), Options{IdleTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("first request: %v %v", res, err)
	}
	res.Body.Close()
	closedByServer(t, c, "idle keep-alive")
}

// TestStreamOutlivesReadTimeout: a route under NoDeadlines keeps its
// connection, and reads from it, past ReadTimeout.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	h := NoDeadlinesForStreams(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 6; i++ {
			_, _ = io.WriteString(w, "data: tick\n\n")
			_ = http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		_, _ = io.WriteString(w, "data: done\n\n")
	}))
	_, addr := start(t, h, Options{ReadTimeout: 150 * time.Millisecond})
	res, err := http.Get("http://" + addr + "/executions/x/status.stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(b), "data: done") {
		t.Errorf("the stream was cut: %q", b)
	}
}

// TestCapKeepsHealthAnswering: with the cap full of idle keep-alive
// connections, a new request still gets in (the oldest idle one makes
// room); with it full of busy ones, a newcomer is told 503 at once.
func TestCapKeepsHealthAnswering(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})
	const max = 8
	s, addr := start(t, h, Options{MaxConnections: max})
	defer close(release)

	var idle []net.Conn
	for i := 0; i < 3*max; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if res, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("request %d with the cap full of idle connections: %v %v", i, res, err)
		}
		idle = append(idle, c)
	}
	if n := s.limit.open(); n > max {
		t.Errorf("%d connections open, cap %d", n, max)
	}

	// Fill the cap with requests in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < max; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
		res, err := (&http.Transport{DisableKeepAlives: true}).RoundTrip(req)
		if err != nil {
			t.Fatalf("waiting for 503: %v", err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable {
			break // every slot busy: refused at once, not queued
		}
		time.Sleep(20 * time.Millisecond)
	}
}
