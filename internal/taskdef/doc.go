// Package taskdef loads and checks Julep task definitions: the julep.yaml
// manifest, agent and task YAML, and the julep-lock.json lock file of the
// `astra tasks` deploy tool. Every problem is an Issue that names the file,
// line, column and YAML path, and the same checks run on JSON task bodies
// (ValidateDefinition) so the embedded engine rejects at create what Julep
// would.
package taskdef
