package engine_test

import "testing"

// A task drives sessions and agent docs through system tools with the
// argument shapes of Julep's execute_system.
func TestSessionAndAgentDocSystemTools(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := e.agent(map[string]any{"name": "Ada"})
	sys := func(name, resource, sub, op string) map[string]any {
		s := map[string]any{"resource": resource, "operation": op}
		if sub != "" {
			s["subresource"] = sub
		}
		return map[string]any{"name": name, "type": "system", "system": s}
	}
	task := e.task(agent, map[string]any{"name": "systools",
		"tools": []any{
			sys("add_doc", "agent", "doc", "create"), sys("find_docs", "agent", "doc", "search"),
			sys("new_session", "session", "", "create"), sys("talk", "session", "", "chat"),
			sys("history", "session", "", "history"), sys("get_agent", "agent", "", "get"),
		},
		"main": []any{
			map[string]any{"tool": "add_doc", "arguments": map[string]any{"agent_id": "$ _.agent", "data": map[string]any{"title": "manual", "content": "press the red button"}}},
			map[string]any{"tool": "find_docs", "arguments": map[string]any{"agent_id": "$ steps[0].input.agent", "search_params": map[string]any{"text": "red button", "limit": 3}}},
			map[string]any{"tool": "new_session", "arguments": map[string]any{"agent": "$ steps[0].input.agent", "situation": "from a task"}},
			map[string]any{"tool": "talk", "arguments": map[string]any{"session_id": "$ _.id", "messages": []any{map[string]any{"role": "user", "content": "hello"}}}},
			map[string]any{"tool": "history", "arguments": map[string]any{"session_id": "$ steps[2].output.id"}},
			map[string]any{"tool": "get_agent", "arguments": map[string]any{"agent_id": "$ steps[0].input.agent"}},
			map[string]any{"return": map[string]any{
				"found":    "$ steps[1].output['docs'][0]['title']",
				"reply":    "$ steps[3].output['choices'][0]['message']['content']",
				"entries":  "$ len(steps[4].output['entries'])",
				"situated": "$ steps[2].output['situation']",
				"agent":    "$ _.name",
			}},
		}})
	out := succeeded(t, e.run(task, map[string]any{"agent": agent}))
	if out["found"] != "manual" || out["entries"] != float64(2) || out["situated"] != "from a task" || out["agent"] != "Ada" || out["reply"] == "" {
		t.Fatalf("system tools: %v", jsonString(out))
	}
	if n := len(e.must(200, "GET", "/sessions", nil)["items"].([]any)); n != 1 {
		t.Fatalf("sessions after the run: %d", n)
	}
}
