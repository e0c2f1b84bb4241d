package julep

import (
	"strings"

	"github.com/astra-app/astra/internal/julep/julepapi"
)

// The wire types are the generated ones, aliased so callers need one import
// and the embedded engine (which uses julepapi directly) shares them.
type (
	User              = julepapi.User
	UserInput         = julepapi.UserInput
	Agent             = julepapi.Agent
	AgentInput        = julepapi.AgentInput
	Instructions      = julepapi.Instructions
	Task              = julepapi.Task
	TaskInput         = julepapi.TaskInput
	Step              = julepapi.Step
	Execution         = julepapi.Execution
	ExecutionStatus   = julepapi.ExecutionStatus
	Transition        = julepapi.Transition
	TransitionType    = julepapi.TransitionType
	TransitionTarget  = julepapi.TransitionTarget
	StatusEvent       = julepapi.ExecutionStatusEvent
	Delta             = julepapi.ExecutionDelta
	Doc               = julepapi.Doc
	DocInput          = julepapi.DocInput
	DocContent        = julepapi.DocContent
	DocSearchRequest  = julepapi.DocSearchRequest
	DocSearchResponse = julepapi.DocSearchResponse
	DocReference      = julepapi.DocReference
	Secret            = julepapi.Secret
	SecretInput       = julepapi.SecretInput
	Metadata          = julepapi.Metadata
)

// Execution statuses.
const (
	StatusQueued        = julepapi.ExecutionStatusQueued
	StatusStarting      = julepapi.ExecutionStatusStarting
	StatusRunning       = julepapi.ExecutionStatusRunning
	StatusAwaitingInput = julepapi.ExecutionStatusAwaitingInput
	StatusSucceeded     = julepapi.ExecutionStatusSucceeded
	StatusFailed        = julepapi.ExecutionStatusFailed
	StatusCancelled     = julepapi.ExecutionStatusCancelled
)

// IsTerminal reports whether an execution in status s will not change again.
func IsTerminal(s ExecutionStatus) bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled
}

// StatusOfTransition is the execution status a transition of type t leads to.
func StatusOfTransition(t TransitionType) ExecutionStatus {
	switch t {
	case julepapi.TransitionTypeInit:
		return StatusStarting
	case julepapi.TransitionTypeWait:
		return StatusAwaitingInput
	case julepapi.TransitionTypeFinish:
		return StatusSucceeded
	case julepapi.TransitionTypeError:
		return StatusFailed
	case julepapi.TransitionTypeCancelled:
		return StatusCancelled
	default: // init_branch, step, resume, finish_branch
		return StatusRunning
	}
}

// InstructionList makes an agent's instructions from a list.
func InstructionList(items ...string) Instructions {
	var in Instructions
	_ = in.FromInstructions1(append([]string{}, items...)) // a []string always marshals
	return in
}

// TextContent makes a doc's content from one string.
func TextContent(s string) DocContent {
	var c DocContent
	_ = c.FromDocContent0(s) // a string always marshals
	return c
}

// ChunkedContent makes a doc's content from chunks, each embedded on its own.
func ChunkedContent(chunks ...string) DocContent {
	var c DocContent
	_ = c.FromDocContent1(append([]string{}, chunks...))
	return c
}

// ContentText returns a doc's content as one string, chunks joined by
// newlines, whichever form it was stored in.
func ContentText(c DocContent) string {
	if s, err := c.AsDocContent0(); err == nil {
		return s
	}
	if chunks, err := c.AsDocContent1(); err == nil {
		return strings.Join(chunks, "\n")
	}
	return ""
}
