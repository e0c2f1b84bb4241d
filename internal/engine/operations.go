package engine

import "strings"

// Operation is one operation of Julep v1's published spec
// (openapi-1.0.0.yaml at julep-ai/julep 5371a620, 78 operations), written
// out here by hand so the coverage test runs where the spec file is absent.
// NotBuilt operations are answered 501 with a JSON error naming them;
// every other one is served.
type Operation struct {
	Method, Path, ID string
	NotBuilt         bool
}

// Operations is every operation of the spec, in the spec's order.
var Operations = []Operation{
	{"GET", "/agents", "AgentsRoute_list", false},
	{"POST", "/agents", "AgentsRoute_create", false},
	{"GET", "/agents/models", "AgentsRoute_listModels", true},
	{"POST", "/agents/{id}", "AgentsRoute_createOrUpdate", false},
	{"PUT", "/agents/{id}", "AgentsRoute_update", false},
	{"PATCH", "/agents/{id}", "AgentsRoute_patch", false},
	{"DELETE", "/agents/{id}", "AgentsRoute_delete", false},
	{"GET", "/agents/{id}", "AgentsRoute_get", false},
	{"POST", "/agents/{id}/docs", "AgentDocsRoute_create", false},
	{"GET", "/agents/{id}/docs", "AgentDocsRoute_list", false},
	{"DELETE", "/agents/{id}/docs", "AgentDocsRoute_deleteBulk", false},
	{"DELETE", "/agents/{id}/docs/{child_id}", "AgentDocsRoute_delete", false},
	{"POST", "/agents/{id}/search", "AgentsDocsSearchRoute_search", false},
	{"GET", "/agents/{id}/secrets", "AgentSecretsRoute_list", true},
	{"POST", "/agents/{id}/secrets", "AgentSecretsRoute_create", true},
	{"PUT", "/agents/{id}/secrets/{child_id}", "AgentSecretsRoute_update", true},
	{"DELETE", "/agents/{id}/secrets/{child_id}", "AgentSecretsRoute_delete", true},
	{"GET", "/agents/{id}/tasks", "TasksRoute_list", false},
	{"POST", "/agents/{id}/tasks", "TasksRoute_create", false},
	{"PUT", "/agents/{id}/tasks/{child_id}", "TasksRoute_update", false},
	{"PATCH", "/agents/{id}/tasks/{child_id}", "TasksRoute_patch", true},
	{"DELETE", "/agents/{id}/tasks/{child_id}", "TasksRoute_delete", true},
	{"GET", "/agents/{id}/tools", "AgentToolsRoute_list", false},
	{"POST", "/agents/{id}/tools", "AgentToolsRoute_create", false},
	{"PUT", "/agents/{id}/tools/{child_id}", "AgentToolsRoute_update", false},
	{"PATCH", "/agents/{id}/tools/{child_id}", "AgentToolsRoute_patch", false},
	{"DELETE", "/agents/{id}/tools/{child_id}", "AgentToolsRoute_delete", false},
	{"POST", "/agents/{parent_id}/tasks/{id}", "TasksCreateOrUpdateRoute_createOrUpdate", false},
	{"GET", "/docs/{id}", "IndividualDocsRoute_get", false},
	{"POST", "/embed", "EmbedRoute_embed", false},
	{"POST", "/executions", "ExecutionsRoute_resumeWithTaskToken", true},
	{"GET", "/executions/{id}", "ExecutionsRoute_get", false},
	{"PUT", "/executions/{id}", "ExecutionsRoute_update", false},
	{"GET", "/executions/{id}/status.stream", "ExecutionStatusStreamRoute_stream", false},
	{"GET", "/executions/{id}/transitions", "ExecutionTransitionsRoute_list", false},
	{"GET", "/executions/{id}/transitions.stream", "ExecutionTransitionsStreamRoute_stream", true},
	{"POST", "/files", "FilesRoute_create", true},
	{"GET", "/files/{id}", "FilesRoute_get", true},
	{"GET", "/jobs/{id}", "JobRoute_get", true},
	{"GET", "/projects", "ProjectsRoute_list", true},
	{"POST", "/projects", "ProjectsRoute_create", true},
	{"POST", "/projects/{id}", "ProjectsRoute_createOrUpdate", true},
	{"PUT", "/projects/{id}", "ProjectsRoute_update", true},
	{"PATCH", "/projects/{id}", "ProjectsRoute_patch", true},
	{"DELETE", "/projects/{id}", "ProjectsRoute_delete", true},
	{"GET", "/projects/{id}", "ProjectsRoute_get", true},
	{"POST", "/responses", "ResponsesRoute_createResponse", true},
	{"GET", "/responses/{id}", "ResponsesRoute_getResponse", true},
	{"GET", "/secrets/{id}", "DeveloperSecretsRoute_list", false},
	{"POST", "/secrets/{id}", "DeveloperSecretsRoute_create", false},
	{"PUT", "/secrets/{id}/{child_id}", "DeveloperSecretsRoute_update", false},
	{"DELETE", "/secrets/{id}/{child_id}", "DeveloperSecretsRoute_delete", false},
	{"GET", "/sessions", "SessionsRoute_list", false},
	{"POST", "/sessions", "SessionsRoute_create", false},
	{"POST", "/sessions/{id}", "SessionsRoute_createOrUpdate", false},
	{"PUT", "/sessions/{id}", "SessionsRoute_update", false},
	{"PATCH", "/sessions/{id}", "SessionsRoute_patch", false},
	{"DELETE", "/sessions/{id}", "SessionsRoute_delete", false},
	{"GET", "/sessions/{id}", "SessionsRoute_get", false},
	{"POST", "/sessions/{id}/chat", "ChatRoute_generate", false},
	{"DELETE", "/sessions/{id}/history", "HistoryRoute_delete", false},
	{"GET", "/sessions/{id}/history", "HistoryRoute_history", false},
	{"POST", "/sessions/{id}/render", "RenderRoute_render", false},
	{"GET", "/tasks/{id}", "TasksGetRoute_get", false},
	{"POST", "/tasks/{id}/executions", "TaskExecutionsRoute_create", false},
	{"GET", "/tasks/{id}/executions", "TaskExecutionsRoute_list", false},
	{"GET", "/users", "UsersRoute_list", false},
	{"POST", "/users", "UsersRoute_create", false},
	{"POST", "/users/{id}", "UsersRoute_createOrUpdate", false},
	{"PUT", "/users/{id}", "UsersRoute_update", false},
	{"PATCH", "/users/{id}", "UsersRoute_patch", false},
	{"DELETE", "/users/{id}", "UsersRoute_delete", false},
	{"GET", "/users/{id}", "UsersRoute_get", false},
	{"POST", "/users/{id}/docs", "UserDocsRoute_create", false},
	{"GET", "/users/{id}/docs", "UserDocsRoute_list", false},
	{"DELETE", "/users/{id}/docs", "UserDocsRoute_deleteBulk", false},
	{"DELETE", "/users/{id}/docs/{child_id}", "UserDocsRoute_delete", false},
	{"POST", "/users/{id}/search", "UserDocsSearchRoute_search", false},
}

// matchOperation finds the spec operation a request names: segments match
// literally or fill a {param}; a literal match wins over a param (so
// /agents/models is not /agents/{id}).
func matchOperation(method, path string) (Operation, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	best, bestLit := Operation{}, -1
	for _, op := range Operations {
		if op.Method != method {
			continue
		}
		ps := strings.Split(strings.Trim(op.Path, "/"), "/")
		if len(ps) != len(segs) {
			continue
		}
		lit, ok := 0, true
		for i, p := range ps {
			switch {
			case strings.HasPrefix(p, "{"):
			case p == segs[i]:
				lit++
			default:
				ok = false
			}
		}
		if ok && lit > bestLit {
			best, bestLit = op, lit
		}
	}
	return best, bestLit >= 0
}
