// Package dispatch turns outbox rows into Julep executions and their results
// into conversation events: the dispatcher of ARCHITECTURE.md decision 4.
//
// Each row is claimed with a lease, its Julep user ensured under a
// deterministic id, and exactly one execution of the responder task started
// with metadata.outbox_id; the execution id is recorded at once, and after a
// crash between "create" and "record" the next owner finds the execution by
// that metadata instead of starting another. The result is appended as one
// event under a unique dedupe key before the row is marked delivered (or
// error), so no crash point loses a row, starts a second execution or
// duplicates an event.
package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/stream"
)

// Defaults for Options.
const (
	DefaultLease            = 30 * time.Second
	DefaultSweep            = time.Second
	DefaultMaxInFlight      = 64
	DefaultMaxPerUser       = 4
	DefaultMaxAttempts      = 5
	DefaultHistoryTurns     = 6
	DefaultProject          = "astra"
	DefaultStillWorking     = 20 * time.Second
	DefaultExecutionTimeout = 10 * time.Minute
	DefaultRetryBase        = time.Second
	DefaultRetryMax         = time.Minute
	DefaultShutdownGrace    = 10 * time.Second
)

// Options configure a Dispatcher. Store, Julep and TaskID are required.
type Options struct {
	Store responder.Store
	Julep *julep.Client
	// Hub receives appended events and token deltas. Nil in a dispatch-only
	// instance: events then reach sockets through the other instances' feeds,
	// and deltas too when ShareDeltas is set.
	Hub *stream.Hub
	// ShareDeltas writes the relayed deltas to the store (responder.Deltas)
	// in batches of DeltaFlush, for the feeds of every instance: sockets held
	// by another process then see the reply as it is produced.
	ShareDeltas bool
	// DeltaFlush is how long deltas gather before one write; default
	// DefaultDeltaFlush.
	DeltaFlush time.Duration
	// TaskID is the responder task's id (from tasks/julep-lock.json; see TaskIDFromLock).
	TaskID string
	// Owner names this instance in leases; unique per process. Each claim
	// is leased to Owner + "/" + an id of its own.
	Owner string
	// Lease is how long a claim lasts without a heartbeat; the heartbeat
	// extends it every Lease/4, and work on a row whose heartbeat keeps
	// failing stops before its lease can run out.
	Lease time.Duration
	// Sweep is the safety-net claim interval; Wake is the normal trigger.
	Sweep time.Duration
	// MaxInFlight bounds rows worked on at once; no row is claimed beyond it.
	MaxInFlight int
	// MaxPerUser bounds the rows of one user in work at once (across every
	// instance sharing the store), so one user's burst cannot delay the
	// others' replies; the rest of the burst waits its turn. Negative: no cap.
	MaxPerUser int
	// MaxAttempts bounds claims of one row that end in a transient Julep error.
	MaxAttempts int
	// HistoryTurns is how many earlier messages of the user (each with its
	// answer) go into the execution's input; negative sends none.
	HistoryTurns int
	// Project is the Julep project users are created in; "-" sends none.
	// A server that refuses the project gets users without one.
	Project string
	// StillWorking is when the person is told the answer is on its way;
	// negative disables it.
	StillWorking time.Duration
	// ExecutionTimeout ends (cancels) an execution that runs longer.
	ExecutionTimeout time.Duration
	// RetryBase and RetryMax shape the backoff of a released row: RetryBase
	// doubling per attempt, capped at RetryMax, with jitter.
	RetryBase time.Duration
	RetryMax  time.Duration
	// ShutdownGrace is how long Run lets in-flight rows finish after its
	// context ends before releasing them.
	ShutdownGrace time.Duration
	Logger        *slog.Logger
	// Metrics registers the dispatcher's collectors when not nil.
	Metrics prometheus.Registerer
	Now     func() time.Time
}

func (o *Options) defaults() {
	if o.Owner == "" {
		o.Owner = "dispatch-" + responder.NewID()
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Sweep <= 0 {
		o.Sweep = DefaultSweep
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxPerUser == 0 {
		o.MaxPerUser = DefaultMaxPerUser
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.HistoryTurns == 0 {
		o.HistoryTurns = DefaultHistoryTurns
	}
	if o.Project == "" {
		o.Project = DefaultProject
	}
	if o.StillWorking == 0 {
		o.StillWorking = DefaultStillWorking
	}
	if o.ExecutionTimeout <= 0 {
		o.ExecutionTimeout = DefaultExecutionTimeout
	}
	if o.RetryBase <= 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = o.RetryBase
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.DeltaFlush <= 0 {
		o.DeltaFlush = DefaultDeltaFlush
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Dispatcher claims outbox rows and works on each until it is delivered,
// failed or released. Create it with New and run it with Run.
type Dispatcher struct {
	o   Options
	log *slog.Logger
	m   *metrics

	wake  chan struct{}
	slots chan struct{}
	wg    sync.WaitGroup // rows in flight

	// stopClaim is closed when no more rows may be claimed.
	stopClaim chan struct{}
	stopOnce  sync.Once
	// work is the parent of every row's context; cancelling it with
	// errShutdown abandons rows, which release themselves.
	work        context.Context
	abandonWork context.CancelCauseFunc
	started     atomic.Bool
	runDone     chan struct{}

	ensured ensuredUsers
	// afterFunc is time.AfterFunc returning the timer's Stop; a test
	// replaces it to fire the timer at a chosen moment.
	afterFunc func(time.Duration, func()) (stop func() bool)
	// Features found missing on the Julep server; they stay off.
	noDeltas  atomic.Bool
	noProject atomic.Bool
	// deltas shares relayed deltas through the store (ShareDeltas).
	deltas     *deltaLog
	noStatusSS atomic.Bool
}

// errShutdown abandons a row at shutdown: it is released, not failed.
var errShutdown = errors.New("dispatcher shutting down")

// errLeaseLost stops work on a row another owner has taken over.
var errLeaseLost = errors.New("lease lost")

// New returns a dispatcher; it does nothing until Run.
func New(o Options) *Dispatcher {
	o.defaults()
	d := &Dispatcher{
		o:         o,
		log:       o.Logger.With("component", "dispatch", "owner", o.Owner),
		wake:      make(chan struct{}, 1),
		slots:     make(chan struct{}, o.MaxInFlight),
		stopClaim: make(chan struct{}),
		runDone:   make(chan struct{}),
		afterFunc: func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop },
	}
	d.work, d.abandonWork = context.WithCancelCause(context.Background())
	if o.ShareDeltas {
		d.deltas = &deltaLog{store: o.Store, every: o.DeltaFlush, log: d.log}
	}
	d.m = newMetrics(o.Store)
	if o.Metrics != nil {
		if err := d.m.register(o.Metrics); err != nil {
			d.log.Warn("dispatch metrics not registered", "err", err)
		}
	}
	return d
}

// Wake asks the dispatcher to claim now (the API calls it after an insert).
// It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run claims and works on rows until ctx ends, then stops claiming, lets
// rows in flight finish for up to Options.ShutdownGrace (or until Shutdown's
// context ends), releases the rest for another instance, and returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.o.Store == nil || d.o.Julep == nil || d.o.TaskID == "" {
		return errors.New("dispatch: Store, Julep and TaskID are required")
	}
	if d.started.Swap(true) {
		return errors.New("dispatch: Run called twice")
	}
	defer close(d.runDone)
	d.log.Info("dispatcher started", "task_id", d.o.TaskID, "max_in_flight", d.o.MaxInFlight, "lease", d.o.Lease)
	d.loop(ctx)
	d.stop()

	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	grace := time.NewTimer(d.o.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		d.log.Info("shutdown grace over: releasing rows in flight")
		d.abandonWork(errShutdown)
		<-done
	case <-d.work.Done(): // Shutdown's context ended first
		<-done
	}
	d.abandonWork(errShutdown)
	d.log.Info("dispatcher stopped")
	return nil
}

// Shutdown stops claiming and waits for rows in flight to finish until ctx
// ends; then it releases them (claimable again at once elsewhere) and
// waits for Run to return. It returns ctx's error when it had to release.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.stop()
	if !d.started.Load() {
		return nil
	}
	select {
	case <-d.runDone:
		return nil
	case <-ctx.Done():
		d.abandonWork(errShutdown)
		<-d.runDone
		return ctx.Err()
	}
}

func (d *Dispatcher) stop() { d.stopOnce.Do(func() { close(d.stopClaim) }) }

// loop claims while slots are free, then sleeps until woken, the sweep,
// the earliest held-back row, or the end.
func (d *Dispatcher) loop(ctx context.Context) {
	sweep := time.NewTicker(d.o.Sweep)
	defer sweep.Stop()
	next := time.NewTimer(time.Hour)
	next.Stop()
	defer next.Stop()
	// retried is set after one quick retry for rows that were due but not
	// claimable: due in the instant after the claim, or (usually) rows of
	// users at their cap, which only a finishing row (it wakes the loop) or
	// an expiring lease (the sweep) makes claimable.
	retried := false
	for {
		idle, claimed := d.claimAll(ctx)
		if claimed {
			retried = false
		}
		if idle {
			// Sleep no longer than until the next held-back row is due.
			if at, err := d.o.Store.NextAvailable(ctx); err == nil && !at.IsZero() {
				switch wait := at.Sub(d.o.Now()); {
				case wait > 0 && wait < d.o.Sweep:
					next.Reset(wait)
				case wait <= 0 && !retried:
					retried = true
					next.Reset(time.Millisecond)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.stopClaim:
			return
		case <-d.wake:
		case <-sweep.C:
		case <-next.C:
		}
	}
}

// claimAll claims rows until the slots are full (idle false) or none is
// claimable (idle true); claimed reports whether it claimed any.
func (d *Dispatcher) claimAll(ctx context.Context) (idle, claimed bool) {
	for {
		select {
		case <-ctx.Done():
			return false, claimed
		case <-d.stopClaim:
			return false, claimed
		default:
		}
		select {
		case d.slots <- struct{}{}:
		default:
			return false, claimed // full: a finishing row wakes the loop
		}
		owner, sent := d.claimOwner(), time.Now()
		m, err := d.o.Store.Claim(ctx, owner, d.o.Lease, max(d.o.MaxPerUser, 0))
		if err != nil || m == nil {
			<-d.slots
			if err != nil && ctx.Err() == nil {
				d.m.errors.WithLabelValues("store").Inc()
				d.log.Warn("claim failed", "err", err)
			}
			return err == nil, claimed
		}
		claimed = true
		d.publishRow(m, responder.StatusProcessing, m.LastError)
		d.wg.Add(1)
		d.m.inFlight.Inc()
		go func() {
			defer func() {
				d.m.inFlight.Dec()
				<-d.slots
				d.wg.Done()
				d.Wake()
			}()
			d.process(m, owner, sent)
		}()
	}
}
