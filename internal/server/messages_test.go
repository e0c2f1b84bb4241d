package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/astra-app/astra/internal/responder"
)

func TestPostMessageValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.newUser("Ada")
	deep := `{"a":` + strings.Repeat(`{"a":`, MaxMetadataDepth) + `1` + strings.Repeat(`}`, MaxMetadataDepth+1)
	cases := []struct {
		name, body string
		header     []string
		status     int
		error      string
	}{
		{"not JSON", `{"content":`, nil, 400, "Invalid JSON"},
		{"empty body", ``, nil, 400, "Invalid JSON"},
		{"trailing garbage", `{"content":"hi"} x`, nil, 400, "Invalid JSON"},
		{"array", `["hi"]`, nil, 400, "Invalid payload"},
		{"string", `"hi"`, nil, 400, "Invalid payload"},
		{"null", `null`, nil, 400, "Invalid payload"},
		{"no content", `{}`, nil, 400, "Message content is required"},
		{"blank content", `{"content":" \n\t\u3000\ufeff "}`, nil, 400, "Message content is required"},
		{"number content", `{"content":42}`, nil, 400, "Message content is required"},
		{"null content", `{"content":null}`, nil, 400, "Message content is required"},
		{"too long", `{"content":"` + strings.Repeat("é", MaxContentRunes+1) + `"}`, nil, 400, "Message is too long"},
		{"metadata array", `{"content":"hi","metadata":[1]}`, nil, 400, "Metadata must be an object"},
		{"metadata string", `{"content":"hi","metadata":"x"}`, nil, 400, "Metadata must be an object"},
		{"metadata $ key", `{"content":"hi","metadata":{"$where":"1"}}`, nil, 400, "Metadata keys must not start with $ or contain ."},
		{"metadata dotted key", `{"content":"hi","metadata":{"a.b":1}}`, nil, 400, "Metadata keys must not start with $ or contain ."},
		{"metadata nested $ key", `{"content":"hi","metadata":{"a":[{"b":{"$gt":1}}]}}`, nil, 400, "Metadata keys must not start with $ or contain ."},
		{"metadata too deep", `{"content":"hi","metadata":` + deep + `}`, nil, 400, "Metadata is too deeply nested"},
		{"metadata too large", `{"content":"hi","metadata":{"a":"` + strings.Repeat("x", MaxMetadataBytes) + `"}}`, nil, 400, "Metadata is too large"},
		{"body too large", `{"content":"hi","pad":"` + strings.Repeat("x", DefaultMaxMessageBytes) + `"}`, nil, 413, "Request body is too large"},
		{"form content type", `{"content":"hi"}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "Content-Type must be application/json"},
		{"text content type", `{"content":"hi"}`, []string{"Content-Type", "text/plain;charset=UTF-8"}, 415, "Content-Type must be application/json"},
		{"bad content type", `{"content":"hi"}`, []string{"Content-Type", "application/json; ="}, 415, "Content-Type must be application/json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := e.do(http.MethodPost, "/api/responder/messages", u.withCookie(), []byte(c.body), c.header...)
			var got errorBody
			r.json(t, &got)
			if r.status != c.status || got.Error != c.error {
				t.Errorf("got %d %q, want %d %q", r.status, got.Error, c.status, c.error)
			}
		})
	}
	if msgs, _ := e.store.UserMessages(context.Background(), u.ID, 100); len(msgs) != 0 {
		t.Errorf("%d rows stored by refused posts", len(msgs))
	}
}

func TestPostMessageStoresTheRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.newUser("Ada")
	longest := strings.Repeat("ज", MaxContentRunes) // 2000 runes, 6000 bytes: within the limit
	cases := []struct {
		name, body, header, content string
		metadata                    map[string]any
	}{
		{"plain", `{"content":"  namaste \n"}`, "application/json", "namaste", nil},
		{"charset param", `{"content":"hi"}`, "application/json; charset=utf-8", "hi", nil},
		{"no content type", `{"content":"hi"}`, "", "hi", nil},
		{"+json type", `{"content":"hi"}`, "application/vnd.astra+json", "hi", nil},
		{"null metadata", `{"content":"hi","metadata":null}`, "application/json", "hi", nil},
		{"metadata", `{"content":"hi","metadata":{"source":"web","tags":["a",{"k":1}]}}`, "application/json", "hi",
			map[string]any{"source": "web", "tags": []any{"a", map[string]any{"k": float64(1)}}}},
		{"longest", `{"content":"` + longest + `"}`, "application/json", longest, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := e.do(http.MethodPost, "/api/responder/messages", u.withCookie(), []byte(c.body), "Content-Type", c.header)
			var got struct {
				OK     bool   `json:"ok"`
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			r.json(t, &got)
			if r.status != http.StatusAccepted || !got.OK || got.Status != "pending" || !responder.ValidID(got.ID) {
				t.Fatalf("got %d %s, want 202 {ok:true,id,status:pending}", r.status, r.body)
			}
			m, err := e.store.Message(context.Background(), got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if m.UserID != u.ID || m.JulepUserID != responder.JulepUserID(u.ID) || m.Content != c.content || m.Status != responder.StatusPending {
				t.Errorf("stored %+v", m)
			}
			if fmt.Sprint(m.Metadata) != fmt.Sprint(c.metadata) {
				t.Errorf("metadata %v, want %v", m.Metadata, c.metadata)
			}
		})
	}
}

func TestPostMessageWakesTheDispatcherAndUsesTheStoredJulepUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.newUser("Ada")
	const julepID = "6f1c2d3e-0000-4000-8000-000000000001"
	if err := e.store.SetUserJulepID(context.Background(), u.ID, julepID); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodPost, "/api/responder/messages", u.withCookie(), []byte(`{"content":"hi"}`))
	if r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	select {
	case m := <-e.enqueued:
		if m.UserID != u.ID || m.JulepUserID != julepID || m.Content != "hi" || !responder.ValidID(m.ID) {
			t.Errorf("OnEnqueue got %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnEnqueue was not called")
	}
}

func TestListMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, other := e.newUser("Ada"), e.newUser("Grace")
	ctx := context.Background()
	var ids []string
	for i := range 55 {
		m := responder.Message{UserID: u.ID, JulepUserID: "j", Content: fmt.Sprint("m", i)}
		if err := e.store.Enqueue(ctx, &m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if err := e.store.Enqueue(ctx, &responder.Message{UserID: other.ID, JulepUserID: "j", Content: "not yours"}); err != nil {
		t.Fatal(err)
	}
	// One row failed, one has an execution: both show.
	claimed, err := e.store.Claim(ctx, "w", time.Minute, 0)
	if err != nil || claimed == nil {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if err := e.store.SetExecution(ctx, claimed.ID, "w", "exec-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Fail(ctx, claimed.ID, "w", "Julep said no"); err != nil {
		t.Fatal(err)
	}

	r := e.do(http.MethodGet, "/api/responder/messages", u.withCookie(), nil)
	var got struct {
		Messages []map[string]any `json:"messages"`
	}
	r.json(t, &got)
	if r.status != http.StatusOK || len(got.Messages) != listMessagesLimit {
		t.Fatalf("got %d with %d messages, want 200 with %d", r.status, len(got.Messages), listMessagesLimit)
	}
	for i, m := range got.Messages {
		want := ids[len(ids)-1-i] // newest first
		if m["id"] != want || m["content"] != fmt.Sprint("m", len(ids)-1-i) {
			t.Fatalf("message %d = %v, want id %s", i, m, want)
		}
		ts, _ := m["createdAt"].(string)
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", ts); err != nil || !strings.HasSuffix(ts, "Z") {
			t.Errorf("createdAt %q is not ISO 8601 UTC with milliseconds", ts)
		}
		for k := range m {
			switch k {
			case "id", "content", "createdAt", "status", "lastError", "executionId":
			default:
				t.Errorf("unexpected field %q in %v", k, m)
			}
		}
	}
	// The claimed row is the oldest, outside the latest 50; check it directly.
	if claimed.ID != ids[0] {
		t.Fatalf("claimed %s, want the oldest %s", claimed.ID, ids[0])
	}
	e2 := e.do(http.MethodGet, "/api/responder/messages/"+claimed.ID+"/execution", u.withCookie(), nil)
	var ex map[string]any
	e2.json(t, &ex)
	if e2.status != http.StatusOK || ex["status"] != "error" || ex["lastError"] != "Julep said no" || ex["executionId"] != "exec-1" {
		t.Errorf("execution view %d %v", e2.status, ex)
	}

	empty := e.newUser("Empty")
	r = e.do(http.MethodGet, "/api/responder/messages", empty.withCookie(), nil)
	if string(r.body) != "{\"messages\":[]}\n" {
		t.Errorf("no messages: %s, want an empty array", r.body)
	}
}

func TestExecutionView(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.deps.Execution = func(ctx context.Context, id string) (any, error) {
			if id == "exec-broken" {
				return nil, errors.New("julep: connection refused to 10.0.0.7")
			}
			return map[string]any{"id": id, "transitions": []string{"init", "finish"}}, nil
		}
	})
	u := e.newUser("Ada")
	ctx := context.Background()
	m := &responder.Message{UserID: u.ID, JulepUserID: "j", Content: "hi"}
	if err := e.store.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	path := "/api/responder/messages/" + m.ID + "/execution"
	r := e.do(http.MethodGet, path, u.withCookie(), nil)
	if r.status != http.StatusOK || string(r.body) != `{"id":"`+m.ID+`","status":"pending","executionId":null,"execution":null}`+"\n" {
		t.Errorf("before an execution: %d %s", r.status, r.body)
	}
	if _, err := e.store.Claim(ctx, "w", time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetExecution(ctx, m.ID, "w", "exec-1"); err != nil {
		t.Fatal(err)
	}
	r = e.do(http.MethodGet, path, u.withCookie(), nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"execution":{"id":"exec-1","transitions":["init","finish"]}`) {
		t.Errorf("with an execution: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"nope", responder.NewID(), strings.Repeat("z", 24)} {
		r = e.do(http.MethodGet, "/api/responder/messages/"+bad+"/execution", u.withCookie(), nil)
		if r.status != http.StatusNotFound || string(r.body) != "{\"error\":\"Message not found\"}\n" {
			t.Errorf("id %q: %d %s", bad, r.status, r.body)
		}
	}

	// An internal failure is logged, not shown.
	m2 := &responder.Message{UserID: u.ID, JulepUserID: "j", Content: "again"}
	if err := e.store.Enqueue(ctx, m2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Claim(ctx, "w", time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetExecution(ctx, m2.ID, "w", "exec-broken"); err != nil {
		t.Fatal(err)
	}
	r = e.do(http.MethodGet, "/api/responder/messages/"+m2.ID+"/execution", u.withCookie(), nil)
	if r.status != http.StatusInternalServerError || string(r.body) != "{\"error\":\"Internal error\"}\n" {
		t.Errorf("internal error shown as %d %s", r.status, r.body)
	}
}

func TestDecodeMessageContentLimitCountsRunes(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("😀", MaxContentRunes) // 4 bytes and 2 UTF-16 units each; runes are what count
	m, err := decodeMessage([]byte(`{"content":"` + s + `"}`))
	if err != nil || utf8.RuneCountInString(m.Content) != MaxContentRunes {
		t.Errorf("2000 emoji: %v", err)
	}
}

// FuzzDecodeMessage: any body gives a clear EINVALID error or a message
// that satisfies every rule; nothing panics.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"content":"hi"}`, `{"content":" hi ","metadata":{"a":[1,{"b":null}]}}`, `{"content":""}`, `[]`, `null`, `{`,
		`{"content":"x","metadata":{"$a":1}}`, `{"content":"x","metadata":{"a.b":1}}`, `{"content":"\ufeff"}`,
		`{"content":"\ud800"}`, `{"content":"x","metadata":"s"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeMessage(body)
		if err != nil {
			var e *responder.Error
			if !errors.As(err, &e) || e.Code != responder.EINVALID || e.Message == "" {
				t.Fatalf("error %v is not a clear EINVALID", err)
			}
			return
		}
		if m.Content == "" || m.Content != strings.TrimFunc(m.Content, isJSSpace) || utf8.RuneCountInString(m.Content) > MaxContentRunes {
			t.Fatalf("accepted bad content %q", m.Content)
		}
		if m.Metadata != nil {
			if err := checkMetadata(m.Metadata, 1); err != nil {
				t.Fatalf("accepted bad metadata: %v", err)
			}
		}
	})
}
