// Package engine is Astra's embedded Julep v1-compatible engine: the REST
// subset described by api/julep.yaml, served over HTTP, executing task
// definitions with Julep's semantics (steps, Python expressions through
// internal/expr, system tools over user docs) on a durable State.
//
// Durability: every step's completion is written (execution row + its
// transition) in one State.Advance before the next step starts, with the
// executor's resume point (the checkpoint) in the same row. Compound steps
// (foreach, map-reduce, parallel, if, switch, workflow calls) are one unit:
// an interrupted compound step runs again from its beginning.
//
// Scale-out: any number of engines may share one State. An execution runs
// only in the engine holding its lease (owner, a fencing token unique per
// claim, an end time extended by a heartbeat every Lease/3). An engine
// claims executions it creates, and its sweep claims those nobody holds
// (never started, released at shutdown, resumed, or left by an engine that
// died and whose lease ran out), so each continues from its last completed
// top-level step. Every write of a run presents its token; a run whose
// lease was taken over stops and writes nothing more. Exactly once: step
// commits, and docs that steps create (their ids derive from execution,
// step path and a per-step count, so a re-run step overwrites its docs).
// At least once: a model call (or api_call) in flight when its engine died
// is made again by the next owner.
package engine

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/retry"
)

// Options configure an Engine.
type Options struct {
	Key   string // the API key; required
	State State  // required
	Model llm.Model
	// Embedder computes docs' embeddings and search vectors (default:
	// llm.OfflineEmbedder, deterministic and local).
	Embedder    llm.Embedder
	Concurrency int // executions run at once (default 64)
	Logger      *slog.Logger
	HTTPClient  *http.Client // for api_call and integration tools
	// IntegrationURLs replaces integration providers' base URLs (by
	// provider name); ASTRA_INTEGRATION_<PROVIDER>_URL does the same.
	IntegrationURLs map[string]string
	Secrets         map[string]string
	Now             func() time.Time
	// Retry is the policy for transient model and api_call failures
	// (zero fields: retry.Default).
	Retry retry.Policy
	// Metrics registers the engine's collectors when not nil.
	Metrics prometheus.Registerer

	// Lease is how long a claim of an execution lasts unless its heartbeat
	// (every Lease/3) extends it: after an instance dies, another takes its
	// executions over within Lease plus SweepEvery (default 10 s).
	Lease time.Duration
	// SweepEvery is how often the engine claims executions that nobody
	// holds, such as those of an instance that died (default 500 ms), and
	// how often a run reads its lease token to notice a cancel made through
	// another instance.
	SweepEvery time.Duration

	// CheckpointKey (16, 24 or 32 bytes) seals checkpoints that contain a
	// secret's value (AES-GCM). Instances sharing a state must share it;
	// nil derives it from Key (see CheckpointKey). Changing it makes the
	// sealed checkpoints of unfinished executions unreadable.
	CheckpointKey []byte

	// Per-execution budgets: a task that goes past one fails with a step
	// error instead of exhausting the server. Defaults follow what Julep v1
	// inherited from Temporal. Negative values are treated as the default.
	//
	// MaxWorkflowDepth is how deep `workflow:` calls may nest (default 16).
	// A cycle among a task's workflows is refused at task create.
	MaxWorkflowDepth int
	// MaxSteps is how many steps one execution may run (default 10,000),
	// nested steps and every foreach/map iteration included; a foreach or
	// map whose items would go past it fails before its first item.
	MaxSteps int
	// MaxDuration is how long one execution may run (default 1 h), not
	// counting time awaiting input.
	MaxDuration time.Duration
	// MaxStepOutput is the largest JSON size of one step's output in bytes
	// (default 2 MB, Temporal's payload limit).
	MaxStepOutput int
}

// limits are an engine's per-execution budgets (see Options).
type limits struct {
	depth    int
	steps    int
	duration time.Duration
	output   int
}

func (o Options) limits() limits {
	l := limits{depth: 16, steps: 10_000, duration: time.Hour, output: 2 << 20}
	if o.MaxWorkflowDepth > 0 {
		l.depth = o.MaxWorkflowDepth
	}
	if o.MaxSteps > 0 {
		l.steps = o.MaxSteps
	}
	if o.MaxDuration > 0 {
		l.duration = o.MaxDuration
	}
	if o.MaxStepOutput > 0 {
		l.output = o.MaxStepOutput
	}
	return l
}

// Engine serves the API and runs executions.
type Engine struct {
	key     string
	state   State
	model   llm.Model
	embed   llm.Embedder
	log     *slog.Logger
	hc      *http.Client
	intURLs map[string]string
	now     func() time.Time
	sem     chan struct{}
	changes *hub
	cache   cache
	retry   *retrier
	limits  limits
	aead    cipher.AEAD // seals checkpoints that hold secrets
	metrics *metrics

	owner      string // this instance, as the owner of its leases
	lease      time.Duration
	sweepEvery time.Duration

	// Test hooks: abandon makes Close keep its leases (as a crash
	// would); beforeCleanup runs as a run ends, before it is forgotten.
	abandon       atomic.Bool
	beforeCleanup atomic.Pointer[func(id string)]
	stepHook      atomic.Pointer[func(step map[string]any)] // runs as each step starts

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
	token  string // the lease this run holds, once it holds one
	// again is set when the execution is to run here again once this run
	// has ended (see enqueueRun).
	again *again
}

type again struct{ held *Execution }

// errShutdown is the cancel cause when the engine closes: the execution
// stays resumable instead of being marked failed or cancelled.
var errShutdown = errors.New("engine shutting down")

// errLeaseLost is the cancel cause when another claim replaced this run's
// lease, or it could not be extended in time: the run stops writing.
var errLeaseLost = errors.New("engine: execution lease lost")

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
	if opts.Embedder == nil {
		opts.Embedder = llm.OfflineEmbedder()
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
	if opts.Lease <= 0 {
		opts.Lease = 10 * time.Second
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = 500 * time.Millisecond
	}
	e := &Engine{
		owner: newID(), lease: opts.Lease, sweepEvery: opts.SweepEvery,
		key: opts.Key, state: opts.State, model: opts.Model, embed: opts.Embedder, log: opts.Logger, hc: opts.HTTPClient, intURLs: opts.IntegrationURLs,
		now: func() time.Time { return opts.Now().UTC() }, sem: make(chan struct{}, opts.Concurrency),
		changes: newHub(), running: map[string]*run{}, kept: map[string]keptDeltas{},
		cache: cache{tasks: map[string]Task{}, schemas: map[string]*jsonschema.Schema{}, agents: map[string]cached[map[string]any]{}, validFor: time.Second},
	}
	e.limits = opts.limits()
	if opts.CheckpointKey == nil {
		opts.CheckpointKey = CheckpointKey(opts.Key)
	}
	aead, err := newAEAD(opts.CheckpointKey)
	if err != nil {
		return nil, err
	}
	e.aead = aead
	e.retry = newRetrier(opts.Retry, opts.Logger, opts.Metrics)
	e.metrics = newMetrics(opts.Metrics, opts.Logger)
	e.model = tracedModel{Model: e.model, m: e.metrics}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if err := e.seedSecrets(context.Background(), opts.Secrets); err != nil {
		return nil, err
	}
	return e, nil
}

// Start claims the executions nobody runs (queued, or interrupted: their
// lease ran out) and accepts new ones. Executions created before Start wait
// in the queued status.
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
	if err := e.claim(ctx); err != nil {
		return fmt.Errorf("engine: recover executions: %w", err)
	}
	e.wg.Add(1)
	go e.sweep()
	return nil
}

// sweep claims, every sweepEvery, the executions no engine holds: those
// whose owner died (its lease ran out), released at shutdown, resumed, or
// created while no engine was running.
func (e *Engine) sweep() {
	defer e.wg.Done()
	t := time.NewTicker(e.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		if err := e.claim(e.ctx); err != nil && e.ctx.Err() == nil {
			e.log.Warn("engine: sweep", "err", err)
		}
	}
}

// claim claims as many unheld executions as this engine has free slots,
// so instances share the work, and runs them.
func (e *Engine) claim(ctx context.Context) error {
	e.mu.Lock()
	free := cap(e.sem) - len(e.running)
	e.mu.Unlock()
	if free <= 0 {
		return nil
	}
	now := e.now()
	xs, err := e.state.ClaimExecutions(ctx, e.owner, now, now.Add(e.lease), free)
	for i := range xs {
		x := xs[i]
		e.log.Info("engine: claimed execution", "execution_id", x.ID, "status", x.Status)
		if !e.enqueueRun(x.ID, &x, nil) {
			e.release(x.ID, x.LeaseToken)
		}
	}
	return err
}

// release gives a lease back so another engine can claim at once.
func (e *Engine) release(id, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.state.ReleaseLease(ctx, id, token); err != nil && !errors.Is(err, ErrConflict) {
		e.log.Warn("engine: release lease", "execution_id", id, "err", err)
	}
}

// Close stops the executor: running executions are interrupted between or
// inside steps, their leases released, and they stay resumable by any
// engine on the same state.
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

// admits reports whether enqueued executions run here now (accepting),
// and whether one created now would start at once (free): only then does
// the engine create it already claimed. One that would wait is left for
// whichever engine has a slot first, and holds no lease while it waits.
func (e *Engine) admits() (accepting, free bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	accepting = e.started && !e.closed
	return accepting, accepting && len(e.running) < cap(e.sem)
}

// enqueue runs the execution when a slot is free, claiming it first.
func (e *Engine) enqueue(id string) { e.enqueueRun(id, nil, nil) }

// enqueueRun runs execution id here when a slot is free. held is the
// execution as this engine holds its lease (nil: claim it once a slot is
// free; it may turn out held by another engine, and then it is not run);
// snapshot, when given, is what followers read while it runs here.
// It reports false when the engine does not run executions (not started or
// closed): a held lease is then the caller's to release.
//
// When a run of id is still ending here (it paused, and a resume came
// before its cleanup; or it lost its lease, and this engine claimed the
// execution again), the new run starts as soon as that one has ended,
// rather than being dropped to wait for a sweep.
func (e *Engine) enqueueRun(id string, held, snapshot *Execution) bool {
	e.mu.Lock()
	if e.closed || !e.started {
		e.mu.Unlock()
		return false
	}
	if r, ok := e.running[id]; ok {
		if r.again == nil || held != nil {
			r.again = &again{held: held}
		}
		e.mu.Unlock()
		return true
	}
	if snapshot != nil {
		e.changes.track(*snapshot)
	}
	ctx, cancel := context.WithCancelCause(e.ctx)
	r := &run{cancel: cancel, deltas: newDeltaLog()}
	e.running[id] = r
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer e.endRun(ctx, id, r)
		if held != nil {
			e.hold(ctx, r, id, held.LeaseToken, held.LeaseUntil)
		}
		select {
		case e.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-e.sem }()
		if held != nil && !e.now().Before(held.LeaseUntil) {
			// The claim waited (behind this engine's previous run of the
			// execution, or for a slot) past its lease: another engine may
			// have claimed it since, and nothing may be done under a claim
			// that is no longer ours.
			if tok, err := e.state.LeaseToken(ctx, id); err != nil || tok != held.LeaseToken {
				return
			}
		}
		if held == nil {
			now := e.now()
			x, err := e.state.ClaimExecution(ctx, id, e.owner, newID(), now.Add(e.lease), now)
			if err != nil {
				if !errors.Is(err, ErrConflict) && ctx.Err() == nil {
					e.log.Error("engine: claim execution", "execution_id", id, "err", err)
				}
				return
			}
			held = &x
			e.hold(ctx, r, id, x.LeaseToken, x.LeaseUntil)
		}
		e.execute(ctx, *held, r)
	}()
	return true
}

// endRun forgets a run that ended, releases its lease when the engine is
// shutting down, and starts the run that was asked for meanwhile.
func (e *Engine) endRun(ctx context.Context, id string, r *run) {
	r.deltas.finish()
	if f := e.beforeCleanup.Load(); f != nil {
		(*f)(id)
	}
	e.mu.Lock()
	delete(e.running, id)
	e.keep(id, r.deltas)
	next := r.again
	e.mu.Unlock()
	e.changes.untrack(id)
	shutdown := errors.Is(context.Cause(ctx), errShutdown)
	r.cancel(nil)
	if r.token != "" && shutdown && !e.abandon.Load() {
		e.release(id, r.token)
	}
	if next != nil && !e.enqueueRun(id, next.held, nil) && next.held != nil {
		e.release(id, next.held.LeaseToken)
	}
}

// hold records that r holds the lease token (until the given time) and
// heartbeats it every lease/3 while the run lasts. Between heartbeats it
// reads the stored token every sweepEvery, so a cancel made through
// another engine (which clears the lease) stops the run within about that
// long rather than at the next heartbeat. When another claim replaced it,
// the lease was cleared, or it could not be extended before it ran out,
// the run is cancelled: it must not write any more.
func (e *Engine) hold(ctx context.Context, r *run, id, token string, until time.Time) {
	r.token = token
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		beat := time.NewTicker(e.lease / 3)
		defer beat.Stop()
		check := time.NewTicker(min(e.sweepEvery, e.lease/3))
		defer check.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-check.C:
				held, err := e.state.LeaseToken(ctx, id)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil && !errors.Is(err, ErrNotFound):
					continue // the heartbeat decides on failures
				case held == token:
					continue
				}
				e.log.Info("engine: execution cancelled, taken over or gone; stopping its run here", "execution_id", id)
				r.cancel(errLeaseLost)
				return
			case <-beat.C:
			}
			now := e.now()
			err := e.state.ExtendLease(ctx, id, token, now.Add(e.lease))
			switch {
			case err == nil:
				until = now.Add(e.lease)
				continue
			case ctx.Err() != nil:
				return
			case errors.Is(err, ErrConflict):
				e.log.Info("engine: execution taken over or ended elsewhere; stopping its run here", "execution_id", id)
			case now.Before(until):
				e.log.Warn("engine: extend lease", "execution_id", id, "err", err)
				continue
			default:
				e.log.Warn("engine: lease ran out before it could be extended; stopping the run", "execution_id", id, "err", err)
			}
			r.cancel(errLeaseLost)
			return
		}
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
