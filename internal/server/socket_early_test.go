package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestSocketKeepsAFrameSentWithTheHandshake: a client's first frame that
// arrives together with its upgrade request (so net/http has buffered it
// before the hijack) reaches the socket whole.
func TestSocketKeepsAFrameSentWithTheHandshake(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.newUser("Ada")
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second)) // a hang fails, not blocks
	req := "GET /api/responder/socket HTTP/1.1\r\nHost: " + strings.TrimPrefix(e.srv.URL, "http://") + "\r\n" +
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: " + u.withCookie() + "\r\n\r\n"
	// One write: the request and a masked text frame, as a fast client's
	// bytes can arrive in one segment.
	payload := []byte(`{"type":"heartbeat"}`)
	wire := []byte{0x81, 0x80 | byte(len(payload)), 1, 2, 3, 4}
	for i, b := range payload {
		wire = append(wire, b^[]byte{1, 2, 3, 4}[i%4])
	}
	if _, err := conn.Write(append([]byte(req), wire...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", res, err)
	}
	for range 3 { // init, then the heartbeat's answer
		op, data := readServerFrame(t, br)
		if op == 0x8 {
			code := 0
			if len(data) >= 2 {
				code = int(binary.BigEndian.Uint16(data))
			}
			t.Fatalf("the server closed the socket: %d %s", code, data[min(2, len(data)):])
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("frame %q: %v", data, err)
		}
		if f.Type == "heartbeat" {
			return
		}
	}
	t.Fatal("no answer to the heartbeat sent with the handshake")
}

// readServerFrame reads one unmasked, unfragmented frame.
func readServerFrame(t *testing.T, br *bufio.Reader) (opcode byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

// TestManySocketsWriteAtOnce: 1,000 clients each write a frame the moment
// their handshake completes; none is closed for a protocol error (6 of 40
// were, with "unexpected rsv bits", while bytes net/http had buffered
// before the hijack were dropped: TestSocketKeepsAFrameSentWithTheHandshake
// is the byte-level case).
func TestManySocketsWriteAtOnce(t *testing.T) {
	t.Parallel()
	const n = 1000
	raiseFileLimit(t, 2*n+200)
	e := newEnv(t, func(c *envConfig) { c.deps.SocketsPerUser = n })
	// Room for 1,000 handshakes under the race detector on two cores.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	u := e.newUser("Ada")
	// At most 100 handshakes in flight: every socket still writes the
	// moment its own handshake is done, while others are being opened.
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, _, err := e.dial(ctx, u.withCookie(), "")
			if err != nil {
				errs <- err
				return
			}
			defer c.CloseNow()
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"resume","after":""}`)); err != nil {
				errs <- err
				return
			}
			for {
				f, err := tryReadFrame(ctx, c)
				if err != nil {
					errs <- err
					return
				}
				if f.Type == "messages:resume" {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("socket: %v (status %v)", err, websocket.CloseStatus(err))
	}
}

// hijackable is a ResponseWriter whose connection net/http has already
// read ahead on: its reader holds bytes the client sent.
type hijackable struct {
	http.ResponseWriter
	conn net.Conn
	brw  *bufio.ReadWriter
}

func (h hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.conn, h.brw, nil }

// TestSmallBuffersKeepTheEarlyBytes is the buffer-level case of a frame
// sent with the handshake: after smallBuffers swaps the buffers and
// coder/websocket then resets the reader onto the connection keeping only
// what Buffered() reports (as its Accept does), every byte arrives, in
// order: the early ones, then what the connection brings next.
func TestSmallBuffersKeepTheEarlyBytes(t *testing.T) {
	t.Parallel()
	for _, early := range []string{"", "x", strings.Repeat("early bytes ", 20), strings.Repeat("z", 3*socketReadBuffer)} {
		server, client := net.Pipe()
		br := bufio.NewReaderSize(io.MultiReader(strings.NewReader(early), server), 4096)
		if early != "" {
			if _, err := br.Peek(len(early)); err != nil { // net/http read ahead
				t.Fatal(err)
			}
		}
		h := hijackable{conn: server, brw: bufio.NewReadWriter(br, bufio.NewWriter(server))}
		sb := &smallBuffers{ResponseWriter: h}
		_, brw, err := sb.Hijack()
		if err != nil {
			t.Fatal(err)
		}
		// What coder/websocket's Accept does with the reader it is given.
		b, _ := brw.Reader.Peek(brw.Reader.Buffered())
		brw.Reader.Reset(io.MultiReader(bytes.NewReader(b), server))
		go func() {
			client.Write([]byte("|later"))
			client.Close()
		}()
		got, _ := io.ReadAll(brw.Reader)
		if string(got) != early+"|later" {
			t.Errorf("%d early bytes: read %q, want %q", len(early), got, early+"|later")
		}
		server.Close()
	}
}
