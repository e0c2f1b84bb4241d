package engine

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound is returned by a State when a record does not exist.
var ErrNotFound = errors.New("engine: not found")

// ErrConflict is returned by State.Advance when the execution is no longer in
// one of the statuses the caller expected (it was cancelled, or another
// worker moved it on) or the writer's lease was taken over, so the caller
// must stop instead of overwriting. Claims and fenced writes return it too.
var ErrConflict = errors.New("engine: execution status changed")

// Resource kinds kept by State.PutResource and friends.
const (
	KindUser   = "user"
	KindAgent  = "agent"
	KindDoc    = "doc"
	KindSecret = "secret"
)

// Resource is a user, agent, doc or secret: a JSON document with the few
// fields the engine queries by. Body holds the whole public JSON object.
type Resource struct {
	Kind      string
	ID        string
	Parent    string // a doc's owner (user id); empty otherwise
	CreatedAt time.Time
	UpdatedAt time.Time
	Metadata  map[string]any
	Body      json.RawMessage
}

// ListQuery selects a page of records under one parent.
type ListQuery struct {
	Kind           string
	Parent         string            // "" lists every record of the kind
	MetadataFilter map[string]string // text equality on metadata.<key>, ANDed
	SortBy         string            // created_at | updated_at
	Desc           bool
	Limit          int // 0: no limit
	Offset         int
}

// Task is one stored version of a task definition.
type Task struct {
	ID        string
	AgentID   string
	Version   int
	CreatedAt time.Time // of the first version
	UpdatedAt time.Time // of this version
	Metadata  map[string]any
	Body      json.RawMessage // the definition as given (name, main, tools, ...)
}

// Execution is the durable record of one run of a task version. Checkpoint
// is the executor's private resume point; it is never served.
type Execution struct {
	ID              string
	TaskID          string
	TaskVersion     int
	Status          string
	Input           map[string]any
	Output          any
	Error           string
	TransitionCount int
	Metadata        map[string]any
	CreatedAt       time.Time
	UpdatedAt       time.Time
	Checkpoint      json.RawMessage

	// The lease: the engine instance running the execution, the fencing
	// token of its claim (unique per claim) and when the lease runs out
	// unless extended. Empty owner and token, zero until: nobody runs it.
	LeaseOwner string
	LeaseToken string
	LeaseUntil time.Time

	// Crashes counts the claims in a row that took the execution over from
	// a lease that ran out while it was starting or running (its owner
	// stopped mid-step), with no step committed in between. Claims
	// increment it; Advance writes it as given (the executor resets it
	// when a step commits). It lets an execution that kills its owner be
	// failed instead of resumed for ever.
	Crashes int

	// TraceParent is the W3C traceparent of the request that created the
	// execution, so whichever engine instance runs it (or resumes it after
	// a hand-off) continues the caller's trace. Empty: a trace of its own.
	TraceParent string
}

// Fence names the claim a write is made under: the write happens only while
// execution ExecutionID still holds lease Token.
type Fence struct {
	ExecutionID string
	Token       string
}

// Cursor names a position in a task: a workflow, a step index and a scope.
type Cursor struct {
	Workflow string `json:"workflow"`
	Step     int    `json:"step"`
	ScopeID  string `json:"scope_id"`
}

// Transition is one entry of an execution's log.
type Transition struct {
	ID          string
	ExecutionID string
	Seq         int // 1-based position in the execution's log
	Type        string
	Output      any
	Current     Cursor
	Next        *Cursor
	StepLabel   string
	Metadata    map[string]any
	CreatedAt   time.Time
}

// State is the engine's persistence. Implementations must make Advance
// atomic: the execution row and its new transitions are written together or
// not at all, which is what makes the executor restart-safe.
//
// Several engines may share one State. An execution is run only by the
// engine holding its lease: claims are atomic, and every write a run makes
// presents the claim's token, so a run that lost its lease writes nothing.
type State interface {
	// PutResource creates or replaces a resource; concurrent puts of one id
	// all succeed (the last one wins).
	PutResource(ctx context.Context, r Resource) error
	GetResource(ctx context.Context, kind, id string) (Resource, error)
	ListResources(ctx context.Context, q ListQuery) ([]Resource, error)
	DeleteResource(ctx context.Context, kind, id string) error
	// PutResourceFenced is PutResource made by a running execution: it
	// writes only while f.ExecutionID's lease token is f.Token, else it
	// returns ErrConflict.
	PutResourceFenced(ctx context.Context, r Resource, f Fence) error
	// DeleteResourceFenced is DeleteResource under a fence, as
	// PutResourceFenced.
	DeleteResourceFenced(ctx context.Context, kind, id string, f Fence) error

	// PutTask stores t as a new version of t.ID (Version is assigned and
	// returned; CreatedAt is kept from the first version). When t's body,
	// agent and metadata equal the latest version's, that version is
	// returned instead and nothing is written, also when several callers
	// put the same definition at once.
	PutTask(ctx context.Context, t Task) (Task, error)
	// GetTask returns the given version, or the latest when version is 0.
	GetTask(ctx context.Context, id string, version int) (Task, error)
	// ListTasks lists the latest version of each task of q.Parent (an agent).
	ListTasks(ctx context.Context, q ListQuery) ([]Task, error)

	// CreateExecution inserts e, with its lease when e.LeaseToken is set.
	CreateExecution(ctx context.Context, e Execution) error
	GetExecution(ctx context.Context, id string) (Execution, error)
	// ListExecutions lists the executions of task q.Parent.
	ListExecutions(ctx context.Context, q ListQuery) ([]Execution, error)
	// ExecutionsByStatus lists executions in any of the statuses (for recovery).
	ExecutionsByStatus(ctx context.Context, statuses ...string) ([]Execution, error)
	// Advance writes e (all fields but ID, TaskID, TaskVersion, CreatedAt
	// and the lease; Crashes included) and appends trs, only if the stored status is one of
	// from and the stored transition count is the one trs continue;
	// otherwise it returns ErrConflict and writes nothing. When
	// e.LeaseToken is set (a run writing under its claim) the stored token
	// must equal it too, and the lease is kept; when it is empty (the API,
	// which holds no lease) the lease is cleared, so any engine may claim
	// the execution at once.
	Advance(ctx context.Context, e Execution, from []string, trs []Transition) error
	// ListTransitions pages an execution's log ordered by Seq.
	ListTransitions(ctx context.Context, executionID string, limit, offset int, desc bool) ([]Transition, error)

	// ClaimExecution gives execution id to owner under token until the
	// given time, if it is queued, starting or running and has no lease or
	// one that ran out by now; otherwise it returns ErrConflict. It returns
	// the claimed execution. Taking over a lease that ran out (one not
	// released) of a starting or running execution increments Crashes.
	ClaimExecution(ctx context.Context, id, owner, token string, until, now time.Time) (Execution, error)
	// ClaimExecutions claims up to limit claimable executions (as
	// ClaimExecution), oldest first, each under a fresh token of its own.
	ClaimExecutions(ctx context.Context, owner string, now, until time.Time, limit int) ([]Execution, error)
	// ExtendLease moves the lease of claim token on to until; ErrConflict
	// when the execution no longer holds that token.
	ExtendLease(ctx context.Context, id, token string, until time.Time) error
	// LeaseToken reads the token of execution id's lease ("" when nobody
	// holds it): a cheap read a run repeats often to notice at once that it
	// was cancelled or taken over (ErrNotFound when there is no such
	// execution).
	LeaseToken(ctx context.Context, id string) (string, error)
	// ReleaseLease clears the lease of claim token so another engine can
	// claim the execution at once; ErrConflict when it no longer holds it.
	ReleaseLease(ctx context.Context, id, token string) error
}

// Claimable are the statuses an engine may claim an execution in.
var Claimable = []string{StatusQueued, StatusStarting, StatusRunning}
