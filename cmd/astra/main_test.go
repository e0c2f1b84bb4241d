package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
)

// instance is the real astra binary (its run function) serving on a free
// loopback port with its own data dir.
type instance struct {
	t      *testing.T
	url    string
	env    map[string]string
	client *http.Client
	stop   func()
	done   chan error
}

// startAstra runs `astra serve` with env on 127.0.0.1:0 and waits for /readyz.
func startAstra(t *testing.T, env map[string]string) *instance {
	t.Helper()
	vars := map[string]string{
		"ASTRA_ADDR":       "127.0.0.1:0",
		"ASTRA_DATA_DIR":   t.TempDir(),
		"ASTRA_TASKS_DIR":  "../../tasks",
		"ASTRA_ENGINE_KEY": "engine-key-for-tests",
		"ASTRA_LOG_LEVEL":  "warn",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	inst := &instance{t: t, env: vars, done: make(chan error, 1)}
	go func() {
		inst.done <- run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, pw, &testLog{t: t})
		pw.Close()
	}()
	urls := listenURL(pr)
	select {
	case inst.url = <-urls:
	case err := <-inst.done:
		cancel()
		t.Fatalf("astra serve exited at start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("astra serve did not start listening")
	}
	var once sync.Once
	inst.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-inst.done:
				if err != nil {
					t.Errorf("astra serve returned %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("astra serve did not shut down")
			}
		})
	}
	t.Cleanup(inst.stop)
	jar, _ := cookiejar.New(nil)
	inst.client = &http.Client{Jar: jar, Timeout: 30 * time.Second}
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := inst.client.Get(inst.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("astra never became ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return inst
}

// listenURL reads an astra serve's standard output and sends the URL it
// says it listens on.
func listenURL(r io.Reader) <-chan string {
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "astra listening on "); ok {
				urls <- u
			}
		}
	}()
	return urls
}

// testLog sends the server's log lines to the test log.
type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (in *instance) do(method, path string, body any, out any) int {
	in.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, in.url+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", in.url)
	resp, err := in.client.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			in.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// modelServer is an OpenAI-compatible chat endpoint with fixed replies.
func modelServer(t *testing.T, reply, summary string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Stream   bool `json:"stream"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		text := reply
		for _, m := range body.Messages { // the agent's persona comes first
			if strings.Contains(m.Content, "Summarise this chat turn") {
				text = summary
			}
		}
		writeCompletion(w, body.Stream, text)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// writeCompletion answers an OpenAI-compatible chat completion with text:
// streamed word by word as server-sent events, or whole.
func writeCompletion(w http.ResponseWriter, stream bool, text string) {
	if stream {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, word := range strings.SplitAfter(text, " ") {
			fmt.Fprintf(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word)
		}
		fmt.Fprint(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(text)
	fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}]}`, b)
}

type wsFrame struct {
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
	Error string          `json:"error"`
}

type wsEvent struct {
	ID       string         `json:"id"`
	Role     string         `json:"role"`
	Content  string         `json:"content"`
	Metadata map[string]any `json:"metadata"`
}

// TestEndToEnd drives the whole product as a person would, with no mocks:
// dev login, open the socket, send a message, receive the assistant's reply
// live, and find the turn's summary in the user's memory in the engine.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) map[string]string{
		"sqlite": func(t *testing.T) map[string]string { return nil },
		"mongodb-ferretdb": func(t *testing.T) map[string]string {
			if testing.Short() {
				t.Skip("FerretDB end-to-end skipped in -short mode")
			}
			return map[string]string{
				"MONGODB_URI":        ferrettest.Start(t),
				"MONGODB_DB":         "astra_e2e",
				"BETTER_AUTH_SECRET": "e2e-secret-0123456789",
			}
		},
	}
	for name, backend := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const reply, summary = "Namaste Ann! Your chart says rest today.", "Ann asked about her chart; told her to rest."
			env := backend(t)
			if env == nil {
				env = map[string]string{}
			}
			model := modelServer(t, reply, summary)
			env["ASTRA_LLM_BASE_URL"] = model.URL + "/v1"
			env["ASTRA_LLM_MODEL"] = "test-model"
			in := startAstra(t, env)

			var login struct {
				User responder.User `json:"user"`
			}
			if code := in.do("POST", "/api/auth/dev-login", map[string]string{"email": "ann@example.com", "name": "Ann"}, &login); code != 200 {
				t.Fatalf("dev login: %d", code)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			u, _ := url.Parse(in.url)
			wsURL := "ws://" + u.Host + "/api/responder/socket"
			conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
				HTTPClient: in.client,
				HTTPHeader: http.Header{"Origin": {in.url}},
			})
			if err != nil {
				t.Fatalf("socket: %v", err)
			}
			defer conn.CloseNow()
			var init wsFrame
			if err := wsjson.Read(ctx, conn, &init); err != nil || init.Type != "messages:init" {
				t.Fatalf("first frame %+v, %v", init, err)
			}

			var posted struct {
				OK     bool   `json:"ok"`
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			if code := in.do("POST", "/api/responder/messages", map[string]any{"content": "  What does my chart say?  "}, &posted); code != http.StatusAccepted || !posted.OK || posted.Status != "pending" {
				t.Fatalf("POST: %d %+v", code, posted)
			}

			var got wsEvent
			deltas := 0
			for got.ID == "" {
				var f wsFrame
				if err := wsjson.Read(ctx, conn, &f); err != nil {
					t.Fatalf("waiting for the reply: %v", err)
				}
				switch f.Type {
				case "messages:delta":
					deltas++
				case "messages:append":
					var ev wsEvent
					_ = json.Unmarshal(f.Data, &ev)
					if ev.Role == "assistant" {
						got = ev
					}
				case "error":
					t.Fatalf("error frame: %s", f.Error)
				}
			}
			if got.Content != reply {
				t.Fatalf("assistant reply %q, want %q", got.Content, reply)
			}
			if got.Metadata["outboxId"] != posted.ID {
				t.Errorf("reply metadata %v does not name outbox row %s", got.Metadata, posted.ID)
			}
			t.Logf("%d token deltas before the reply", deltas)

			var list struct {
				Messages []struct {
					ID, Content, Status, ExecutionID string
				} `json:"messages"`
			}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				in.do("GET", "/api/responder/messages", nil, &list)
				if len(list.Messages) == 1 && list.Messages[0].Status == "delivered" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("message never delivered: %+v", list.Messages)
				}
			}
			if m := list.Messages[0]; m.ID != posted.ID || m.Content != "What does my chart say?" || m.ExecutionID == "" {
				t.Fatalf("listed message %+v", m)
			}

			// The task wrote the turn's summary into the user's memory.
			jc, err := julep.New(in.url+"/julep", in.env["ASTRA_ENGINE_KEY"])
			if err != nil {
				t.Fatal(err)
			}
			docs, err := jc.ListUserDocs(ctx, responder.JulepUserID(login.User.ID), map[string]string{"type": "notes", "updated_by": "responder-task"})
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != 1 || !strings.Contains(julep.ContentText(docs[0].Content), summary) {
				t.Fatalf("summary docs: %+v", docs)
			}
			if docs[0].Metadata["scope"] != "frontline" || docs[0].Metadata["timestamp_iso"] == "" {
				t.Errorf("summary doc metadata %v", docs[0].Metadata)
			}
		})
	}
}

func TestServeFailsClearly(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		env  map[string]string
		want string
	}{
		"bad addr":        {map[string]string{"ASTRA_ADDR": "nonsense"}, "ASTRA_ADDR"},
		"bad duration":    {map[string]string{"ASTRA_DISPATCH_LEASE": "soon"}, "ASTRA_DISPATCH_LEASE"},
		"bad bool":        {map[string]string{"ASTRA_DEV_LOGIN": "maybe"}, "ASTRA_DEV_LOGIN"},
		"unreachable db":  {map[string]string{"MONGODB_URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", "BETTER_AUTH_SECRET": "x"}, "connect to MongoDB"},
		"mongo no secret": {map[string]string{"MONGODB_URI": "mongodb://127.0.0.1:1/"}, "BETTER_AUTH_SECRET is required"},
		"corrupt db":      {map[string]string{"ASTRA_DATA_DIR": corruptDataDir(t)}, "open sqlite database"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"ASTRA_ADDR": "127.0.0.1:0", "ASTRA_DATA_DIR": t.TempDir()}
			for k, v := range c.env {
				vars[k] = v
			}
			var out, errb strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, &out, &errb)
			if err == nil {
				t.Fatal("serve started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %q", err, c.want)
			}
			if n := strings.Count(strings.TrimSpace(err.Error()), "\n"); n > 0 {
				t.Errorf("error is %d lines: %q", n+1, err)
			}
			if code := exitCode(err); code == 0 {
				t.Errorf("exit code 0")
			}
		})
	}
}

func corruptDataDir(t *testing.T) string {
	dir := t.TempDir()
	if err := writeFile(dir+"/astra.db", "this is not a database, just text that is long enough to have a header........"); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(path, s string) error {
	return os.WriteFile(path, []byte(s), 0o600)
}
