package engine

// RenderTemplate and DefaultSystemTemplate expose the chat template
// renderer to the external tests.
var (
	RenderTemplate        = renderTemplate
	DefaultSystemTemplate = defaultSystemTemplate
)

// EncodeVectors and DecodeVectors expose the doc vectors' storage form.
var (
	EncodeVectors = encodeVectors
	DecodeVectors = decodeVectors
)

// CheckTemplate exposes the template limits' source check.
var CheckTemplate = checkTemplate
