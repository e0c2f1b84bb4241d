package ferrettest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Serialized returns the URI of a wire-protocol proxy in front of the
// FerretDB at uri that lets one command through at a time, across all of its
// client connections.
//
// FerretDB runs findOneAndUpdate, conditional updates and $inc as a read
// followed by a write, so two connections can both win one claim; Start's
// maxPoolSize=1 serialises one client only. Tests that run several
// processes against one database (as instances of astra serve do against a
// MongoDB) connect through this proxy instead, which gives every command
// the per-document atomicity a real MongoDB has.
func Serialized(t testing.TB, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("serialized proxy: parse %q: %v", uri, err)
	}
	upstream := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("serialized proxy: %v", err)
	}
	p := &proxy{upstream: upstream, conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.serve(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		p.closeAll()
		p.wg.Wait()
	})
	return "mongodb://" + ln.Addr().String() + "/"
}

type proxy struct {
	upstream string
	turn     sync.Mutex // one command in FerretDB at a time

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func (p *proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c, up)
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, up)
			p.mu.Unlock()
			c.Close()
			up.Close()
		}()
	}
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Wire protocol: every message starts with a 16-byte header (length,
// requestID, responseTo, opCode, little-endian); OP_MSG's flag bits follow.
const (
	opMsg      = 2013
	opQuery    = 2004
	moreToCome = 1 << 1
)

// relay forwards one request at a time and, unless the request says no
// answer follows, the server's answer (and any answers it streams after it
// with moreToCome), holding the turn for the whole exchange.
func (p *proxy) relay(client, up net.Conn) {
	for {
		req, err := readMessage(client)
		if err != nil {
			return
		}
		if isLegacyQuery(req) || readOnly[commandName(req)] {
			// Reads need no turn: FerretDB reads committed rows, and
			// letting polls and handshakes through keeps a busy database
			// from starving a starting client's server selection.
			err = p.exchange(req, client, up)
		} else {
			p.turn.Lock()
			err = p.exchange(req, client, up)
			p.turn.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) exchange(req []byte, client, up net.Conn) error {
	if _, err := up.Write(req); err != nil {
		return err
	}
	if hasMoreToCome(req) {
		return nil
	}
	for {
		resp, err := readMessage(up)
		if err != nil {
			return err
		}
		if _, err := client.Write(resp); err != nil {
			return err
		}
		if !hasMoreToCome(resp) {
			return nil
		}
	}
}

// isLegacyQuery reports an OP_QUERY message: drivers send only their first
// handshake (isMaster) that way.
func isLegacyQuery(msg []byte) bool {
	return len(msg) >= 16 && binary.LittleEndian.Uint32(msg[12:]) == opQuery
}

// readOnly are the commands that change nothing.
var readOnly = map[string]bool{
	"hello": true, "isMaster": true, "ismaster": true, "ping": true, "buildInfo": true, "buildinfo": true,
	"find": true, "getMore": true, "count": true, "listIndexes": true, "listCollections": true,
	"killCursors": true, "endSessions": true,
}

// commandName is the first key of an OP_MSG's body document (its command),
// or "" for anything else.
func commandName(msg []byte) string {
	// header (16), flag bits (4), section kind 0 (1), document length (4),
	// element type (1), then the element's name up to a NUL.
	const start = 26
	if len(msg) <= start || binary.LittleEndian.Uint32(msg[12:]) != opMsg || msg[20] != 0 {
		return ""
	}
	for i := start; i < len(msg); i++ {
		if msg[i] == 0 {
			return string(msg[start:i])
		}
	}
	return ""
}

func hasMoreToCome(msg []byte) bool {
	return len(msg) >= 20 && binary.LittleEndian.Uint32(msg[12:]) == opMsg &&
		binary.LittleEndian.Uint32(msg[16:])&moreToCome != 0
}

// maxMessage is MongoDB's maxMessageSizeBytes.
const maxMessage = 48_000_000

func readMessage(r io.Reader) ([]byte, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.LittleEndian.Uint32(hdr[:4])))
	if n < 16 || n > maxMessage {
		return nil, fmt.Errorf("bad message length %d", n)
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(r, msg[16:]); err != nil {
		return nil, err
	}
	return msg, nil
}
