package julep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// sse answers an event stream: each chunk is written and flushed in turn;
// then the handler either returns (closing the stream) or, with hold, keeps
// the connection open until the client goes away.
func sse(hold bool, chunks ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "want Accept: text/event-stream", 400)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(200)
		f := w.(http.Flusher)
		f.Flush()
		for _, c := range chunks {
			io.WriteString(w, c)
			f.Flush()
		}
		if hold {
			<-r.Context().Done()
		}
	}
}

func statusData(status string, count int) string {
	return fmt.Sprintf(`{"execution_id":"%s","status":"%s","updated_at":"2025-03-01T10:00:0%dZ","error":null,"transition_count":%d,"metadata":{"outbox_id":"o1"}}`,
		execID, status, count, count)
}

func TestStreamStatusReadsEventsUntilTerminal(t *testing.T) {
	t.Parallel()
	s := newScripted(t, exchange{method: "GET", path: "/executions/" + execID + "/status.stream",
		// The server would keep the connection open; the client must stop at "succeeded".
		serve: sse(true,
			": ping\n\n",
			"data: "+statusData("starting", 1)+"\n\n",
			"event: message\nid: 2\ndata: "+statusData("running", 2)+"\n\n: ping\n\n",
			// One event split across two writes, with CRLF line ends.
			"data: "+statusData("awaiting_input", 3)[:20],
			statusData("awaiting_input", 3)[20:]+"\r\n\r\n",
			"data: "+statusData("succeeded", 4)+"\n\n",
			"data: "+statusData("running", 5)+"\n\n",
		)})
	c, _ := s.client()
	var got []string
	err := c.StreamStatus(context.Background(), execID, func(ev StatusEvent) error {
		got = append(got, fmt.Sprintf("%s/%d/%v", ev.Status, ev.TransitionCount, ev.Metadata["outbox_id"]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "starting/1/o1 running/2/o1 awaiting_input/3/o1 succeeded/4/o1"
	if strings.Join(got, " ") != want {
		t.Errorf("events %v, want %s", got, want)
	}
}

func TestStreamStatusEndedEarlyIsInterrupted(t *testing.T) {
	t.Parallel()
	s := newScripted(t, exchange{method: "GET", path: "/executions/" + execID + "/status.stream",
		serve: sse(false, "data: "+statusData("running", 1)+"\n\n", "data: {\"partial")})
	c, _ := s.client()
	n := 0
	err := c.StreamStatus(context.Background(), execID, func(StatusEvent) error { n++; return nil })
	if !errors.Is(err, ErrStreamInterrupted) || !IsTransient(err) || n != 1 {
		t.Fatalf("err = %v after %d events", err, n)
	}
}

func TestStreamStatusSilentServerIsInterrupted(t *testing.T) {
	t.Parallel()
	s := newScripted(t, exchange{method: "GET", path: "/executions/" + execID + "/status.stream", serve: sse(true)})
	c, _ := s.client(WithStreamIdleTimeout(30 * time.Millisecond))
	err := c.StreamStatus(context.Background(), execID, func(StatusEvent) error { return nil })
	if !errors.Is(err, ErrStreamInterrupted) {
		t.Fatalf("err = %v", err)
	}
}

func TestStreamStatusReturnsTheCallbackError(t *testing.T) {
	t.Parallel()
	stop := errors.New("lease lost")
	s := newScripted(t, exchange{method: "GET", path: "/executions/" + execID + "/status.stream",
		serve: sse(true, "data: "+statusData("running", 1)+"\n\n")})
	c, _ := s.client()
	if err := c.StreamStatus(context.Background(), execID, func(StatusEvent) error { return stop }); err != stop {
		t.Fatalf("err = %v, want the callback's error unchanged", err)
	}
}

func TestStreamStatusRejectsBadEvents(t *testing.T) {
	t.Parallel()
	s := newScripted(t, exchange{method: "GET", path: "/executions/" + execID + "/status.stream",
		serve: sse(true, "data: {'status': 'running'}\n\n")})
	c, _ := s.client()
	err := c.StreamStatus(context.Background(), execID, func(StatusEvent) error { return nil })
	if err == nil || IsTransient(err) {
		t.Fatalf("err = %v, want a permanent decode error", err)
	}
}

func TestStreamsNotSupported(t *testing.T) {
	t.Parallel()
	notFound := `{"error":{"message":"Not Found","code":"http_404","type":"http_error"}}`
	s := newScripted(t,
		exchange{method: "GET", path: "/executions/" + execID + "/deltas.stream", status: 404, reply: notFound},
		exchange{method: "GET", path: "/executions/" + execID + "/status.stream", status: 404, reply: notFound},
		// 200 but not an event stream: also not supported.
		exchange{method: "GET", path: "/executions/" + execID + "/deltas.stream", status: 200, reply: `{}`},
	)
	c, waits := s.client()
	ctx := context.Background()
	err := c.StreamDeltas(ctx, execID, func(Delta) error { return nil })
	if !errors.Is(err, ErrNotSupported) || StatusCode(err) != 404 || IsTransient(err) {
		t.Errorf("deltas: err = %v", err)
	}
	err = c.StreamStatus(ctx, execID, func(StatusEvent) error { return nil })
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("status: err = %v", err)
	}
	err = c.StreamDeltas(ctx, execID, func(Delta) error { return nil })
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("json answer: err = %v", err)
	}
	if len(*waits) != 0 {
		t.Errorf("retried a 404: %v", *waits)
	}
}

func TestStreamDeltas(t *testing.T) {
	t.Parallel()
	s := newScripted(t,
		exchange{method: "GET", path: "/executions/" + execID + "/deltas.stream", status: 503, reply: `{"error":{"message":"busy","code":"http_503","type":"http_error"}}`},
		exchange{method: "GET", path: "/executions/" + execID + "/deltas.stream", serve: sse(false,
			": ping\n\n",
			`data: {"index":0,"delta":"Hel"}`+"\n\n",
			`data: {"index":1,"delta":"lo, "}`+"\n\n",
			`data: {"index":2,"delta":"Ada\n"}`+"\n\n",
		)})
	c, waits := s.client()
	var b strings.Builder
	next := 0
	err := c.StreamDeltas(context.Background(), execID, func(d Delta) error {
		if d.Index != next {
			t.Errorf("index %d, want %d", d.Index, next)
		}
		next++
		b.WriteString(d.Delta)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != "Hello, Ada\n" || len(*waits) != 1 {
		t.Errorf("text %q after %d retries", b.String(), len(*waits))
	}
}

func TestReadEventsMultiLineData(t *testing.T) {
	t.Parallel()
	in := "retry: 1000\ndata: first\ndata:second\n\nevent: status\ndata: x\n\ndata: dropped, no blank line"
	var got []sseEvent
	err := readEvents(strings.NewReader(in), func(ev sseEvent) error { got = append(got, ev); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].data) != "first\nsecond" || got[1].event != "status" || string(got[1].data) != "x" {
		t.Errorf("events %+v", got)
	}
}

// AwaitTerminal asks for the terminal event only; a server that ignores
// the request (a real Julep) sends every event, and the last one counts.
// Without an output in it, ExecutionFromStatus says to GET the execution.
func TestAwaitTerminalFromAServerWithoutTheExtension(t *testing.T) {
	t.Parallel()
	s := newScripted(t, exchange{method: "GET", path: "/executions/" + execID + "/status.stream",
		query: map[string]string{"terminal_only": "true"},
		serve: sse(true,
			"data: "+statusData("running", 1)+"\n\n",
			"data: "+statusData("succeeded", 2)+"\n\n")})
	c, _ := s.client()
	ev, err := c.AwaitTerminal(context.Background(), execID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != StatusSucceeded || ev.TransitionCount != 2 {
		t.Fatalf("last event %+v", ev)
	}
	if x, ok := ExecutionFromStatus(ev); ok {
		t.Fatalf("an execution from an event without output: %+v", x)
	}
}

func TestExecutionFromStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		data   string
		ok     bool
		output string
	}{
		{`{"execution_id":"e","status":"succeeded","output":{"reply":"hi"},"created_at":"2025-03-01T10:00:00Z","updated_at":"2025-03-01T10:00:01Z"}`, true, `{"reply":"hi"}`},
		{`{"execution_id":"e","status":"failed","error":"boom","output":null}`, true, `null`},
		{`{"execution_id":"e","status":"succeeded"}`, false, ""},
		{`{"execution_id":"e","status":"running","output":{"reply":"hi"}}`, false, ""},
	} {
		var ev StatusEvent
		if err := json.Unmarshal([]byte(tc.data), &ev); err != nil {
			t.Fatal(err)
		}
		x, ok := ExecutionFromStatus(ev)
		if ok != tc.ok {
			t.Fatalf("%s: ok %v, want %v", tc.data, ok, tc.ok)
		}
		if !ok {
			continue
		}
		out, _ := json.Marshal(x.Output)
		if string(out) != tc.output || x.Id != "e" || x.Status != ev.Status || x.Error != ev.Error {
			t.Fatalf("%s: execution %+v (output %s)", tc.data, x, out)
		}
		if tc.ok && tc.output != "null" && x.UpdatedAt.Sub(x.CreatedAt) != time.Second {
			t.Fatalf("%s: times %v %v", tc.data, x.CreatedAt, x.UpdatedAt)
		}
	}
}

// A stream stopped at its terminal event is read to its end, so the next
// stream reuses the connection instead of dialling a new one.
func TestStoppedStreamConnectionIsReused(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	states := map[http.ConnState]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(sse(false, "data: "+statusData("succeeded", 4)+"\n\n")))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		states[s]++
		mu.Unlock()
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "key")
	if err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{}, 1)
	c.drained = func() { drained <- struct{}{} }
	count := func(s http.ConnState) int {
		mu.Lock()
		defer mu.Unlock()
		return states[s]
	}
	for i := 1; i <= 3; i++ {
		ev, err := c.AwaitTerminal(t.Context(), execID)
		if err != nil || ev.Status != StatusSucceeded {
			t.Fatalf("await %d: %+v %v", i, ev, err)
		}
		<-drained // the drain runs in the background
	}
	if n := count(http.StateNew); n != 1 {
		t.Fatalf("%d connections for 3 streams, want 1 (states %v)", n, states)
	}
}
