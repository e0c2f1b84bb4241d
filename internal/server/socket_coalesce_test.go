package server

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/stream"
)

// TestSocketMergesABusySocketsDeltas: deltas that queue while a socket
// waits out its flush interval go out merged, the text whole and in order,
// before the reply's append; a client reading index and count (or just
// concatenating the deltas) gets the exact reply.
func TestSocketMergesABusySocketsDeltas(t *testing.T) {
	t.Parallel()
	// A long interval so the whole burst lands within it.
	e := newEnv(t, func(c *envConfig) { c.deps.SocketFlush = time.Second })
	ctx := testCtx(t)
	u := e.newUser("Ada")
	c := e.mustDial(ctx, u.withCookie(), "")
	defer c.CloseNow()
	if f := readFrame(ctx, t, c); f.Type != "messages:init" {
		t.Fatalf("first frame %s", f.raw)
	}
	first := e.event(u.ID, "before the reply") // written at once: starts the interval
	if f := readFrame(ctx, t, c); f.event(t).ID != first.ID {
		t.Fatalf("got %s, want the first event", f.raw)
	}
	var want strings.Builder
	for i := range 50 {
		text := "w" + string(rune('a'+i%26)) + " "
		want.WriteString(text)
		e.hub.PublishDelta(u.ID, stream.Delta{OutboxID: "ob1", ExecutionID: "x1", Text: text, Index: i})
	}
	answer := e.event(u.ID, strings.TrimSpace(want.String()))

	var got strings.Builder
	frames, fragments, next := 0, 0, 0
	for {
		f := readFrame(ctx, t, c)
		if f.Type == "messages:append" {
			if f.event(t).ID != answer.ID {
				t.Fatalf("append %s, want the answer", f.raw)
			}
			break
		}
		if f.Type != "messages:delta" {
			t.Fatalf("frame %s", f.raw)
		}
		var d struct {
			OutboxID string `json:"outboxId"`
			Delta    string `json:"delta"`
			Index    int    `json:"index"`
			Count    int    `json:"count"`
		}
		if err := json.Unmarshal(f.Data, &d); err != nil || d.OutboxID != "ob1" {
			t.Fatalf("delta %s: %v", f.raw, err)
		}
		if d.Index != next || d.Count < 1 {
			t.Fatalf("delta index %d count %d, want index %d", d.Index, d.Count, next)
		}
		next += d.Count
		fragments += d.Count
		frames++
		got.WriteString(d.Delta)
	}
	if got.String() != want.String() || fragments != 50 {
		t.Fatalf("deltas %q (%d fragments), want %q", got.String(), fragments, want.String())
	}
	if frames >= 50 {
		t.Fatalf("50 queued deltas went out as %d frames: not merged", frames)
	}
}

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes int
	bytes  []byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	c.bytes = append(c.bytes, p...)
	return len(p), nil
}
func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

// TestCorkWriterSendsABatchInOneWrite: what is written while corked
// reaches the connection in one write, in order; uncorked writes pass
// straight through.
func TestCorkWriterSendsABatchInOneWrite(t *testing.T) {
	t.Parallel()
	conn := &countingConn{}
	w := &corkWriter{conn: conn}
	w.Write([]byte("a"))
	if conn.writes != 1 {
		t.Fatalf("uncorked write: %d writes", conn.writes)
	}
	w.cork(time.Second)
	for _, s := range []string{"b", "c", "d"} {
		w.Write([]byte(s))
	}
	if conn.writes != 1 {
		t.Fatalf("corked writes reached the connection: %d writes", conn.writes)
	}
	if err := w.uncork(); err != nil {
		t.Fatal(err)
	}
	if conn.writes != 2 || string(conn.bytes) != "abcd" {
		t.Fatalf("after uncork: %d writes, %q", conn.writes, conn.bytes)
	}
	if w.buf != nil {
		t.Fatal("an uncorked writer kept its buffer")
	}
	if err := w.uncork(); err != nil || conn.writes != 2 {
		t.Fatalf("an empty uncork wrote: %d writes, %v", conn.writes, err)
	}
	// A batch past corkMax goes out as it grows, in order, never held whole.
	conn.bytes, conn.writes = nil, 0
	w.cork(time.Second)
	chunk := strings.Repeat("k", corkMax/3)
	var want strings.Builder
	for range 7 {
		w.Write([]byte(chunk))
		want.WriteString(chunk)
		if w.buf != nil && len(*w.buf) > corkMax {
			t.Fatalf("the corked writer holds %d bytes, more than %d", len(*w.buf), corkMax)
		}
	}
	big := strings.Repeat("B", 2*corkMax)
	w.Write([]byte(big))
	want.WriteString(big)
	w.Write([]byte("end"))
	want.WriteString("end")
	if err := w.uncork(); err != nil {
		t.Fatal(err)
	}
	if string(conn.bytes) != want.String() || conn.writes >= 9 {
		t.Fatalf("a large batch: %d writes, order kept: %v", conn.writes, string(conn.bytes) == want.String())
	}
}
