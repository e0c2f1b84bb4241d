package llm

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/retry"
)

// The client makes one request per Chat: retries are the engine's, and a
// refusal carries what the engine's policy needs (status, Retry-After).
func TestOpenAIDoesNotRetryItself(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
	}))
	defer srv.Close()
	m := NewOpenAI(srv.URL+"/v1", "k", "m", srv.Client())
	for _, stream := range []bool{false, true} {
		n.Store(0)
		var onDelta func(string)
		if stream {
			onDelta = func(string) {}
		}
		_, err := m.Chat(context.Background(), Request{Messages: []Message{{"user", "hi"}}}, onDelta)
		if got := n.Load(); got != 1 {
			t.Fatalf("stream %v: %d requests, want 1", stream, got)
		}
		if reason, ok := retry.Classify(err); !ok || reason != retry.Reason5xx {
			t.Fatalf("stream %v: Classify(%v) = %q, %v", stream, err, reason, ok)
		}
		if d, ok := retry.RetryAfter(err, time.Now()); !ok || d != 2*time.Second {
			t.Fatalf("stream %v: RetryAfter = %v, %v", stream, d, ok)
		}
		if !strings.Contains(err.Error(), "503 overloaded") {
			t.Fatalf("stream %v: error %q lost the endpoint's message", stream, err)
		}
	}
}

// Under the retry policy, a non-streamed call answered 500 then 200 succeeds.
func TestOpenAIUnderRetryPolicy(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{}
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			http.Error(w, `{"error":{"message":"oops"}}`, http.StatusInternalServerError)
			return
		}
		f.ServeHTTP(w, r)
	}))
	defer srv.Close()
	m := NewOpenAI(srv.URL+"/v1", "k", "m", srv.Client())
	p := retry.Policy{Attempts: 3, Base: time.Millisecond, Cap: time.Millisecond}
	var resp *Response
	err := p.Do(context.Background(), func(ctx context.Context) error {
		r, err := m.Chat(ctx, Request{Messages: []Message{{"user", "hi"}}}, nil)
		resp = r
		return err
	}, nil)
	if err != nil || resp.Content != "hello there" || n.Load() != 2 {
		t.Fatalf("err %v, resp %+v, %d requests", err, resp, n.Load())
	}
}
