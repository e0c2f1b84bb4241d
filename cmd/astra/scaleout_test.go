package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/config"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store"
	"github.com/astra-app/astra/internal/store/ferrettest"
)

// The multi-instance tests run `astra serve` as real processes (this test
// binary re-executed into TestHelperServe) on one database, so an instance
// can be SIGKILLed at any instruction as a crashed or OOM-killed one would
// be, and every claim races across processes, not goroutines.
const serveChildEnv = "ASTRA_TEST_SERVE_CHILD"

// TestHelperServe is a child process's main: `astra serve` with the
// environment the parent gave it, until SIGTERM (or SIGKILL).
func TestHelperServe(t *testing.T) {
	if os.Getenv(serveChildEnv) != "1" {
		t.Skip("child process of the multi-instance tests")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, []string{"serve"}, os.Getenv, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

// proc is one `astra serve` process.
type proc struct {
	t    testing.TB
	name string
	env  map[string]string
	cmd  *exec.Cmd
	logs *lockedBuffer
	url  string
	done chan struct{}
	// past keeps the logs of earlier runs of this instance (before a kill).
	past []string
	// modelURL, when set, is the slow model this instance calls under a
	// client name of its own per run (see clientURL).
	modelURL string
}

// run names the instance's current run as a model client.
func (p *proc) run() string { return fmt.Sprintf("%s.%d", p.name, len(p.past)) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startProc(t testing.TB, name string, env map[string]string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, env: env, modelURL: env["ASTRA_LLM_BASE_URL"]}
	p.start()
	t.Cleanup(func() { p.term() })
	return p
}

func (p *proc) start() {
	p.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServe$", "-test.count=1")
	cmd.Env = append(os.Environ(), serveChildEnv+"=1")
	for k, v := range p.env {
		if k == "ASTRA_LLM_BASE_URL" && p.modelURL != "" {
			continue
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if p.modelURL != "" {
		cmd.Env = append(cmd.Env, "ASTRA_LLM_BASE_URL="+clientURL(p.modelURL, p.run()))
	}
	p.logs = &lockedBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(pw, p.logs), p.logs
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	urls := listenURL(pr)
	select {
	case p.url = <-urls:
	case <-p.done:
		p.t.Fatalf("%s exited at start:\n%s", p.name, p.logs)
	case <-time.After(90 * time.Second):
		p.t.Fatalf("%s did not start listening:\n%s", p.name, p.logs)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s never became ready: %v\n%s", p.name, err, p.logs)
		}
	}
}

// kill SIGKILLs the process: nothing of it runs after this returns. It
// returns the killed run's model client name.
func (p *proc) kill() string {
	run := p.run()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.past = append(p.past, p.logs.String())
	return run
}

// term stops the process as an operator would, SIGKILL after a while.
func (p *proc) term() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s did not stop on SIGTERM", p.name)
		p.kill()
	}
}

func (p *proc) allLogs() string {
	return strings.Join(append(slices.Clone(p.past), p.logs.String()), "\n")
}

// slowModel is an OpenAI-compatible chat endpoint that answers after a
// delay and counts the requests made for each message (by the tag in it)
// and kind (reply or summary), and those whose client went away before
// the answer: the only ones that may be made again.
type slowModel struct {
	delay time.Duration

	mu      sync.Mutex
	reqs    map[string]int
	aborted map[string]int
	clients map[string][]string // per key, the client of each request in order
}

var tagRe = regexp.MustCompile(`msg-[a-z0-9]+-[0-9]+`)

func newSlowModel(t testing.TB, delay time.Duration) (*slowModel, string) {
	m := &slowModel{delay: delay, reqs: map[string]int{}, aborted: map[string]int{}, clients: map[string][]string{}}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv.URL + "/v1"
}

// clientURL is the model's base URL for one client (an instance's run):
// requests through it are known to come from that client.
func clientURL(modelURL, client string) string {
	return strings.TrimSuffix(modelURL, "/v1") + "/c/" + client + "/v1"
}

func (m *slowModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Stream   bool `json:"stream"`
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	last := ""
	if n := len(body.Messages); n > 0 {
		last = body.Messages[n-1].Content
	}
	tag := tagRe.FindString(last)
	key := tag + "/reply"
	if strings.HasPrefix(last, "Person said:") {
		key = tag + "/summary"
	}
	client := ""
	if rest, ok := strings.CutPrefix(r.URL.Path, "/c/"); ok {
		client, _, _ = strings.Cut(rest, "/")
	}
	m.mu.Lock()
	m.reqs[key]++
	m.clients[key] = append(m.clients[key], client)
	m.mu.Unlock()
	select {
	case <-time.After(m.delay):
	case <-r.Context().Done():
		m.mu.Lock()
		m.aborted[key]++
		m.mu.Unlock()
		return
	}
	text := "Answer to " + tag + "."
	if strings.HasSuffix(key, "/summary") {
		text = "Noted " + tag + "."
	}
	writeCompletion(w, body.Stream, text)
}

// clientsOf returns, per key, the client of each request in order.
func (m *slowModel) clientsOf() map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]string{}
	for k, cs := range m.clients {
		out[k] = slices.Clone(cs)
	}
	return out
}

func (m *slowModel) counts() (reqs, aborted map[string]int, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.reqs {
		total += n
	}
	return maps.Clone(m.reqs), maps.Clone(m.aborted), total
}

// person is a signed-in user with the messages they sent.
type person struct {
	id     string // the auth user id
	client *http.Client
	sent   map[string]string // tag -> outbox id
}

func signInAt(t testing.TB, base, email string) *person {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	var out struct {
		User responder.User `json:"user"`
	}
	if code := call(t, c, "POST", base+"/api/auth/dev-login", map[string]string{"email": email, "name": email}, &out); code != http.StatusOK {
		t.Fatalf("dev login %s: %d", email, code)
	}
	return &person{id: out.User.ID, client: c, sent: map[string]string{}}
}

// call sends a JSON request with the Origin of base and decodes the answer.
func call(t testing.TB, c *http.Client, method, u string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, r)
	req.Header.Set("Content-Type", "application/json")
	if i := strings.Index(u, "/api/"); i > 0 {
		req.Header.Set("Origin", u[:i])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// send posts a message to any live instance, trying the next on failure.
func (pp *person) send(t testing.TB, procs []*proc, tag string) {
	t.Helper()
	var out struct {
		ID string `json:"id"`
	}
	for try := 0; try < 3*len(procs); try++ {
		p := procs[(try+len(pp.sent))%len(procs)]
		select {
		case <-p.done:
			continue
		default:
		}
		// Cookies are per host, not port, and every instance shares the
		// secret: the session cookie one set is good at all of them.
		if code := call(t, pp.client, "POST", p.url+"/api/responder/messages", map[string]string{"content": tag + " hello"}, &out); code == http.StatusAccepted {
			pp.sent[tag] = out.ID
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no instance took message %s", tag)
}

// settled waits until every message of everyone is delivered or error.
func settled(t testing.TB, procs []*proc, people []*person, within time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		status := map[string]string{}
		var live *proc
		for _, p := range procs {
			select {
			case <-p.done:
			default:
				live = p
			}
		}
		for _, pp := range people {
			var list struct {
				Messages []struct{ ID, Status string } `json:"messages"`
			}
			call(t, pp.client, "GET", live.url+"/api/responder/messages", nil, &list)
			for _, m := range list.Messages {
				status[m.ID] = m.Status
			}
		}
		done := 0
		for _, s := range status {
			if s == "delivered" || s == "error" {
				done++
			}
		}
		total := 0
		for _, pp := range people {
			total += len(pp.sent)
		}
		if done == total && len(status) == total {
			return status
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages settled after %v: %v", done, total, within, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scaleEnv is what every instance of one deployment shares.
func scaleEnv(t testing.TB, modelURL string) map[string]string {
	return map[string]string{
		"ASTRA_ADDR":         "127.0.0.1:0",
		"ASTRA_TASKS_DIR":    "../../tasks",
		"ASTRA_ENGINE_KEY":   "engine-key-for-tests",
		"BETTER_AUTH_SECRET": "scale-out-secret-0123456789",
		"ASTRA_LOG_LEVEL":    "info",
		"ASTRA_LLM_BASE_URL": modelURL,
		"ASTRA_LLM_MODEL":    "test-model",
		// Leases short enough for a quick hand-off, long enough that a
		// heartbeat delayed by a loaded machine (the race detector, two
		// cores, every instance's shared deltas queued on SQLite's one
		// writer) never lets a live instance's work be taken over: 4 s
		// was seen to lapse in CI.
		"ASTRA_DISPATCH_LEASE":        "12s",
		"ASTRA_DISPATCH_SWEEP":        "200ms",
		"ASTRA_ENGINE_LEASE":          "9s",
		"ASTRA_DEV_LOGIN":             "true",
		"ASTRA_SHUTDOWN_TIMEOUT":      "5s",
		"ASTRA_DISPATCH_MAX_ATTEMPTS": "10",
	}
}

// scaleBackends are the shared databases: one SQLite file opened by every
// process, and an embedded FerretDB (MongoDB mode) behind a proxy that
// gives each command MongoDB's atomicity (see ferrettest.Serialized).
var scaleBackends = map[string]func(t testing.TB) map[string]string{
	"sqlite": func(t testing.TB) map[string]string {
		return map[string]string{"ASTRA_DATA_DIR": t.TempDir()}
	},
	"mongodb-ferretdb": func(t testing.TB) map[string]string {
		return map[string]string{
			"MONGODB_URI": ferrettest.Serialized(t, ferrettest.StartProcess(t)),
			"MONGODB_DB":  "astra_scale",
			// The proxy lets one write at a time into FerretDB, so on a
			// busy machine (CI runs other packages' tests beside this) a
			// heartbeat can queue for seconds behind the other instances'
			// writes: leases with room for that, so that no live
			// instance's work is ever taken over.
			"ASTRA_DISPATCH_LEASE": "20s",
			"ASTRA_ENGINE_LEASE":   "15s",
			"ASTRA_DISPATCH_SWEEP": "500ms",
			"ASTRA_STREAM_POLL":    "500ms",
		}
	},
}

func openShared(t testing.TB, env map[string]string) responder.Store {
	t.Helper()
	look := config.Map(env)
	cfg, err := config.Load(look, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir == "" || env["ASTRA_DATA_DIR"] == "" {
		cfg.DataDir = t.TempDir()
	}
	st, _, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestScaleOut runs three instances on one database with a slow model, 60
// messages from 6 people, and SIGKILLs one instance twice mid-run (each
// time restarting it). Every message must end with exactly one answer; the
// model must get exactly one request per prompt step of every message,
// except that a request the killed instance made may be made once more; the task
// writes one note per message; no instance logs a duplicate-key error.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	t.Parallel()
	for name, backend := range scaleBackends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			model, modelURL := newSlowModel(t, time.Second)
			env := scaleEnv(t, modelURL)
			maps.Copy(env, backend(t))
			procs := make([]*proc, 3)
			for i := range procs {
				procs[i] = startProc(t, fmt.Sprintf("%s-%d", name, i), env)
			}
			t.Cleanup(func() {
				if t.Failed() {
					for _, p := range procs {
						t.Logf("logs of %s:\n%s", p.name, tail(p.allLogs(), 150))
					}
				}
			})
			people := make([]*person, 6)
			for i := range people {
				people[i] = signInAt(t, procs[0].url, fmt.Sprintf("p%d@example.com", i))
			}
			sendRound := func(from, to int) {
				for n := from; n < to; n++ {
					for i, pp := range people {
						pp.send(t, procs, fmt.Sprintf("msg-p%d-%d", i, n))
					}
				}
			}
			victim := procs[2]
			killed := map[string]bool{} // model clients (instance runs) that were killed
			killDuringWork := func() {
				// Kill once the model is busy, so work is in flight.
				_, _, before := model.counts()
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if _, _, n := model.counts(); n >= before+6 {
						break
					}
				}
				killed[victim.kill()] = true
				victim.start()
			}
			sendRound(0, 5)
			killDuringWork()
			sendRound(5, 10)
			killDuringWork()

			status := settled(t, procs, people, 5*time.Minute)
			_, aborted, total := model.counts()
			clients := model.clientsOf()
			t.Logf("%d messages settled; %d model requests, %d cut off by kills", len(status), total, sum(aborted))

			st := openShared(t, env)
			jc, err := julep.New(procs[0].url+"/julep", env["ASTRA_ENGINE_KEY"])
			if err != nil {
				t.Fatal(err)
			}
			for _, pp := range people {
				events, err := st.LatestEvents(t.Context(), pp.id, 1000)
				if err != nil {
					t.Fatal(err)
				}
				answers := map[string]int{}
				for _, e := range events {
					if e.Role == responder.RoleAssistant {
						answers[e.OutboxID]++
					}
				}
				docs, err := jc.ListUserDocs(t.Context(), responder.JulepUserID(pp.id), map[string]string{"type": "notes"})
				if err != nil {
					t.Fatal(err)
				}
				notes := map[string]int{}
				for _, d := range docs {
					notes[d.Title]++
				}
				for tag, id := range pp.sent {
					if status[id] != "delivered" {
						t.Errorf("message %s (%s) ended %s", tag, id, status[id])
					}
					if answers[id] != 1 {
						t.Errorf("message %s has %d answers, want 1", tag, answers[id])
					}
					if n := notes["Chat note "+id]; n != 1 {
						t.Errorf("message %s has %d notes, want 1", tag, n)
					}
					for _, kind := range []string{"/reply", "/summary"} {
						k := tag + kind
						// A request made by an instance that was then killed
						// may be made once more (its answer may have died
						// with it): every request but the last must come
						// from a killed instance run. Any other repeat is
						// work done twice.
						cs := clients[k]
						for i, c := range cs[:max(len(cs)-1, 0)] {
							if !killed[c] {
								t.Errorf("%s: request %d of %d was made by %s, which lived on: work done twice (%v)", k, i+1, len(cs), c, cs)
							}
						}
						if len(cs) == 0 {
							t.Errorf("%s: no model request", k)
						}
					}
				}
			}
			for _, p := range procs {
				p.term()
				if logs := p.allLogs(); strings.Contains(logs, "E11000") || strings.Contains(strings.ToLower(logs), "duplicate key") {
					t.Errorf("%s logged a duplicate-key error:\n%s", p.name, grepLines(logs, "uplicate"))
				}
			}
		})
	}
}

// TestTwoInstancesModelCallsOnce is the case that found double work: two
// instances on one MongoDB-compatible database, the second dispatch-only,
// both with the embedded engine, a model that takes 3 s: 6 messages must
// make exactly 12 model requests (a reply and a summary each).
func TestTwoInstancesModelCallsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	t.Parallel()
	model, modelURL := newSlowModel(t, 3*time.Second)
	env := scaleEnv(t, modelURL)
	maps.Copy(env, scaleBackends["mongodb-ferretdb"](t))
	api := startProc(t, "api+dispatch", env)
	dispEnv := maps.Clone(env)
	dispEnv["ASTRA_ROLES"] = "dispatch"
	startProc(t, "dispatch", dispEnv)
	pp := signInAt(t, api.url, "two@example.com")
	for n := range 6 {
		pp.send(t, []*proc{api}, fmt.Sprintf("msg-two-%d", n))
	}
	settled(t, []*proc{api}, []*person{pp}, 2*time.Minute)
	reqs, aborted, total := model.counts()
	if total != 12 || sum(aborted) != 0 {
		t.Errorf("%d model requests (%d cut off), want 12: %v", total, sum(aborted), reqs)
	}
}

func sum(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
