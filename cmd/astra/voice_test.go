package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// speechServer is an OpenAI-compatible /v1/audio/speech endpoint that
// records what it was asked and answers with fixed bytes.
type speechServer struct {
	mu    sync.Mutex
	calls []map[string]any
	auth  []string
}

var fakeMP3 = []byte{0xff, 0xfb, 0x90, 0x64, 0x00, 0x0f, 0xf0, 0x00, 0x00, 0x69, 0x00, 0x00, 0xfe}

func (s *speechServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	s.calls = append(s.calls, body)
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.mu.Unlock()
	if r.URL.Path != "/v1/audio/speech" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "audio/mpeg")
	_, _ = w.Write(fakeMP3)
}

// TestSpokenReply: a message sent with {"voice": true} is answered with text
// and audio the owner, and only the owner, can play; the speech key never
// shows in the execution the dashboard can inspect.
func TestSpokenReply(t *testing.T) {
	t.Parallel()
	const reply = "Shubh ratri, Ada. Sleep well."
	model := modelServer(t, reply, "Ada said good night.")
	speech := &speechServer{}
	tts := httptest.NewServer(speech)
	t.Cleanup(tts.Close)
	in := startAstra(t, map[string]string{
		"ASTRA_LLM_BASE_URL":       model.URL + "/v1",
		"ASTRA_LLM_MODEL":          "test-model",
		"ASTRA_TTS_URL":            tts.URL + "/v1/audio/speech",
		"ASTRA_SECRET_TTS_API_KEY": "tts-secret-key-123",
	})
	if code := in.do("POST", "/api/auth/dev-login", map[string]string{"email": "ada@example.com", "name": "Ada"}, nil); code != 200 {
		t.Fatalf("dev login: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	u, _ := url.Parse(in.url)
	conn, _, err := websocket.Dial(ctx, "ws://"+u.Host+"/api/responder/socket", &websocket.DialOptions{
		HTTPClient: in.client, HTTPHeader: http.Header{"Origin": {in.url}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	var init wsFrame
	if err := wsjson.Read(ctx, conn, &init); err != nil {
		t.Fatal(err)
	}

	var spoken, plain struct{ ID string }
	in.do("POST", "/api/responder/messages", map[string]any{"content": "Good night!", "metadata": map[string]any{"voice": true}}, &spoken)
	in.do("POST", "/api/responder/messages", map[string]any{"content": "And in text?"}, &plain)
	replies := map[string]wsEvent{}
	for len(replies) < 2 {
		var f wsFrame
		if err := wsjson.Read(ctx, conn, &f); err != nil {
			t.Fatalf("waiting for replies: %v", err)
		}
		var ev wsEvent
		if f.Type == "messages:append" && json.Unmarshal(f.Data, &ev) == nil && ev.Role == "assistant" {
			replies[ev.Metadata["outboxId"].(string)] = ev
		}
	}
	if _, ok := replies[plain.ID].Metadata["audioUrl"]; ok {
		t.Errorf("a text-only message got audio: %v", replies[plain.ID].Metadata)
	}
	got := replies[spoken.ID]
	audioURL, _ := got.Metadata["audioUrl"].(string)
	if got.Content != reply || !strings.HasPrefix(audioURL, "/api/responder/audio/") {
		t.Fatalf("spoken reply %+v", got)
	}

	speech.mu.Lock()
	if len(speech.calls) != 1 || speech.calls[0]["input"] != reply || speech.calls[0]["model"] != "tts-1" || speech.auth[0] != "Bearer tts-secret-key-123" {
		t.Errorf("speech requests %v, auth %v", speech.calls, speech.auth)
	}
	speech.mu.Unlock()

	resp, err := in.client.Get(in.url + audioURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/mpeg" || !bytes.Equal(body, fakeMP3) {
		t.Fatalf("owner's audio: %d %q %x", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	other := signIn(t, in, "someone-else@example.com")
	if resp, err := other.Get(in.url + audioURL); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another user's request for the audio: %v %v", resp.StatusCode, err)
	}
	if resp, err := http.Get(in.url + audioURL); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous request for the audio: %v %v", resp.StatusCode, err)
	}

	// The execution (transitions included) as the dashboard's panel shows it
	// never carries the speech key.
	var view json.RawMessage
	if code := in.do("GET", "/api/responder/messages/"+spoken.ID+"/execution", nil, &view); code != 200 {
		t.Fatalf("execution view: %d", code)
	}
	if bytes.Contains(view, []byte("tts-secret-key-123")) || !bytes.Contains(view, []byte("transitions")) {
		t.Fatalf("execution view leaks the secret or lacks transitions: %.400s", view)
	}
}
