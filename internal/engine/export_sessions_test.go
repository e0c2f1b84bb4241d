package engine

// RenderTemplate and DefaultSystemTemplate expose the chat template
// renderer to the external tests.
var (
	RenderTemplate        = renderTemplate
	DefaultSystemTemplate = defaultSystemTemplate
)
