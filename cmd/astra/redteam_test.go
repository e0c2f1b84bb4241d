package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/astra-app/astra/internal/auth"
	"github.com/astra-app/astra/internal/julep"
)

// Bounds every red-team row is held to. Generous on purpose: the suite runs
// on loaded CI machines and must catch blow-ups, not measure performance.
const (
	redTeamMaxRSSGrowth = 512 << 20
	redTeamMaxHealthz   = 2 * time.Second
	redTeamSecret       = "red-team-secret-0123456789"
	redTeamEvilOrigin   = "https://evil.example"
)

// redTeam is the one `astra serve` child every attack is aimed at, with the
// people and engine objects the rows share.
type redTeam struct {
	p        *proc
	addr     string // host:port
	port     string
	engine   *julep.Client
	key      string
	agentID  string
	victim   *person // posted before the attacks; must get its reply
	attacker *person // the attacker's own (valid) session
}

// outcome is what an attack observed, for its check.
type outcome struct {
	status int
	body   string
	header http.Header
	ev     julep.StatusEvent
	took   time.Duration
	n      map[string]int // counts an attack wants to report
	notes  []string       // failures found while attacking
}

type redTeamRow struct {
	name   string
	attack func(t *testing.T, rt *redTeam) outcome
	check  func(t *testing.T, rt *redTeam, o outcome)
}

// TestRedTeam runs the attacks that once hurt a server against one real
// `astra serve` process, one after another. Each must be refused or bounded
// with a clear status or error, the process's RSS must not balloon,
// /healthz must keep answering promptly during it, and a bystander's
// message must still be answered.
func TestRedTeam(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process red-team suite skipped in -short mode")
	}
	began := time.Now()
	env := scaleEnv(t, "")
	// The offline model: no outside endpoint, so every reply is local.
	delete(env, "ASTRA_LLM_BASE_URL")
	delete(env, "ASTRA_LLM_MODEL")
	env["ASTRA_DATA_DIR"] = t.TempDir()
	env["ASTRA_READ_TIMEOUT"] = "2s"
	env["ASTRA_LOG_LEVEL"] = "warn"
	env["BETTER_AUTH_SECRET"] = redTeamSecret
	p := startProc(t, "redteam", env)
	// Registered after startProc's, so it runs first: logs while alive.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the child:\n%s", tail(p.allLogs(), 200))
		}
	})

	rt := &redTeam{p: p, addr: strings.TrimPrefix(p.url, "http://"), key: env["ASTRA_ENGINE_KEY"]}
	_, rt.port, _ = net.SplitHostPort(rt.addr)
	var err error
	if rt.engine, err = julep.New(p.url+"/julep", rt.key); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	agent, err := rt.engine.CreateAgent(ctx, julep.AgentInput{Name: "Red team"})
	if err != nil {
		t.Fatal(err)
	}
	rt.agentID = agent.Id
	rt.victim = signInAt(t, p.url, "victim@example.com")
	rt.victim.send(t, []*proc{p}, "msg-victim-0")
	rt.attacker = signInAt(t, p.url, "attacker@example.com")

	pid := p.cmd.Process.Pid
	for _, row := range redTeamRows() {
		t.Run(row.name, func(t *testing.T) {
			select {
			case <-p.done:
				t.Fatal("the server is gone")
			default:
			}
			before := vmRSS(t, pid)
			stop := watchHealthz(p.url)
			start := time.Now()
			o := row.attack(t, rt)
			if o.took == 0 {
				o.took = time.Since(start)
			}
			worst, fails := stop()
			for _, n := range o.notes {
				t.Error(n)
			}
			row.check(t, rt, o)
			after := vmRSS(t, pid)
			t.Logf("attack took %v; /healthz worst %v over the attack; RSS %d -> %d MiB", o.took.Round(time.Millisecond), worst.Round(time.Millisecond), before>>20, after>>20)
			if after-before > redTeamMaxRSSGrowth {
				t.Errorf("RSS grew by %d MiB, over %d MiB", (after-before)>>20, redTeamMaxRSSGrowth>>20)
			}
			for _, f := range fails {
				t.Errorf("/healthz during the attack: %s", f)
			}
			// The bystander can still read their messages, none lost to an error.
			var list struct {
				Messages []struct{ ID, Status string } `json:"messages"`
			}
			if code := call(t, rt.victim.client, "GET", p.url+"/api/responder/messages", nil, &list); code != http.StatusOK {
				t.Errorf("victim's message list: %d", code)
			}
			for _, m := range list.Messages {
				if m.Status == "error" {
					t.Errorf("victim's message %s ended in error", m.ID)
				}
			}
		})
	}

	status := settled(t, []*proc{p}, []*person{rt.victim}, 60*time.Second)
	for tag, id := range rt.victim.sent {
		if status[id] != "delivered" {
			t.Errorf("victim's message %s ended %q, want delivered", tag, status[id])
		}
	}
	t.Logf("red-team suite wall time %v", time.Since(began).Round(time.Millisecond))
}

func redTeamRows() []redTeamRow {
	var rows []redTeamRow
	for _, b := range []struct{ name, src string }{
		{"replace blow-up", `$ ('a'*100000).replace('a', 'b'*100000)`},
		{"join blow-up", `$ ('x'*100000).join(['y'*1000]*1000)`},
		{"shared list 3k", `$ [[0]*3000]*3000`},
		{"shared list 10k", `$ [[0]*10000]*10000`},
	} {
		rows = append(rows, redTeamRow{
			name: "expression bomb/" + b.name,
			attack: func(t *testing.T, rt *redTeam) outcome {
				return rt.runTask(t, map[string]any{"name": "bomb",
					"main": []any{map[string]any{"evaluate": map[string]any{"x": b.src}}}})
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				t.Logf("execution %s: %s", o.ev.Status, o.ev.Error)
				if o.ev.Status != "failed" || !strings.Contains(o.ev.Error, "would build") || !strings.Contains(o.ev.Error, "limit") {
					t.Errorf("%s: status %s, error %q; want failed naming the size limit", b.src, o.ev.Status, o.ev.Error)
				}
				if o.took > 15*time.Second {
					t.Errorf("%s took %v to fail", b.src, o.took)
				}
			},
		})
	}
	rows = append(rows,
		redTeamRow{
			name: "recursive workflow",
			attack: func(t *testing.T, rt *redTeam) outcome {
				_, err := rt.engine.CreateTask(t.Context(), rt.agentID, map[string]any{"name": "loop",
					"main": []any{map[string]any{"workflow": "loop"}},
					"loop": []any{map[string]any{"workflow": "loop"}}})
				o := outcome{status: julep.StatusCode(err)}
				if err != nil {
					o.body = err.Error()
				}
				return o
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				t.Logf("%d %s", o.status, trunc(o.body))
				if o.status != http.StatusBadRequest || !strings.Contains(o.body, "workflow recursion: loop -> loop") {
					t.Errorf("recursive workflow: %d %s; want 400 naming the cycle", o.status, trunc(o.body))
				}
			},
		},
		redTeamRow{
			name: "foreach over 200,000 items",
			attack: func(t *testing.T, rt *redTeam) outcome {
				return rt.runTask(t, map[string]any{"name": "many",
					"main": []any{map[string]any{"foreach": map[string]any{"in": "$ list(range(200000))",
						"do": map[string]any{"evaluate": map[string]any{"x": "$ _"}}}}}})
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				t.Logf("execution %s: %s", o.ev.Status, o.ev.Error)
				if o.ev.Status != "failed" || !strings.Contains(o.ev.Error, "steps per execution") {
					t.Errorf("foreach over 200,000 items: status %s, error %q; want failed at the step budget", o.ev.Status, o.ev.Error)
				}
			},
		},
		redTeamRow{
			name: "YAML alias bomb as a task body",
			attack: func(t *testing.T, rt *redTeam) outcome {
				var b strings.Builder
				b.WriteString("name: bomb\nbig: &big " + strings.Repeat("x", 200_000) + "\nmain:\n")
				for range 1000 {
					b.WriteString("  - log: *big\n")
				}
				req, _ := http.NewRequest(http.MethodPost, rt.p.url+"/julep/agents/"+rt.agentID+"/tasks", strings.NewReader(b.String()))
				req.Header.Set("Content-Type", "application/yaml")
				req.Header.Set("X-Auth-Key", rt.key)
				return do(t, http.DefaultClient, req)
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				t.Logf("%d %s", o.status, trunc(o.body))
				// The engine answers bad bodies as Julep does: 422 validation_error.
				if o.status != http.StatusUnprocessableEntity || !strings.Contains(o.body, "YAML aliases expand the document to") {
					t.Errorf("alias bomb: %d %s; want 422 naming the alias expansion", o.status, trunc(o.body))
				}
			},
		},
		redTeamRow{
			name: "DNS rebinding at dev login",
			attack: func(t *testing.T, rt *redTeam) outcome {
				evil := "attacker.example:" + rt.port
				req, _ := http.NewRequest(http.MethodPost, rt.p.url+"/api/auth/dev-login", strings.NewReader(`{"email":"rebound@example.com"}`))
				req.Host = evil
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Origin", "http://"+evil)
				return do(t, http.DefaultClient, req)
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				if o.status != http.StatusMisdirectedRequest || !strings.Contains(o.body, "attacker.example") {
					t.Errorf("rebound dev login: %d %s; want 421 naming the host", o.status, o.body)
				}
				if c := o.header.Values("Set-Cookie"); len(c) > 0 {
					t.Errorf("rebound dev login set cookies: %v", c)
				}
			},
		},
		redTeamRow{
			name: "cross-site text/plain sign-out",
			attack: func(t *testing.T, rt *redTeam) outcome {
				req, _ := http.NewRequest(http.MethodPost, rt.p.url+"/api/auth/sign-out", strings.NewReader("x"))
				req.Header.Set("Content-Type", "text/plain")
				req.Header.Set("Origin", redTeamEvilOrigin)
				o := do(t, rt.attacker.client, req)
				o.n = map[string]int{"session": call(t, rt.attacker.client, "GET", rt.p.url+"/api/auth/session", nil, nil)}
				return o
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				if o.status != http.StatusForbidden {
					t.Errorf("cross-site sign-out: %d %s; want 403", o.status, o.body)
				}
				if o.n["session"] != http.StatusOK {
					t.Errorf("session after the cross-site sign-out: %d; want it still valid (200)", o.n["session"])
				}
			},
		},
		redTeamRow{
			name: "forged, unknown and signed-out session cookies",
			attack: func(t *testing.T, rt *redTeam) outcome {
				token, ok := auth.Verify(redTeamSecret, sessionCookie(t, rt.attacker, rt.p.url))
				if !ok {
					t.Fatal("the attacker's own cookie does not verify")
				}
				gone := signInAt(t, rt.p.url, "gone@example.com")
				goneCookie := sessionCookie(t, gone, rt.p.url)
				if code := call(t, gone.client, "POST", rt.p.url+"/api/auth/sign-out", map[string]string{}, nil); code != http.StatusOK {
					t.Fatalf("sign-out: %d", code)
				}
				o := outcome{n: map[string]int{}}
				for name, cookie := range map[string]string{
					"forged":     auth.Sign("another-secret", token),
					"unknown":    auth.Sign(redTeamSecret, "no-such-session-token-0123456789"),
					"signed-out": goneCookie,
				} {
					req, _ := http.NewRequest(http.MethodGet, rt.p.url+"/api/responder/messages", nil)
					req.Header.Set("Origin", rt.p.url)
					req.Header.Set("Cookie", "better-auth.session_token="+cookie)
					o.n[name+"/list"] = do(t, http.DefaultClient, req).status
					o.n[name+"/socket"] = rt.dialStatus(t, http.Header{"Cookie": {"better-auth.session_token=" + cookie}}, rt.p.url)
				}
				return o
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				for k, code := range o.n {
					if code != http.StatusUnauthorized {
						t.Errorf("%s: %d, want 401", k, code)
					}
				}
			},
		},
		redTeamRow{
			name: "foreign Origin on post and socket",
			attack: func(t *testing.T, rt *redTeam) outcome {
				req, _ := http.NewRequest(http.MethodPost, rt.p.url+"/api/responder/messages", strings.NewReader(`{"content":"csrf"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Origin", redTeamEvilOrigin)
				o := do(t, rt.attacker.client, req)
				o.n = map[string]int{"socket": rt.dialStatus(t, nil, redTeamEvilOrigin, rt.attacker)}
				return o
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				if o.status != http.StatusForbidden || !strings.Contains(o.body, "Forbidden origin") {
					t.Errorf("foreign-origin post: %d %s; want 403", o.status, o.body)
				}
				if o.n["socket"] != http.StatusForbidden {
					t.Errorf("foreign-origin socket: %d; want 403", o.n["socket"])
				}
			},
		},
		redTeamRow{
			name: "oversized body and operator metadata",
			attack: func(t *testing.T, rt *redTeam) outcome {
				post := func(body string) outcome {
					req, _ := http.NewRequest(http.MethodPost, rt.p.url+"/api/responder/messages", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Origin", rt.p.url)
					return do(t, rt.attacker.client, req)
				}
				o := post(`{"content":"` + strings.Repeat("x", 70<<10) + `"}`)
				m := post(`{"content":"x","metadata":{"$where":"1"}}`)
				o.n = map[string]int{"metadata": m.status}
				if !strings.Contains(m.body, "Metadata keys must not start with $") {
					o.notes = append(o.notes, "operator metadata answered "+m.body)
				}
				return o
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				if o.status != http.StatusRequestEntityTooLarge {
					t.Errorf("70 KiB body: %d %s; want 413", o.status, trunc(o.body))
				}
				if o.n["metadata"] != http.StatusBadRequest {
					t.Errorf("operator metadata: %d; want 400", o.n["metadata"])
				}
			},
		},
		redTeamRow{
			name: "api_call to this server's dev login",
			attack: func(t *testing.T, rt *redTeam) outcome {
				return rt.runTask(t, map[string]any{"name": "egress",
					"tools": []any{map[string]any{"name": "login", "type": "api_call",
						"api_call": map[string]any{"method": "POST", "url": rt.p.url + "/api/auth/dev-login"}}},
					"main": []any{map[string]any{"tool": "login", "arguments": map[string]any{}}},
				})
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				t.Logf("execution %s: %s", o.ev.Status, o.ev.Error)
				if o.ev.Status != "failed" || !strings.Contains(o.ev.Error, "refused by the egress policy") {
					t.Errorf("api_call to loopback: status %s, error %q; want refused by the egress policy", o.ev.Status, o.ev.Error)
				}
			},
		},
		redTeamRow{
			name: "slowloris body",
			attack: func(t *testing.T, rt *redTeam) outcome {
				c, err := net.Dial("tcp", rt.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				// A signed-in request, so the handler really waits for the body.
				_, _ = io.WriteString(c, "POST /api/responder/messages HTTP/1.1\r\nHost: "+rt.addr+"\r\nOrigin: "+rt.p.url+
					"\r\nCookie: better-auth.session_token="+sessionCookie(t, rt.attacker, rt.p.url)+
					"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
				start := time.Now()
				defer trickle(c)()
				eventuallyClosed(t, c)
				return outcome{took: time.Since(start)}
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				// ASTRA_READ_TIMEOUT is 2s; allow for a loaded machine.
				if o.took > 10*time.Second {
					t.Errorf("trickled body held the connection for %v", o.took)
				}
			},
		},
		redTeamRow{
			name: "300 idle connections",
			attack: func(t *testing.T, rt *redTeam) outcome {
				var conns []net.Conn
				defer func() {
					for _, c := range conns {
						c.Close()
					}
				}()
				for range 300 {
					c, err := net.DialTimeout("tcp", rt.addr, 5*time.Second)
					if err != nil {
						break
					}
					conns = append(conns, c)
				}
				// While they sit there, a fresh client must still be served.
				start := time.Now()
				res, err := (&http.Client{Timeout: 10 * time.Second}).Get(rt.p.url + "/healthz")
				o := outcome{n: map[string]int{"dialled": len(conns)}, took: time.Since(start)}
				if err != nil {
					o.notes = append(o.notes, fmt.Sprintf("healthz with %d idle connections: %v", len(conns), err))
				} else {
					res.Body.Close()
					o.status = res.StatusCode
				}
				time.Sleep(500 * time.Millisecond) // let the watcher poll alongside them
				return o
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				t.Logf("%d idle connections open; a fresh /healthz took %v", o.n["dialled"], o.took.Round(time.Millisecond))
				if o.status != http.StatusOK || o.took > redTeamMaxHealthz {
					t.Errorf("healthz with idle connections: %d after %v", o.status, o.took)
				}
			},
		},
		redTeamRow{
			name: "per-user socket cap",
			attack: func(t *testing.T, rt *redTeam) outcome {
				return rt.socketCap(t, 20)
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				t.Logf("sockets: %v", o.n)
				if o.n["open"] > 16 || o.n["open"]+o.n["capped"] != 20 {
					t.Errorf("%d of 20 sockets open, %d closed for the cap; want at most 16 open and the rest closed with the reason", o.n["open"], o.n["capped"])
				}
				if o.n["newest open"] != 1 {
					t.Error("the newest socket was closed, not the oldest")
				}
			},
		},
		redTeamRow{
			name: "message flood",
			attack: func(t *testing.T, rt *redTeam) outcome {
				flooder := signInAt(t, rt.p.url, "flooder@example.com")
				o := outcome{n: map[string]int{}}
				var mu sync.Mutex
				var wg sync.WaitGroup
				for i := range 50 {
					wg.Go(func() {
						req, _ := http.NewRequest(http.MethodPost, rt.p.url+"/api/responder/messages", strings.NewReader(fmt.Sprintf(`{"content":"flood %d"}`, i)))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Origin", rt.p.url)
						r := do(t, flooder.client, req)
						mu.Lock()
						defer mu.Unlock()
						o.n[strconv.Itoa(r.status)]++
						if r.status == http.StatusTooManyRequests {
							if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
								o.notes = append(o.notes, fmt.Sprintf("429 with Retry-After %q", r.header.Get("Retry-After")))
							}
							if !strings.Contains(r.body, "Too many messages") {
								o.notes = append(o.notes, "429 body "+r.body)
							}
						}
					})
				}
				wg.Wait()
				// The bystander is limited on their own bucket, not the flooder's.
				var out struct {
					ID string `json:"id"`
				}
				o.status = call(t, rt.victim.client, "POST", rt.p.url+"/api/responder/messages", map[string]string{"content": "msg-victim-1 after the flood"}, &out)
				if o.status == http.StatusAccepted {
					rt.victim.sent["msg-victim-1"] = out.ID
				}
				return o
			},
			check: func(t *testing.T, rt *redTeam, o outcome) {
				t.Logf("flood answers: %v", o.n)
				// Burst 20; a few more may refill while 50 requests land.
				if ok := o.n["202"]; ok < 1 || ok > 25 || o.n["429"] < 25 || ok+o.n["429"] != 50 {
					t.Errorf("flood of 50: %v; want about 20 accepted and the rest 429", o.n)
				}
				if o.status != http.StatusAccepted {
					t.Errorf("bystander's post after the flood: %d; want 202", o.status)
				}
			},
		},
	)
	return rows
}

// runTask creates a task from def, runs it with no input and waits for it.
func (rt *redTeam) runTask(t *testing.T, def map[string]any) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	task, err := rt.engine.CreateTask(ctx, rt.agentID, def)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := rt.engine.CreateExecution(ctx, task.Id, map[string]any{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rt.engine.AwaitTerminal(ctx, ex.Id)
	if err != nil {
		t.Fatal(err)
	}
	return outcome{ev: ev, took: time.Since(start)}
}

// dialStatus opens the socket and returns the handshake's status (101 when
// it was accepted), with the cookies of who (if any) and the given Origin.
func (rt *redTeam) dialStatus(t *testing.T, hdr http.Header, origin string, who ...*person) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Origin", origin)
	client := &http.Client{}
	if len(who) > 0 {
		client = who[0].client
	}
	c, res, err := websocket.Dial(ctx, "ws://"+rt.addr+"/api/responder/socket", &websocket.DialOptions{HTTPClient: client, HTTPHeader: hdr})
	if err == nil {
		c.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if res == nil {
		t.Fatalf("socket dial: %v", err)
	}
	return res.StatusCode
}

// socketCap opens n sockets for the attacker one after another, then asks
// each for a heartbeat: a live one answers, a capped one has been closed.
func (rt *redTeam) socketCap(t *testing.T, n int) outcome {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	o := outcome{n: map[string]int{}}
	for i := range n {
		c, _, err := websocket.Dial(ctx, "ws://"+rt.addr+"/api/responder/socket", &websocket.DialOptions{
			HTTPClient: rt.attacker.client, HTTPHeader: http.Header{"Origin": {rt.p.url}}})
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		var f wsFrame
		if err := wsjson.Read(ctx, c, &f); err != nil || f.Type != "messages:init" {
			t.Fatalf("socket %d first frame %+v, %v", i, f, err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		_ = wsjson.Write(rctx, c, map[string]string{"type": "heartbeat"})
		for {
			var f wsFrame
			err := wsjson.Read(rctx, c, &f)
			if err == nil && f.Type != "heartbeat" {
				continue
			}
			switch {
			case err == nil:
				o.n["open"]++
				if i == n-1 {
					o.n["newest open"] = 1
				}
			case websocket.CloseStatus(err) == websocket.StatusPolicyViolation && strings.Contains(err.Error(), "too many connections"):
				o.n["capped"]++
			default:
				o.notes = append(o.notes, fmt.Sprintf("socket %d: %v", i, err))
			}
			break
		}
		rcancel()
	}
	return o
}

// sessionCookie is the value of pp's session cookie at base.
func sessionCookie(t *testing.T, pp *person, base string) string {
	t.Helper()
	u, _ := url.Parse(base)
	for _, c := range pp.client.Jar.Cookies(u) {
		if c.Name == "better-auth.session_token" {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// do sends req and reads the whole answer.
func do(t *testing.T, c *http.Client, req *http.Request) outcome {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return outcome{status: res.StatusCode, body: string(b), header: res.Header}
}

// watchHealthz polls /healthz until the returned stop is called, which
// reports the slowest answer and every failed or too-slow one.
func watchHealthz(base string) (stop func() (time.Duration, []string)) {
	client := &http.Client{Timeout: 10 * time.Second}
	var (
		mu    sync.Mutex
		worst time.Duration
		fails []string
	)
	probe := func() {
		start := time.Now()
		res, err := client.Get(base + "/healthz")
		took := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		worst = max(worst, took)
		switch {
		case err != nil:
			fails = append(fails, err.Error())
		case res.StatusCode != http.StatusOK:
			fails = append(fails, "status "+res.Status)
		case took > redTeamMaxHealthz:
			fails = append(fails, fmt.Sprintf("took %v, over %v", took, redTeamMaxHealthz))
		}
		if res != nil {
			res.Body.Close()
		}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			probe()
			select {
			case <-quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() (time.Duration, []string) {
		close(quit)
		<-done
		probe() // the server answers after the attack too
		mu.Lock()
		defer mu.Unlock()
		return worst, fails
	}
}

// vmRSS is the resident set size of process pid, in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
