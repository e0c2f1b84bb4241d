package dispatch_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/responder"
)

// getExecution matches GET /executions/{id} (not its streams or transitions).
var getExecution = regexp.MustCompile(`^/executions/[^/]+$`)

// julepLikeProxy sits in front of the engine and, when plain is set, makes
// its status stream look like a real Julep's: the terminal_only request is
// dropped (every event is sent) and the events carry no output or
// created_at. It counts GET /executions/{id}.
type julepLikeProxy struct {
	plain bool
	gets  atomic.Int64
	rp    *httputil.ReverseProxy
}

func newJulepLikeProxy(t *testing.T, target string, plain bool) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &julepLikeProxy{plain: plain}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.FlushInterval = -1
	p.rp.ModifyResponse = func(resp *http.Response) error {
		if p.plain && strings.HasSuffix(resp.Request.URL.Path, "/status.stream") {
			resp.Body = stripResult(resp.Body)
		}
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	t.Cleanup(func() {
		if p.plain && p.gets.Load() == 0 {
			t.Error("no GET /executions/{id}: the result cannot have come from a plain status stream")
		}
		if !p.plain && p.gets.Load() != 0 {
			t.Errorf("%d GET /executions/{id}: the terminal status event carries the result", p.gets.Load())
		}
	})
	return srv.URL
}

func (p *julepLikeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && getExecution.MatchString(r.URL.Path) {
		p.gets.Add(1)
	}
	if p.plain && strings.HasSuffix(r.URL.Path, "/status.stream") {
		r.URL.RawQuery = ""
	}
	p.rp.ServeHTTP(w, r)
}

// stripResult rewrites an SSE body, deleting the Astra extension fields
// from each event's data.
func stripResult(body io.ReadCloser) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		defer body.Close()
		sc := bufio.NewScanner(body)
		for sc.Scan() {
			line := sc.Text()
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var ev map[string]any
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					pw.CloseWithError(err)
					return
				}
				delete(ev, "output")
				delete(ev, "created_at")
				b, _ := json.Marshal(ev)
				line = "data: " + string(b)
			}
			if _, err := fmt.Fprintln(pw, line); err != nil {
				return
			}
		}
		pw.CloseWithError(sc.Err())
	}()
	return pr
}

// The dispatcher takes the result from the engine's terminal status event
// (no GET), and from a server whose events lack it, with a GET: the same
// answer either way.
func TestResultFromTheStatusStreamOrAGet(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			t.Parallel()
			st := openStore(t)
			je := startEngine(t, nil)
			base := newJulepLikeProxy(t, je.URL, plain)
			u := newUser(t, st, "Ines")
			r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: newClient(t, base), TaskID: je.TaskID}))
			for i := range 3 {
				m := enqueue(t, st, u, "message "+string(rune('a'+i)), nil)
				r.d.Wake()
				got := terminal(t, st, m.ID, 20*time.Second)
				if got.Status != responder.StatusDelivered {
					t.Fatalf("status %s (%s)", got.Status, got.LastError)
				}
				ev := onlyEvent(t, st, got, responder.RoleAssistant)
				x, err := je.Client.GetExecution(t.Context(), got.ExecutionID)
				if err != nil {
					t.Fatal(err)
				}
				reply, _ := x.Output.(map[string]any)["reply"].(string)
				if reply == "" || ev.Content != strings.TrimSpace(reply) || ev.Metadata["executionId"] != x.Id {
					t.Fatalf("event %q (%v), execution output %v", ev.Content, ev.Metadata, x.Output)
				}
			}
		})
	}
}
