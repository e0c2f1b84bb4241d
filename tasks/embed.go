// Package tasks embeds Astra's Julep project (the manifest, its lock file,
// the agent and the responder task) so `astra serve` can deploy it to the
// embedded engine from any working directory.
package tasks

import "embed"

// FS holds the project files, laid out as in this directory.
//
//go:embed julep.yaml julep-lock.json responder.yaml agents/*.yaml
var FS embed.FS
