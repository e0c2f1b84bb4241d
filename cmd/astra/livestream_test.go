package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestOutboxStatesAcrossProcesses: with the API and the dispatcher in two
// processes on one database, a person's socket on the API instance gets
// each message as pending at once (messages:outbox from the POST), its
// answer, and then its delivered state, which the dispatcher wrote in the
// other process (read from the store when the answer's event arrives
// through the feed); and every delta of each reply, in order, before its
// answer (shared through the store by the dispatch process).
func TestOutboxStatesAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	t.Parallel()
	// Both backends: the deltas cross through responder_deltas, a table on
	// SQLite and a collection on MongoDB (FerretDB here).
	for _, backend := range []string{"sqlite", "mongodb-ferretdb"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testOutboxStatesAcrossProcesses(t, backend)
		})
	}
}

func testOutboxStatesAcrossProcesses(t *testing.T, backend string) {
	_, modelURL := newSlowModel(t, 200*time.Millisecond)
	env := scaleEnv(t, modelURL)
	maps.Copy(env, scaleBackends[backend](t))
	apiEnv := maps.Clone(env)
	apiEnv["ASTRA_ROLES"] = "api"
	api := startProc(t, "api", apiEnv)
	dispEnv := maps.Clone(env)
	dispEnv["ASTRA_ROLES"] = "dispatch"
	startProc(t, "dispatch", dispEnv)

	pp := signInAt(t, api.url, "tabs@example.com")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, _ := url.Parse(api.url)
	var cookies []string
	for _, c := range pp.client.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(api.url, "http")+"/api/responder/socket",
		&websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {strings.Join(cookies, "; ")}, "Origin": {api.url}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)

	const n = 3
	for i := range n {
		pp.send(t, []*proc{api}, fmt.Sprintf("msg-tabs-%d", i))
	}
	want := map[string]bool{}
	for _, id := range pp.sent {
		want[id] = true
	}
	states := map[string][]string{} // outbox id -> states seen, in order
	answered := map[string]bool{}
	deltas := 0
	text := map[string]string{} // outbox id -> its deltas' text so far
	next := map[string]int{}    // outbox id -> the next delta index
	delivered := func() int {
		k := 0
		for id := range want {
			s := states[id]
			if answered[id] && len(s) > 0 && s[len(s)-1] == "delivered" {
				k++
			}
		}
		return k
	}
	for delivered() < n {
		_, raw, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("socket: %v; states %v, answered %v\napi:\n%s", err, states, answered, tail(api.allLogs(), 20))
		}
		var f struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatalf("frame %s: %v", raw, err)
		}
		switch f.Type {
		case "messages:outbox":
			var rows []struct {
				ID, Status string
			}
			if err := json.Unmarshal(f.Data, &rows); err != nil {
				t.Fatalf("outbox frame %s: %v", raw, err)
			}
			for _, r := range rows {
				if want[r.ID] {
					states[r.ID] = append(states[r.ID], r.Status)
				}
			}
		case "messages:append":
			var e struct {
				Role     string
				Content  string
				Metadata map[string]any
			}
			_ = json.Unmarshal(f.Data, &e)
			if id, _ := e.Metadata["outboxId"].(string); e.Role == "assistant" && want[id] {
				answered[id] = true
				// Issue 14 items 3 and 6: every delta, from the dispatch
				// process, before the final append, adding up to its text.
				if got := strings.TrimSpace(text[id]); got != e.Content {
					t.Errorf("message %s: deltas before the answer say %q, the answer %q", id, got, e.Content)
				}
			}
		case "messages:delta":
			deltas++
			var d struct {
				OutboxID     string
				Delta        string
				Index, Count int
			}
			if err := json.Unmarshal(f.Data, &d); err != nil {
				t.Fatalf("delta frame %s: %v", raw, err)
			}
			switch {
			case !want[d.OutboxID]:
				t.Errorf("delta of an unknown message: %s", raw)
			case answered[d.OutboxID]:
				t.Errorf("delta after its answer: %s", raw)
			case d.Index != next[d.OutboxID]:
				t.Errorf("delta %s: index %d, want %d (in order, none missing or repeated)", raw, d.Index, next[d.OutboxID])
			}
			next[d.OutboxID] = d.Index + max(d.Count, 1)
			text[d.OutboxID] += d.Delta
		}
	}
	for id := range want {
		if s := states[id]; s[0] != "pending" {
			t.Errorf("message %s: states %v, want pending first (the POST's own push)", id, s)
		}
	}
	t.Logf("states %v; %d delta frames reached the API instance's socket", states, deltas)
}
