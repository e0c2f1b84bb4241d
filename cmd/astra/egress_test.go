package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/julep"
)

// TestAPICallEgress: a task's api_call to a loopback address (here an
// internal service; in the attack, this server's own dev login and
// /metrics) is refused with a clear step error by default, and reaches it
// once ASTRA_EGRESS_ALLOW says so.
func TestAPICallEgress(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, `{"secret":"internal"}`)
	}))
	defer internal.Close()

	run := func(t *testing.T, env map[string]string, url string) julep.StatusEvent {
		inst := startAstra(t, env)
		jc, err := julep.New(inst.url+"/julep", "engine-key-for-tests")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		a, err := jc.CreateAgent(ctx, julep.AgentInput{Name: "Egress"})
		if err != nil {
			t.Fatal(err)
		}
		task, err := jc.CreateTask(ctx, a.Id, map[string]any{"name": "egress",
			"tools": []any{map[string]any{"name": "fetch", "type": "api_call", "api_call": map[string]any{"method": "GET", "url": url}}},
			"main":  []any{map[string]any{"tool": "fetch", "arguments": map[string]any{}}, map[string]any{"return": map[string]any{"body": "$ _.text"}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := jc.CreateExecution(ctx, task.Id, map[string]any{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := jc.AwaitTerminal(ctx, ex.Id)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	t.Run("refused by default", func(t *testing.T) {
		ev := run(t, nil, internal.URL+"/data")
		want := "api_call to " + internal.URL + "/data: refused by the egress policy: 127.0.0.1 is a loopback address; allow it with ASTRA_EGRESS_ALLOW"
		if ev.Status != "failed" || !strings.Contains(ev.Error, want) {
			t.Fatalf("status %s, error %q; want failed with %q", ev.Status, ev.Error, want)
		}
		if hits.Load() != 0 {
			t.Fatal("the internal server was reached")
		}
	})
	t.Run("allowed by ASTRA_EGRESS_ALLOW", func(t *testing.T) {
		ev := run(t, map[string]string{"ASTRA_EGRESS_ALLOW": "127.0.0.1"}, internal.URL+"/data")
		if ev.Status != "succeeded" || !strings.Contains(string(ev.Output), "internal") {
			t.Fatalf("status %s, error %q, output %s", ev.Status, ev.Error, ev.Output)
		}
	})
}
