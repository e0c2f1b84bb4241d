package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/enginetest"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
)

// consoleEnv is a server with the console over a real embedded engine, a
// task with a labelled and an unlabelled step, and executions of one
// person's messages.
type consoleEnv struct {
	*env
	jc     *julep.Client
	taskID string
}

func newConsoleEnv(t *testing.T, adminEmails ...string) *consoleEnv {
	t.Helper()
	const key = "console-key"
	srv := enginetest.Start(t, engine.Options{Key: key, Concurrency: 4})
	jc, err := julep.New(srv.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *envConfig) {
		c.deps.Console = &Console{Julep: jc, AdminEmails: adminEmails}
	})
	ctx := context.Background()
	a, err := jc.CreateAgent(ctx, julep.AgentInput{Name: "Jadugar", Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := jc.CreateTask(ctx, a.Id, map[string]any{"name": "echo", "main": []any{
		map[string]any{"label": "compute", "evaluate": map[string]any{"x": "$ _.message + '!'", "token": "$ 'sk-secret'"}},
		map[string]any{"evaluate": map[string]any{"y": "$ _.x"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &consoleEnv{env: e, jc: jc, taskID: task.Id}
}

// execute stores a message of u and runs it as the dispatcher would.
func (c *consoleEnv) execute(t *testing.T, u *user, content string) (outboxID, execID string) {
	t.Helper()
	ctx := context.Background()
	m := responder.Message{UserID: u.ID, JulepUserID: responder.JulepUserID(u.ID), Content: content}
	if err := c.store.Enqueue(ctx, &m); err != nil {
		t.Fatal(err)
	}
	x, err := c.jc.CreateExecution(ctx, c.taskID, map[string]any{"message": content},
		map[string]any{"outbox_id": m.ID, "user_id": u.ID, "source": "astra"})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.jc.StreamStatus(sctx, x.Id, func(julep.StatusEvent) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return m.ID, x.Id
}

// Every console route checks the session and the admin role on the server.
func TestConsoleIsForOperatorsOnly(t *testing.T) {
	t.Parallel()
	c := newConsoleEnv(t)
	asha, bo := c.newUser("Asha"), c.newUser("Bo")
	ob, x := c.execute(t, asha, "hi")

	routes := []struct{ method, path string }{
		{"GET", "/api/console/tasks"},
		{"GET", "/api/console/executions"},
		{"GET", "/api/console/executions/" + x},
		{"POST", "/api/console/executions/" + x + "/cancel"},
		{"POST", "/api/console/executions/" + x + "/rerun"},
	}
	for _, rt := range routes {
		if r := c.do(rt.method, rt.path, "", nil, "Origin", testOrigin); r.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a session: %d", rt.method, rt.path, r.status)
		}
		r := c.do(rt.method, rt.path, bo.withCookie(), nil, "Origin", testOrigin)
		if r.status != http.StatusForbidden || strings.Contains(string(r.body), "hi") || strings.Contains(string(r.body), asha.Email) {
			t.Errorf("%s %s as a non-admin: %d %s", rt.method, rt.path, r.status, r.body)
		}
	}
	var access struct{ Admin bool }
	c.do("GET", "/api/console/access", bo.withCookie(), nil).json(t, &access)
	if access.Admin {
		t.Error("a person is told they are an admin")
	}
	// Nor does a person's own route show another's execution.
	if r := c.do("GET", "/api/responder/messages/"+ob+"/execution", bo.withCookie(), nil); r.status != http.StatusNotFound {
		t.Errorf("another person's execution: %d %s", r.status, r.body)
	}
	// Nothing was re-run by the refused requests.
	if msgs, _ := c.store.UserMessages(context.Background(), asha.ID, 10); len(msgs) != 1 {
		t.Errorf("asha has %d messages", len(msgs))
	}
}

func TestConsoleListsFiltersAndShowsATimeline(t *testing.T) {
	t.Parallel()
	c := newConsoleEnv(t, "boot@example.com")
	asha, bo := c.newUser("Asha"), c.newUser("Bo")
	// An operator by Better Auth's role, another by ASTRA_ADMIN_EMAILS.
	root := &responder.User{Name: "Root", Email: "root@example.com", Role: "user,admin"}
	if err := c.store.CreateUser(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	rootCookie := cookieFor(c.newSession(root.ID, time.Now().Add(time.Hour)).Token)
	boot := c.newUser("Boot")

	ob1, x1 := c.execute(t, asha, "one")
	_, x2 := c.execute(t, bo, "two")
	_, x3 := c.execute(t, asha, "three")

	for _, cookie := range []string{rootCookie, boot.withCookie()} {
		var access struct{ Admin bool }
		c.do("GET", "/api/console/access", cookie, nil).json(t, &access)
		if !access.Admin {
			t.Error("an operator is not told they are one")
		}
	}

	type page struct {
		Executions []consoleRow
		Next       string
	}
	var all page
	r := c.do("GET", "/api/console/executions", rootCookie, nil)
	r.json(t, &all)
	if r.status != 200 || len(all.Executions) != 3 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	ids := map[string]consoleRow{}
	for _, row := range all.Executions {
		ids[row.ID] = row
	}
	if ids[x1].UserEmail != asha.Email || ids[x2].UserEmail != bo.Email || ids[x1].OutboxID != ob1 || ids[x1].Status != "succeeded" || ids[x1].DurationMS == nil {
		t.Errorf("rows: %+v", all.Executions)
	}

	var mine page
	c.do("GET", "/api/console/executions?user="+asha.Email, boot.withCookie(), nil).json(t, &mine)
	if len(mine.Executions) != 2 || mine.Executions[0].UserID != asha.ID || mine.Executions[1].UserID != asha.ID {
		t.Errorf("user filter: %+v", mine.Executions)
	}
	var none page
	c.do("GET", "/api/console/executions?status=failed", rootCookie, nil).json(t, &none)
	if len(none.Executions) != 0 {
		t.Errorf("status filter: %+v", none.Executions)
	}
	var future page
	c.do("GET", "/api/console/executions?since="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), rootCookie, nil).json(t, &future)
	if len(future.Executions) != 0 {
		t.Errorf("since filter: %+v", future.Executions)
	}
	// Paging: two, then the rest, nothing twice.
	var p1, p2 page
	c.do("GET", "/api/console/executions?limit=2", rootCookie, nil).json(t, &p1)
	if len(p1.Executions) != 2 || p1.Next == "" {
		t.Fatalf("page 1: %+v", p1)
	}
	c.do("GET", "/api/console/executions?limit=2&cursor="+p1.Next, rootCookie, nil).json(t, &p2)
	if len(p2.Executions) != 1 || p2.Next != "" || p2.Executions[0].ID == p1.Executions[0].ID || p2.Executions[0].ID == p1.Executions[1].ID {
		t.Errorf("page 2: %+v after %+v", p2, p1)
	}
	for _, bad := range []string{"limit=0", "limit=101", "cursor=x", "since=yesterday", "status=done"} {
		if r := c.do("GET", "/api/console/executions?"+bad, rootCookie, nil); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d", bad, r.status)
		}
	}

	var detail struct {
		Task    struct{ ID, Name string }
		Agent   struct{ ID, Name string }
		Message consoleMessage
		Steps   []struct {
			Name, Type, Transition string
			DurationMS             int64
			Input, Output          map[string]any
		}
	}
	r = c.do("GET", "/api/console/executions/"+x3, rootCookie, nil)
	r.json(t, &detail)
	if detail.Task.ID != c.taskID || detail.Task.Name != "echo" || detail.Agent.Name != "Jadugar" || detail.Message.Content != "three" ||
		detail.Message.UserEmail != asha.Email {
		t.Errorf("detail: %s", r.body)
	}
	var names []string
	for _, s := range detail.Steps {
		names = append(names, s.Name+"/"+s.Type)
	}
	if got := strings.Join(names, ","); got != "start/init,compute/evaluate,main[1] evaluate/evaluate" {
		t.Errorf("steps: %s\n%s", got, r.body)
	}
	if len(detail.Steps) == 3 {
		if detail.Steps[1].Output["x"] != "three!" || detail.Steps[1].Output["token"] != "[redacted]" || detail.Steps[2].Input["x"] != "three!" {
			t.Errorf("step input/output: %+v", detail.Steps)
		}
	}
	if strings.Contains(string(r.body), "sk-secret") {
		t.Error("a secret-named value is shown")
	}

	// Re-run sends the message again for its person, linked.
	var rerun struct{ ID, RerunOf string }
	r = c.do("POST", "/api/console/executions/"+x1+"/rerun", rootCookie, nil, "Origin", testOrigin)
	r.json(t, &rerun)
	if r.status != http.StatusAccepted || rerun.RerunOf != ob1 {
		t.Fatalf("rerun: %d %s", r.status, r.body)
	}
	m, err := c.store.Message(context.Background(), rerun.ID)
	if err != nil || m.UserID != asha.ID || m.Content != "one" || m.Metadata["rerunOf"] != ob1 {
		t.Errorf("re-run message: %+v %v", m, err)
	}
	// Cancel of a finished execution: a clear conflict, not a crash.
	if r := c.do("POST", "/api/console/executions/"+x1+"/cancel", rootCookie, nil, "Origin", testOrigin); r.status == http.StatusOK || r.status >= 500 {
		t.Errorf("cancel of a finished execution: %d %s", r.status, r.body)
	}
}
