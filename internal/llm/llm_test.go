package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// fakeOpenAI is a real HTTP server speaking the chat-completions wire format;
// it records each request body so tests can assert exactly what was sent.
type fakeOpenAI struct {
	mu     sync.Mutex
	bodies []map[string]any
	auth   []string
}

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	if body["stream"] == true {
		w.Header().Set("Content-Type", "text/event-stream")
		for i, d := range []string{"Namaste", ", dost", "!"} {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", d)
			_ = i
		}
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"id":"c2","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`)
}

func TestOpenAIRequestAndResponse(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	m := NewOpenAI(srv.URL+"/v1", "sk-test", "default-model", srv.Client())
	temp := 0.25
	resp, err := m.Chat(context.Background(), Request{
		Model:          "gpt-test",
		Messages:       []Message{{"system", "be kind"}, {"user", "hi"}, {"assistant", "yo"}, {"user", "again"}},
		Temperature:    &temp,
		MaxTokens:      50,
		ResponseFormat: &ResponseFormat{Type: "json_object"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "hello there" || resp.Usage.TotalTokens != 7 || resp.FinishReason != "stop" {
		t.Fatalf("response = %+v", resp)
	}
	got := f.bodies[0]
	want := map[string]any{
		"model":       "gpt-test",
		"temperature": 0.25,
		"max_tokens":  float64(50),
		"messages": []any{
			map[string]any{"role": "system", "content": "be kind"},
			map[string]any{"role": "user", "content": "hi"},
			map[string]any{"role": "assistant", "content": "yo"},
			map[string]any{"role": "user", "content": "again"},
		},
		"response_format": map[string]any{"type": "json_object"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("request body\n got %v\nwant %v", got, want)
	}
	if f.auth[0] != "Bearer sk-test" {
		t.Fatalf("Authorization = %q", f.auth[0])
	}
}

func TestOpenAIDefaultModelAndSchema(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	m := NewOpenAI(srv.URL+"/v1", "", "default-model", srv.Client())
	schema := map[string]any{"type": "object", "properties": map[string]any{"reply": map[string]any{"type": "string"}}}
	if _, err := m.Chat(context.Background(), Request{
		Messages:       []Message{{"user", "hi"}},
		ResponseFormat: &ResponseFormat{Type: "json_schema", Name: "answer", Schema: schema, Strict: true},
	}, nil); err != nil {
		t.Fatal(err)
	}
	got := f.bodies[0]
	if got["model"] != "default-model" {
		t.Errorf("model = %v", got["model"])
	}
	if _, ok := got["temperature"]; ok {
		t.Errorf("temperature sent although unset: %v", got["temperature"])
	}
	rf := got["response_format"].(map[string]any)
	js := rf["json_schema"].(map[string]any)
	if rf["type"] != "json_schema" || js["name"] != "answer" || js["strict"] != true || !reflect.DeepEqual(js["schema"], schema) {
		t.Errorf("response_format = %v", rf)
	}
}

func TestOpenAIStreams(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	m := NewOpenAI(srv.URL+"/v1", "k", "m", srv.Client())
	var deltas []string
	resp, err := m.Chat(context.Background(), Request{Messages: []Message{{"user", "hi"}}}, func(d string) { deltas = append(deltas, d) })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(deltas, "|") != "Namaste|, dost|!" || resp.Content != "Namaste, dost!" || resp.FinishReason != "stop" {
		t.Fatalf("deltas %q, response %+v", deltas, resp)
	}
	if f.bodies[0]["stream"] != true {
		t.Fatalf("stream not requested: %v", f.bodies[0])
	}
}

func TestOpenAIErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"model not found","type":"invalid_request_error"}}`)
	}))
	defer srv.Close()
	m := NewOpenAI(srv.URL+"/v1", "k", "m", srv.Client())
	_, err := m.Chat(context.Background(), Request{Messages: []Message{{"user", "hi"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "model not found") {
		t.Fatalf("err = %v", err)
	}
	if _, err := m.Chat(context.Background(), Request{Messages: []Message{{"tool", "x"}}}, nil); err == nil || !strings.Contains(err.Error(), `role "tool"`) {
		t.Fatalf("bad role err = %v", err)
	}
	if _, err := NewOpenAI(srv.URL, "k", "", nil).Chat(context.Background(), Request{Messages: []Message{{"user", "x"}}}, nil); err == nil || !strings.Contains(err.Error(), "no model") {
		t.Fatalf("no model err = %v", err)
	}
}

func TestOfflineIsDeterministicAndSaysSo(t *testing.T) {
	t.Parallel()
	req := Request{Messages: []Message{{"system", "persona"}, {"user", "What is my sign?"}}}
	a, err := Offline().Chat(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	var deltas []string
	b, err := Offline().Chat(context.Background(), req, func(d string) { deltas = append(deltas, d) })
	if err != nil {
		t.Fatal(err)
	}
	if a.Content != b.Content || strings.Join(deltas, "") != a.Content || len(deltas) < 5 {
		t.Fatalf("not deterministic or not streamed word by word: %q vs %q (%d deltas)", a.Content, b.Content, len(deltas))
	}
	if !strings.Contains(a.Content, "offline") || !strings.Contains(a.Content, "What is my sign?") {
		t.Fatalf("offline reply %q", a.Content)
	}
	j, _ := Offline().Chat(context.Background(), Request{Messages: req.Messages, ResponseFormat: &ResponseFormat{Type: "json_object"}}, nil)
	var v map[string]any
	if err := json.Unmarshal([]byte(j.Content), &v); err != nil || v["offline"] != true {
		t.Fatalf("json reply %q: %v", j.Content, err)
	}
}
