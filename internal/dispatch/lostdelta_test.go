package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/server"
)

// replyLog is what one socket saw of each reply: its deltas by index, and
// its final text, with anything out of order noted.
type replyLog struct {
	mu      sync.Mutex
	deltas  map[string]map[int]string // outbox id -> index -> text
	answers map[string]string         // outbox id -> final append's content
	late    []string                  // deltas that came after their reply's append
	done    chan struct{}             // closed when want answers are in
	want    int
	err     error
}

func newReplyLog(want int) *replyLog {
	return &replyLog{deltas: map[string]map[int]string{}, answers: map[string]string{}, done: make(chan struct{}), want: want}
}

func (l *replyLog) read(ctx context.Context, c *websocket.Conn) {
	for {
		_, raw, err := c.Read(ctx)
		if err != nil {
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			return
		}
		var f struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if json.Unmarshal(raw, &f) != nil {
			continue
		}
		l.mu.Lock()
		switch f.Type {
		case "messages:delta":
			var d struct {
				OutboxID string `json:"outboxId"`
				Delta    string `json:"delta"`
				Index    int    `json:"index"`
			}
			_ = json.Unmarshal(f.Data, &d)
			if _, answered := l.answers[d.OutboxID]; answered {
				l.late = append(l.late, fmt.Sprintf("%s#%d %q", d.OutboxID, d.Index, d.Delta))
			}
			if l.deltas[d.OutboxID] == nil {
				l.deltas[d.OutboxID] = map[int]string{}
			}
			l.deltas[d.OutboxID][d.Index] = d.Delta
		case "messages:append":
			var e struct {
				Role     string         `json:"role"`
				Content  string         `json:"content"`
				Metadata map[string]any `json:"metadata"`
			}
			_ = json.Unmarshal(f.Data, &e)
			id, _ := e.Metadata["outboxId"].(string)
			if e.Role == string(responder.RoleAssistant) && id != "" {
				if _, seen := l.answers[id]; !seen {
					l.answers[id] = e.Content
					if len(l.answers) == l.want {
						close(l.done)
					}
				}
			}
		}
		l.mu.Unlock()
	}
}

// text is the reply's deltas joined in index order.
func (l *replyLog) text(id string) (string, int) {
	ds := l.deltas[id]
	var b strings.Builder
	for _, i := range slices.Sorted(maps.Keys(ds)) {
		b.WriteString(ds[i])
	}
	return b.String(), len(ds)
}

// TestEveryDeltaBeforeItsAnswer: with a streaming model, every socket of
// the person gets every delta of every reply, and all of them before the
// reply's final messages:append, whose text the deltas add up to. (Whole
// replies used to arrive with no delta at all: following returned at the
// terminal status and cancelled the relay before it had sent anything.)
//
// Under the race detector each case sends 40 replies: 200 would take
// minutes on two cores, and clients that slow get cut off as too slow.
// `make test` also runs it once without the detector, with 200.
func TestEveryDeltaBeforeItsAnswer(t *testing.T) {
	for _, sockets := range []int{1, 200} {
		replies := 200
		if raceEnabled {
			replies = 40
		}
		t.Run(fmt.Sprintf("sockets=%d", sockets), func(t *testing.T) {
			model := newModelServer(t,
				func(user string) string { return "Here comes the answer to " + user + ", one word at a time." },
				func(string) string { return "They asked; it streamed." })
			p := startProductWith(t, model, server.Deps{SocketsPerUser: sockets})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			url := "ws" + strings.TrimPrefix(p.srv.URL, "http") + "/api/responder/socket"
			logs := make([]*replyLog, sockets)
			for i := range logs {
				c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {p.cookie}}})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				c.SetReadLimit(1 << 24)
				logs[i] = newReplyLog(replies)
				go logs[i].read(ctx, c)
			}

			ids := make([]string, replies)
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := w; i < replies; i += 8 {
						ids[i] = p.post(t, fmt.Sprintf("question %d", i))
					}
				})
			}
			wg.Wait()

			for i, l := range logs {
				select {
				case <-l.done:
				case <-time.After(5 * time.Minute):
					l.mu.Lock()
					t.Fatalf("socket %d: %d of %d answers (socket: %v)", i, len(l.answers), replies, l.err)
				}
			}
			for i, l := range logs {
				l.mu.Lock()
				if len(l.late) > 0 {
					t.Errorf("socket %d: %d deltas came after their reply's append: %s", i, len(l.late), strings.Join(l.late, ", "))
				}
				without := 0
				for _, id := range ids {
					text, n := l.text(id)
					if n == 0 {
						without++
						continue
					}
					if text != l.answers[id] {
						t.Errorf("socket %d, reply %s: deltas say %q, the answer %q", i, id, text, l.answers[id])
					}
				}
				if without > 0 {
					t.Errorf("socket %d: %d of %d replies arrived without a delta", i, without, replies)
				}
				l.mu.Unlock()
			}
		})
	}
}
