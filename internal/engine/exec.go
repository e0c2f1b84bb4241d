package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// checkpoint is an execution's resume point, written with every transition.
type checkpoint struct {
	Step    int            `json:"step"`    // the next step of main to run
	Steps   []stepRecord   `json:"steps"`   // the completed steps of main
	Last    any            `json:"last"`    // `_` for the next step
	State   map[string]any `json:"state"`   // set/get values
	Waiting string         `json:"waiting"` // the pause path the execution awaits input at
	Resumes map[string]any `json:"resumes"` // inputs given to pauses of the current step
	// The budget used by the steps committed so far (see Options).
	StepsRun int   `json:"steps_run"`
	RunNanos int64 `json:"run_ns"` // running time, not counting pauses

	// links holds what the compact form wrote as references, until
	// resolve replaces them with values (see checkpoint.go).
	links *ckLinks
}

type stepRecord struct {
	Input  any    `json:"input"`
	Output any    `json:"output"`
	Label  string `json:"label,omitempty"`
	// Ref is the seq of the transition that holds Output unredacted (0:
	// none); the compact checkpoint then refers to it instead of repeating
	// it with every later step.
	Ref int `json:"-"`
}

// pause stops the execution until PUT /executions/{id} resumes it; Path
// names where, so the step's replay hands the resume input back there.
type pause struct {
	Path string
	Info any
}

func (p *pause) Error() string { return "paused at " + p.Path }

// returned unwinds a `return` step to the workflow that runs it.
type returned struct{ Value any }

func (r *returned) Error() string { return "return" }

// execute runs an execution from its checkpoint until it finishes, fails,
// pauses, is cancelled, or the engine shuts down (which leaves it resumable).
// ex is the execution as this run's claim returned it (its lease token
// fences every write the run makes).
func (e *Engine) execute(ctx context.Context, ex Execution, r *run) {
	if terminal(ex.Status) || ex.Status == StatusAwaitingInput {
		return
	}
	e.changes.track(ex)
	ctx, endRun := e.startRun(ctx, &ex)
	defer endRun()
	if ex.Crashes >= poisonCrashes {
		// Whatever it runs stops its owner (out of memory, say): running
		// it again would only stop the next one.
		e.fail(ctx, &ex, nil, fmt.Sprintf("execution failed: it was running when its owner stopped %d times in a row", ex.Crashes))
		return
	}
	var x *executor
	defer func() {
		// A bug in a step must fail its execution, not stop the process
		// (and every other execution in it).
		if v := recover(); v != nil {
			e.log.Error("engine: execution panicked", "execution_id", ex.ID, "panic", v, "stack", string(debug.Stack()))
			if ctx.Err() == nil {
				e.fail(ctx, &ex, x, fmt.Sprintf("execution failed: panic: %v", v))
			}
		}
	}()
	x, err := e.prepare(ctx, &ex, r)
	if err != nil {
		if ctx.Err() == nil {
			e.fail(ctx, &ex, nil, fmt.Sprintf("execution %s cannot start: %v", ex.ID, err))
		}
		return
	}
	x.run(ctx)
}

// poisonCrashes is how many times in a row an execution may be running
// when its owner stops before it is failed instead of resumed.
const poisonCrashes = 3

// executor holds one execution's loaded context.
type executor struct {
	e       *Engine
	ex      *Execution
	def     map[string]any
	task    map[string]any
	agent   map[string]any
	secrets map[string]string
	ck      checkpoint
	r       *run
	stateMu sync.Mutex
	mem     memo // conversions of the run's unchanging values
	// docCalls counts each step path's doc creates in this run (under
	// stateMu), for the docs' deterministic ids.
	docCalls map[string]int
	// stepsRun counts the steps run, those of committed steps included;
	// runStart is when this run began, for the time budget.
	stepsRun atomic.Int64
	runStart time.Time
	// rootBranches are the branch transitions of the main step running now.
	rootBranches branchBuf
}

func (e *Engine) prepare(ctx context.Context, ex *Execution, r *run) (*executor, error) {
	t, err := e.taskVersion(ctx, ex.TaskID, ex.TaskVersion)
	if err != nil {
		return nil, fmt.Errorf("load task %s version %d: %w", ex.TaskID, ex.TaskVersion, err)
	}
	x := &executor{e: e, ex: ex, r: r}
	if err := json.Unmarshal(t.Body, &x.def); err != nil {
		return nil, fmt.Errorf("decode task %s: %w", t.ID, err)
	}
	x.task = map[string]any{"id": t.ID, "name": x.def["name"], "description": x.def["description"],
		"metadata": t.Metadata, "input_schema": x.def["input_schema"]}
	x.agent = map[string]any{}
	if t.AgentID != "" {
		if x.agent, err = e.agentBody(ctx, t.AgentID); err != nil {
			return nil, err
		}
	}
	if x.secrets, err = e.secretValues(ctx); err != nil {
		return nil, err
	}
	if len(ex.Checkpoint) > 0 {
		raw, err := e.openCheckpoint(ex.ID, ex.Checkpoint)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &x.ck); err != nil {
			return nil, fmt.Errorf("decode checkpoint: %w", err)
		}
		if err := x.ck.resolve(ctx, ex, e.state); err != nil {
			return nil, fmt.Errorf("decode checkpoint: %w", err)
		}
	} else {
		x.ck = checkpoint{Last: ex.Input}
	}
	if x.ck.State == nil {
		x.ck.State = map[string]any{}
	}
	x.stepsRun.Store(int64(x.ck.StepsRun))
	x.runStart = time.Now()
	return x, nil
}

// advance persists the execution with new transitions; ErrConflict means
// someone else (a cancel) changed the status and this run must stop.
func (x *executor) advance(ctx context.Context, status string, trs ...Transition) error {
	ck, err := x.storedCheckpoint()
	if err != nil {
		return err
	}
	now := x.e.now()
	next := *x.ex
	next.Status, next.UpdatedAt, next.Checkpoint = status, now, ck
	next.Crashes = 0 // progress was made: its owner did not stop in this stretch
	for i := range trs {
		next.TransitionCount++
		trs[i].ID, trs[i].ExecutionID, trs[i].Seq, trs[i].CreatedAt = newID(), x.ex.ID, next.TransitionCount, now
		trs[i].Output = redactValue(trs[i].Output, x.secrets)
		scope(&trs[i], x.ex.ID)
	}
	next.Output = redactValue(next.Output, x.secrets)
	if err := x.e.state.Advance(ctx, next, []string{StatusQueued, StatusStarting, StatusRunning}, trs); err != nil {
		return err
	}
	*x.ex = next
	x.e.changes.publish(*x.ex)
	return nil
}

// storedCheckpoint is the checkpoint as it is written: encoded, and
// sealed when it holds a secret.
func (x *executor) storedCheckpoint() ([]byte, error) {
	raw, err := x.encodeCheckpoint()
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return x.e.sealCheckpoint(x.ex.ID, raw, x.secrets)
}

func (x *executor) steps(name string) ([]any, bool) {
	l, ok := x.def[name].([]any)
	return l, ok
}

// julepStepType is the class name Julep v1 gives a step of this kind, which
// its transitions carry as metadata.step_type (transition.py).
func julepStepType(step map[string]any) string {
	switch stepKind(step) {
	case "prompt":
		return "PromptStep"
	case "tool":
		return "ToolCallStep"
	case "evaluate":
		return "EvaluateStep"
	case "if":
		return "IfElseWorkflowStep"
	case "switch":
		return "SwitchStep"
	case "foreach":
		return "ForeachStep"
	case "over":
		return "MapReduceStep"
	case "parallel":
		return "ParallelStep"
	case "get":
		return "GetStep"
	case "set":
		return "SetStep"
	case "log":
		return "LogStep"
	case "return":
		return "ReturnStep"
	case "sleep":
		return "SleepStep"
	case "wait_for_input":
		return "WaitForInputStep"
	case "workflow", "yield":
		return "YieldStep"
	case "error":
		return "ErrorWorkflowStep"
	}
	return ""
}

// branchBuf collects the branch transitions written inside one child
// workflow (or, at the root, inside the main step running now).
type branchBuf struct {
	mu  sync.Mutex
	trs []Transition
}

type branchKey struct{}

func (x *executor) bufOf(ctx context.Context) *branchBuf {
	if b, ok := ctx.Value(branchKey{}).(*branchBuf); ok {
		return b
	}
	return &x.rootBranches
}

// inBranch runs fn as the child workflow Julep would start here (an if
// branch, a switch case, a foreach or map item, a workflow call): its
// init_branch and finish_branch transitions, with those of the branches
// inside it between them, are written with the main step that ran them, in
// one commit, so a replayed step never writes them twice. Each child's
// transitions stay together even when siblings run in parallel.
func (x *executor) inBranch(ctx context.Context, workflow string, input any, fn func(context.Context) (any, any, int, error)) (any, error) {
	buf := &branchBuf{}
	out, lastStep, last, err := fn(context.WithValue(ctx, branchKey{}, buf))
	if err != nil {
		return out, err
	}
	c := Cursor{Workflow: workflow, Step: 0}
	sm, _ := lastStep.(map[string]any)
	trs := make([]Transition, 0, len(buf.trs)+2)
	trs = append(trs, Transition{Type: "init_branch", Output: redactValue(input, x.secrets), Current: c, Next: &c, Metadata: map[string]any{}})
	trs = append(trs, buf.trs...)
	trs = append(trs, Transition{Type: "finish_branch", Output: redactValue(out, x.secrets),
		Current: Cursor{Workflow: workflow, Step: last}, Metadata: map[string]any{"step_type": julepStepType(sm)}})
	parent := x.bufOf(ctx)
	parent.mu.Lock()
	parent.trs = append(parent.trs, trs...)
	parent.mu.Unlock()
	return out, nil
}

func (x *executor) takeBranches() []Transition {
	x.rootBranches.mu.Lock()
	defer x.rootBranches.mu.Unlock()
	b := x.rootBranches.trs
	x.rootBranches.trs = nil
	return b
}

func (x *executor) run(ctx context.Context) {
	main, _ := x.steps("main")
	if x.ex.Status == StatusQueued {
		if err := x.advance(ctx, StatusStarting, Transition{Type: "init", Output: x.ex.Input,
			Current: Cursor{Workflow: "main", Step: 0}, Next: &Cursor{Workflow: "main", Step: 0}}); err != nil {
			x.stop(ctx, err)
			return
		}
	}
	left := x.e.limits.duration - time.Duration(x.ck.RunNanos)
	if left <= 0 {
		x.e.fail(ctx, x.ex, x, outOfTime(x.e.limits.duration))
		return
	}
	// The steps run under the time budget; commits under ctx alone.
	stepCtx, cancel := context.WithTimeoutCause(ctx, left, errOutOfTime)
	defer cancel()
	for x.ck.Step < len(main) {
		i := x.ck.Step
		step, _ := main[i].(map[string]any)
		label, _ := step["label"].(string)
		input := x.ck.Last
		x.takeBranches() // a step replayed after a pause records its branches again
		f := &frame{x: x, workflow: "main", history: x.ck.Steps, current: input, index: i}
		out, err := f.step(stepCtx, step, input, fmt.Sprintf("main.%d", i))
		var ret *returned
		final := i == len(main)-1
		if errors.As(err, &ret) {
			out, final, err = ret.Value, true, nil
		}
		if err == nil {
			err = x.checkOutput(out)
		}
		if err != nil {
			var p *pause
			if errors.As(err, &p) {
				x.ck.Waiting = p.Path
				x.ck.RunNanos = int64(x.spent())
				if err := x.advance(ctx, StatusAwaitingInput, Transition{Type: "wait", Output: p.Info,
					Current: Cursor{Workflow: "main", Step: i}, Next: &Cursor{Workflow: "main", Step: i}, StepLabel: label}); err != nil {
					x.stop(ctx, err)
				}
				return
			}
			if ctx.Err() == nil && errors.Is(context.Cause(stepCtx), errOutOfTime) {
				x.e.fail(ctx, x.ex, x, outOfTime(x.e.limits.duration))
				return
			}
			if ctx.Err() != nil || errors.Is(err, ErrConflict) {
				// Interrupted, or a write of the step was refused: the
				// lease was lost or the execution cancelled.
				x.stop(ctx, context.Canceled)
				return
			}
			x.e.fail(ctx, x.ex, x, fmt.Sprintf("workflow %q, step %s: %v", "main", stepName(i, label), err))
			return
		}
		tr := Transition{Type: "step", Output: redactValue(out, x.secrets), Current: Cursor{Workflow: "main", Step: i},
			Next: &Cursor{Workflow: "main", Step: i + 1}, StepLabel: label,
			Metadata: map[string]any{"step_type": julepStepType(step)}}
		branches := x.takeBranches()
		rec := stepRecord{Input: input, Output: out, Label: label}
		if _, ok := identityOf(out); ok && sameValue(tr.Output, out) {
			// The transition below (the next seq, in the same commit as
			// this checkpoint) carries the output as it is.
			rec.Ref = x.ex.TransitionCount + 1
		}
		x.ck.Steps = append(x.ck.Steps, rec)
		x.ck.Step, x.ck.Last, x.ck.Resumes, x.ck.Waiting = i+1, out, nil, ""
		x.ck.StepsRun, x.ck.RunNanos = int(x.stepsRun.Load()), int64(x.spent())
		status := StatusRunning
		if final {
			x.ck.Step = len(main)
			tr.Type, tr.Next, status = "finish", nil, StatusSucceeded
			x.ex.Output = out
		}
		if rec := &x.ck.Steps[len(x.ck.Steps)-1]; rec.Ref != 0 {
			rec.Ref += len(branches) // the branch transitions come first
		}
		if err := x.advance(ctx, status, append(branches, tr)...); err != nil {
			x.ck.Steps[len(x.ck.Steps)-1].Ref = 0 // that transition was not written
			x.stop(ctx, err)
			return
		}
		if final {
			return
		}
	}
	if len(main) == 0 { // refused at create; kept for definitions stored by older versions
		x.e.fail(ctx, x.ex, x, "the task has no main steps")
	}
}

// stop handles an interruption: shutdown leaves the execution resumable, a
// conflict means it was cancelled meanwhile, anything else fails it.
func (x *executor) stop(ctx context.Context, err error) {
	switch {
	case errors.Is(err, ErrConflict), ctx.Err() != nil, errors.Is(err, context.Canceled):
		return
	}
	x.e.fail(ctx, x.ex, x, err.Error())
}

func outOfTime(limit time.Duration) string {
	return fmt.Sprintf("the execution ran longer than its limit of %s", limit)
}

func stepName(i int, label string) string {
	if label != "" {
		return fmt.Sprintf("%d (%q)", i, label)
	}
	return fmt.Sprint(i)
}

// fail marks the execution failed with a readable, redacted message.
func (e *Engine) fail(ctx context.Context, ex *Execution, x *executor, msg string) {
	var secrets map[string]string
	if x != nil {
		secrets = x.secrets
	} else {
		secrets, _ = e.secretValues(ctx)
	}
	msg = redactString(msg, secrets)
	e.log.InfoContext(ctx, "engine: execution failed", append(runAttrs(ex), "error", msg)...)
	cur := Cursor{Workflow: "main"}
	if x != nil {
		cur.Step = x.ck.Step
		x.ck.Resumes, x.ck.Waiting = nil, ""
	}
	ck := ex.Checkpoint
	if x != nil {
		var err error
		if ck, err = x.storedCheckpoint(); err != nil {
			ck = nil // a failed execution is never resumed; drop what cannot be stored safely
		}
	}
	next := *ex
	next.Status, next.Error, next.UpdatedAt, next.Checkpoint = StatusFailed, msg, e.now(), ck
	next.TransitionCount++
	tr := Transition{ID: newID(), ExecutionID: ex.ID, Seq: next.TransitionCount, Type: "error",
		Output: map[string]any{"error": msg}, Current: cur, CreatedAt: next.UpdatedAt}
	scope(&tr, ex.ID)
	if err := e.state.Advance(context.WithoutCancel(ctx), next, []string{StatusQueued, StatusStarting, StatusRunning}, []Transition{tr}); err != nil {
		if !errors.Is(err, ErrConflict) {
			e.log.Error("engine: record failure", "execution_id", ex.ID, "err", err)
		}
		return
	}
	*ex = next
	e.changes.publish(next)
}

// scope fills the scope ids of a transition's cursors: the main workflow's
// scope is identified by the execution id.
func scope(tr *Transition, executionID string) {
	if tr.Current.ScopeID == "" {
		tr.Current.ScopeID = executionID
	}
	if tr.Next != nil && tr.Next.ScopeID == "" {
		n := *tr.Next
		n.ScopeID = executionID
		tr.Next = &n
	}
}
