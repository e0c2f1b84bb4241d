// Package engine is Astra's embedded Julep v1-compatible engine: the REST
// subset described by api/julep.yaml, served over HTTP, executing task
// definitions with Julep's semantics (steps, Python expressions through
// internal/expr, system tools over user docs) on a durable State.
//
// Durability: every step's completion is written (execution row + its
// transition) in one State.Advance before the next step starts, with the
// executor's resume point (the checkpoint) in the same row. After a restart,
// Start re-queues every execution that was queued, starting or running and
// each continues from its last completed top-level step. Compound steps
// (foreach, map-reduce, parallel, if, switch, workflow calls) are one unit:
// an interrupted compound step runs again from its beginning.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/retry"
)

// Options configure an Engine.
type Options struct {
	Key         string // the API key; required
	State       State  // required
	Model       llm.Model
	Concurrency int // executions run at once (default 64)
	Logger      *slog.Logger
	HTTPClient  *http.Client // for api_call tools
	Secrets     map[string]string
	Now         func() time.Time
	// Retry is the policy for transient model and api_call failures
	// (zero fields: retry.Default).
	Retry retry.Policy
	// Metrics registers the engine's collectors when not nil.
	Metrics prometheus.Registerer
}

// Engine serves the API and runs executions.
type Engine struct {
	key     string
	state   State
	model   llm.Model
	log     *slog.Logger
	hc      *http.Client
	now     func() time.Time
	sem     chan struct{}
	changes *hub
	cache   cache
	retry   *retrier

	mu      sync.Mutex
	running map[string]*run // executions this engine is running now
	kept    map[string]keptDeltas
	started bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// run is an execution in progress in this process.
type run struct {
	cancel context.CancelCauseFunc
	deltas *deltaLog
}

// errShutdown is the cancel cause when the engine closes: the execution
// stays resumable instead of being marked failed or cancelled.
var errShutdown = errors.New("engine shutting down")

// New checks the options, seeds the secrets and returns an engine that
// serves requests at once; call Start to run executions.
func New(opts Options) (*Engine, error) {
	if opts.Key == "" {
		return nil, errors.New("engine: a key is required")
	}
	if opts.State == nil {
		return nil, errors.New("engine: a state is required")
	}
	if opts.Model == nil {
		opts.Model = llm.Offline()
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{
		key: opts.Key, state: opts.State, model: opts.Model, log: opts.Logger, hc: opts.HTTPClient,
		now: func() time.Time { return opts.Now().UTC() }, sem: make(chan struct{}, opts.Concurrency),
		changes: newHub(), running: map[string]*run{}, kept: map[string]keptDeltas{},
		cache: cache{tasks: map[string]Task{}, schemas: map[string]*jsonschema.Schema{}, agents: map[string]cached[map[string]any]{}, validFor: time.Second},
	}
	e.retry = newRetrier(opts.Retry, opts.Logger, opts.Metrics)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if err := e.seedSecrets(context.Background(), opts.Secrets); err != nil {
		return nil, err
	}
	return e, nil
}

// Start recovers interrupted executions and accepts new ones. Executions
// created before Start wait in the queued status.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errors.New("engine: closed")
	}
	if e.started {
		e.mu.Unlock()
		return nil
	}
	e.started = true
	e.mu.Unlock()
	pending, err := e.state.ExecutionsByStatus(ctx, StatusQueued, StatusStarting, StatusRunning)
	if err != nil {
		return fmt.Errorf("engine: recover executions: %w", err)
	}
	for _, ex := range pending {
		e.log.Info("engine: resuming execution", "execution_id", ex.ID, "status", ex.Status)
		e.enqueue(ex.ID)
	}
	e.wg.Add(1)
	go e.sweep()
	return nil
}

// sweepEvery is how often the engine looks for executions that should be
// running but are not (a safety net: e.g. a write that committed after its
// caller gave up). One engine per database is assumed.
var sweepEvery = 5 * time.Second

func (e *Engine) sweep() {
	defer e.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		pending, err := e.state.ExecutionsByStatus(e.ctx, StatusQueued, StatusStarting, StatusRunning)
		if err != nil {
			if e.ctx.Err() == nil {
				e.log.Warn("engine: sweep", "err", err)
			}
			continue
		}
		for _, ex := range pending {
			if e.runFor(ex.ID) == nil && e.now().Sub(ex.UpdatedAt) > time.Second {
				e.log.Info("engine: sweep found an idle execution", "execution_id", ex.ID, "status", ex.Status)
				e.enqueue(ex.ID)
			}
		}
	}
}

// Close stops the executor: running executions are interrupted between or
// inside steps and stay resumable by the next Start on the same state.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for _, r := range e.running {
		r.cancel(errShutdown)
	}
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	e.changes.closeAll()
	return nil
}

// enqueue runs the execution when a slot is free. Waiting goroutines are
// cheap; the semaphore bounds the work.
func (e *Engine) enqueue(id string) { e.enqueueTracked(id, nil) }

// enqueueTracked enqueues id; when x is given it becomes the in-memory
// snapshot followers read while the execution runs here.
func (e *Engine) enqueueTracked(id string, x *Execution) {
	e.mu.Lock()
	if e.closed || !e.started {
		e.mu.Unlock()
		return
	}
	if _, ok := e.running[id]; ok {
		e.mu.Unlock()
		return
	}
	if x != nil {
		e.changes.track(*x)
	}
	ctx, cancel := context.WithCancelCause(e.ctx)
	r := &run{cancel: cancel, deltas: newDeltaLog()}
	e.running[id] = r
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer func() {
			r.deltas.finish()
			e.mu.Lock()
			delete(e.running, id)
			e.keep(id, r.deltas)
			e.mu.Unlock()
			e.changes.untrack(id)
			cancel(nil)
		}()
		select {
		case e.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-e.sem }()
		e.execute(ctx, id, r)
	}()
}

func (e *Engine) runFor(id string) *run {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running[id]
}

func newID() string { return uuid.NewString() }

// Execution statuses.
const (
	StatusQueued        = "queued"
	StatusStarting      = "starting"
	StatusRunning       = "running"
	StatusAwaitingInput = "awaiting_input"
	StatusSucceeded     = "succeeded"
	StatusFailed        = "failed"
	StatusCancelled     = "cancelled"
)

func terminal(status string) bool {
	return status == StatusSucceeded || status == StatusFailed || status == StatusCancelled
}

// WaitTerminal blocks until the execution is terminal (or ctx ends) and
// returns its last status. In-process callers (tests, benchmarks, the CLI)
// use it instead of the status stream.
func (e *Engine) WaitTerminal(ctx context.Context, id string) string {
	for {
		ch, release := e.changes.wait(id)
		x, err := e.execution(ctx, id)
		if err != nil {
			release()
			return ""
		}
		if terminal(x.Status) {
			release()
			return x.Status
		}
		select {
		case <-ch:
			release()
		case <-ctx.Done():
			release()
			return x.Status
		case <-e.ctx.Done():
			release()
			return x.Status
		}
	}
}

// execution reads an execution: from memory while this process runs it,
// else from the state.
func (e *Engine) execution(ctx context.Context, id string) (Execution, error) {
	if x, ok := e.changes.snapshot(id); ok {
		return x, nil
	}
	return e.state.GetExecution(ctx, id)
}

// cache keeps what executions read at start. Task versions never change, so
// they are kept; agents and secrets are kept briefly (another process may
// share the database) and dropped at once when this process changes them.
type cache struct {
	mu       sync.Mutex
	tasks    map[string]Task               // id@version
	schemas  map[string]*jsonschema.Schema // id@version
	agents   map[string]cached[map[string]any]
	secrets  cached[map[string]string]
	validFor time.Duration
	// users seen to exist. Users are never deleted (the API has no route
	// for it), so existence, once seen, stays true in every process.
	users map[string]struct{}
}

// userExists answers whether the user exists (a notFound error if not),
// reading the state only for users this process has not seen yet: every
// doc tool call checks its user, three or four times per responder turn.
func (e *Engine) userExists(ctx context.Context, id string) error {
	e.cache.mu.Lock()
	_, ok := e.cache.users[id]
	e.cache.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := e.state.GetResource(ctx, KindUser, id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return notFound(KindUser, id)
		}
		return err
	}
	e.cache.mu.Lock()
	if e.cache.users == nil || len(e.cache.users) >= 100_000 {
		e.cache.users = map[string]struct{}{}
	}
	e.cache.users[id] = struct{}{}
	e.cache.mu.Unlock()
	return nil
}

type cached[T any] struct {
	v  T
	at time.Time
}

func (c *cache) dropAgent(id string) {
	c.mu.Lock()
	delete(c.agents, id)
	c.mu.Unlock()
}

func (c *cache) dropSecrets() {
	c.mu.Lock()
	c.secrets = cached[map[string]string]{}
	c.mu.Unlock()
}

func (e *Engine) taskVersion(ctx context.Context, id string, version int) (Task, error) {
	key := fmt.Sprintf("%s@%d", id, version)
	e.cache.mu.Lock()
	t, ok := e.cache.tasks[key]
	e.cache.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := e.state.GetTask(ctx, id, version)
	if err != nil {
		return t, err
	}
	e.cache.mu.Lock()
	if len(e.cache.tasks) >= 1024 {
		clear(e.cache.tasks)
	}
	e.cache.tasks[key] = t
	e.cache.mu.Unlock()
	return t, nil
}

func (e *Engine) agentBody(ctx context.Context, id string) (map[string]any, error) {
	e.cache.mu.Lock()
	a, ok := e.cache.agents[id]
	e.cache.mu.Unlock()
	if ok && time.Since(a.at) < e.cache.validFor {
		return a.v, nil
	}
	r, err := e.state.GetResource(ctx, KindAgent, id)
	if errors.Is(err, ErrNotFound) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load agent %s: %w", id, err)
	}
	body := decodeBody(r.Body)
	e.cache.mu.Lock()
	if len(e.cache.agents) >= 1024 {
		clear(e.cache.agents)
	}
	e.cache.agents[id] = cached[map[string]any]{body, time.Now()}
	e.cache.mu.Unlock()
	return body, nil
}
