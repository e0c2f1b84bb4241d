package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/telemetry"
)

// permanentError fails a row at once: retrying cannot help.
type permanentError struct {
	reason string // stored as the row's lastError
	tell   string // what the person is told
	class  string // metrics reason class
}

func (e *permanentError) Error() string { return e.reason }

// transientError releases a row for a later attempt.
type transientError struct {
	err        error
	retryAfter time.Duration // the server's hint, if any
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// classify turns a Julep error into a permanent or transient one. A 4xx
// other than 408/409/429 is the server refusing the request as made;
// everything else (network, 5xx, a garbled answer) may pass later.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ae *julep.APIError
	if errors.As(err, &ae) && !ae.Transient() && ae.Status >= 400 && ae.Status < 500 {
		return &permanentError{
			reason: fmt.Sprintf("%s: Julep refused it (%d): %s", what, ae.Status, ae.Message),
			tell:   "Sorry, I could not work on this message: the assistant service refused it (" + ae.Message + ").",
			class:  reasonJulepRejected,
		}
	}
	te := &transientError{err: fmt.Errorf("%s: %w", what, err)}
	if errors.As(err, &ae) {
		te.retryAfter = ae.RetryAfter
	}
	return te
}

// storeErr maps a store failure: a lost lease stops work silently,
// anything else is retried later.
func storeErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if responder.IsConflict(err) || responder.IsNotFound(err) {
		return fmt.Errorf("%s: %w: %w", what, errLeaseLost, err)
	}
	return &transientError{err: fmt.Errorf("%s: %w", what, err)}
}

// row is the work on one claimed outbox row.
type row struct {
	d *Dispatcher
	m *responder.Message
	// owner is this claim's lease owner, unique to the claim: the fencing
	// token every guarded write presents, so a worker that lost its lease
	// cannot write over a later claim, not even one of the same instance.
	owner     string
	claimedAt time.Time
	julepUser string
	// created is true when this attempt started the execution (so a 404 on
	// its delta stream means the server has none, not that it is gone).
	created bool
}

// claimOwner returns a lease owner unique to one claim by this instance.
func (d *Dispatcher) claimOwner() string { return d.o.Owner + "/" + responder.NewID() }

// process works on a claimed row until it is settled: delivered, failed,
// released, or abandoned to the owner that took over its lease. sent is
// when the claim was asked for: the lease runs at least until sent+Lease.
func (d *Dispatcher) process(m *responder.Message, owner string, sent time.Time) {
	ctx, cancel := context.WithCancelCause(d.work)
	defer cancel(nil)
	ctx, endRow := d.startRow(ctx, m, sent, time.Now())
	hb := d.heartbeat(ctx, cancel, m.ID, owner, sent)
	r := &row{d: d, m: m, owner: owner, claimedAt: d.o.Now()}
	err := r.run(ctx)
	cause := context.Cause(ctx)
	cancel(nil)
	<-hb
	d.settle(ctx, m, owner, err, cause)
	endRow(err)
}

// leaseMargin is how long before its lease may run out a row whose
// heartbeat keeps failing is stopped: time for the cancellation to reach
// calls in flight, and for clock skew between instances.
func leaseMargin(lease time.Duration) time.Duration { return lease / 10 }

// heartbeat extends the lease every Lease/4 until ctx ends. A lease found
// taken over cancels ctx with errLeaseLost; so does a lease that may run
// out because no extend has succeeded for nearly a lease (a store failover),
// before another claim can take the row and work it alongside this one.
func (d *Dispatcher) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, id, owner string, sent time.Time) <-chan struct{} {
	done := make(chan struct{})
	lease, margin := d.o.Lease, leaseMargin(d.o.Lease)
	// A timer, not a check between beats: an extend may hang for longer
	// than the lease while the store fails over.
	expiring := time.AfterFunc(time.Until(sent.Add(lease-margin)), func() {
		d.log.Warn("lease may expire: no heartbeat succeeded; stopping work on the row", "outbox_id", id)
		cancel(errLeaseLost)
	})
	go func() {
		defer close(done)
		defer expiring.Stop()
		t := time.NewTicker(lease / 4)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			at := time.Now()
			err := d.o.Store.ExtendLease(ctx, id, owner, lease)
			if took := time.Since(at); took > lease/4 {
				d.log.Warn("slow heartbeat", "outbox_id", id, "took", took)
			}
			switch {
			case ctx.Err() != nil:
			case err == nil:
				// The store set the lease from a time no earlier than at.
				expiring.Reset(time.Until(at.Add(lease - margin)))
			case responder.IsConflict(err) || responder.IsNotFound(err):
				d.log.Info("lease lost: another owner has the row", "outbox_id", id, "err", err)
				cancel(errLeaseLost)
				return
			default:
				// The lease still runs; the next beat tries again.
				d.log.Warn("heartbeat failed", "outbox_id", id, "err", err)
			}
		}
	}()
	return done
}

// settle ends a row's attempt according to how run ended.
func (d *Dispatcher) settle(rowCtx context.Context, m *responder.Message, owner string, err, cause error) {
	log := d.log.With(append(rowAttrs(m), "attempt", m.Attempts)...)
	// The row's trace, not its (ended) cancellation.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(rowCtx), 10*time.Second)
	defer cancel()
	var perm *permanentError
	var trans *transientError
	switch {
	case err == nil:
		return
	case errors.Is(cause, errLeaseLost) || errors.Is(err, errLeaseLost):
		d.m.errors.WithLabelValues(reasonLeaseLost).Inc()
		log.InfoContext(ctx, "stopped: lease lost", "err", err)
	case errors.Is(cause, errShutdown):
		// Claimable again at once, by any instance.
		d.m.errors.WithLabelValues(reasonReleaseShutdown).Inc()
		if rerr := d.o.Store.Release(ctx, m.ID, owner, d.o.Now(), "released: the dispatcher shut down while working on it"); rerr != nil && !responder.IsConflict(rerr) {
			log.Warn("release at shutdown failed; the lease will expire", "err", rerr)
		} else {
			log.InfoContext(ctx, "released at shutdown")
		}
	case errors.As(err, &perm):
		d.m.errors.WithLabelValues(perm.class).Inc()
		d.fail(ctx, m, owner, perm.reason, perm.tell)
	default:
		if !errors.As(err, &trans) {
			trans = &transientError{err: err}
		}
		d.m.errors.WithLabelValues(reasonJulepTransient).Inc()
		if m.Attempts >= d.o.MaxAttempts {
			d.m.errors.WithLabelValues(reasonAttempts).Inc()
			d.fail(ctx, m, owner, fmt.Sprintf("gave up after %d attempts: %v", m.Attempts, trans.err),
				"Sorry, I could not answer this message: the assistant service kept failing. Please send it again in a little while.")
			return
		}
		retryAt := d.o.Now().Add(d.backoff(m.Attempts, trans.retryAfter))
		if rerr := d.o.Store.Release(ctx, m.ID, owner, retryAt, trans.err.Error()); rerr != nil && !responder.IsConflict(rerr) {
			log.Warn("release failed; the lease will expire", "err", rerr)
			return
		}
		d.publishRow(m, responder.StatusPending, trans.err.Error())
		d.m.retries.Inc()
		log.InfoContext(ctx, "released for a later attempt", "retry_at", retryAt, "err", trans.err)
	}
}

// backoff is the wait before attempt n+1: RetryBase doubling per attempt,
// capped at RetryMax, with equal jitter, and never below the server's hint.
func (d *Dispatcher) backoff(n int, hint time.Duration) time.Duration {
	b := d.o.RetryBase
	for i := 1; i < n && b < d.o.RetryMax; i++ {
		b *= 2
	}
	b = min(b, d.o.RetryMax)
	b = b/2 + rand.N(b/2+1)
	return max(b, min(hint, d.o.RetryMax))
}

// fail appends the person's error event, then marks the row error. In
// that order: a crash in between leaves the row to be worked again, and
// the event's dedupe key keeps it single.
func (d *Dispatcher) fail(ctx context.Context, m *responder.Message, owner, reason, tell string) {
	log := d.log.With(rowAttrs(m)...)
	// A row another owner has taken over is theirs to settle.
	if err := d.o.Store.ExtendLease(ctx, m.ID, owner, d.o.Lease); err != nil {
		log.Info("not failing: lease lost", "reason", reason, "err", err)
		return
	}
	// The person already has the answer (a write after it failed): the
	// row is delivered, never "sorry" after the real reply.
	answered, err := d.answered(ctx, m.ID)
	if err != nil {
		log.Warn("cannot tell whether the row was answered; it stays leased and will be retried", "reason", reason, "err", err)
		return
	}
	if answered {
		if err := d.o.Store.Deliver(ctx, m.ID, owner); err != nil {
			log.Warn("deliver answered row; it stays leased and will be retried", "err", err)
			return
		}
		d.publishRow(m, responder.StatusDelivered, "")
		log.InfoContext(ctx, "row delivered: its answer was stored before the failure", "failure", reason)
		return
	}
	e := &responder.Event{
		UserID: m.UserID, OutboxID: m.ID, ExecutionID: m.ExecutionID, Role: responder.RoleSystem,
		Content: tell, Metadata: map[string]any{"outboxId": m.ID, "error": true},
		DedupeKey: "outbox:" + m.ID + ":error",
	}
	if m.ExecutionID != "" {
		e.Metadata["executionId"] = m.ExecutionID
	}
	if err := d.appendEvent(ctx, e); err != nil {
		log.Warn("error event not stored; the row stays leased and will be retried", "err", err)
		return
	}
	if err := d.o.Store.Fail(ctx, m.ID, owner, reason); err != nil {
		log.Warn("fail row", "err", err)
		return
	}
	d.publishRow(m, responder.StatusError, reason)
	log.InfoContext(ctx, "row failed", "reason", reason)
}

// answerKey is the dedupe key of a row's answer event.
func answerKey(outboxID string) string { return "outbox:" + outboxID + ":assistant" }

// answered reports whether the row's answer event is stored.
func (d *Dispatcher) answered(ctx context.Context, outboxID string) (bool, error) {
	_, err := d.o.Store.EventByDedupeKey(ctx, answerKey(outboxID))
	switch {
	case err == nil:
		return true, nil
	case responder.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("look up answer of %s: %w", outboxID, err)
	}
}

// appendEvent stores e and, when it is new, publishes it to this
// instance's sockets.
func (d *Dispatcher) appendEvent(ctx context.Context, e *responder.Event) error {
	var created bool
	err := inSpan(ctx, "event append", func(ctx context.Context) (err error) {
		e.TraceParent = telemetry.Traceparent(ctx)
		created, err = d.o.Store.AppendEvent(ctx, e)
		return err
	})
	if err != nil {
		return fmt.Errorf("append %s event %s: %w", e.Role, e.DedupeKey, err)
	}
	if created && d.o.Hub != nil {
		publishSpan(ctx, e, d.o.Hub.PublishEvent)
	}
	return nil
}

// run does the row's work: Julep user, execution (found or created),
// following it, and the result.
func (r *row) run(ctx context.Context) error {
	if r.m.Attempts > 1 {
		// An earlier attempt stored the answer and then failed to mark
		// the row: delivering is all that is left.
		answered, err := r.d.answered(ctx, r.m.ID)
		if err != nil {
			return storeErr("look up answer", err)
		}
		if answered {
			return r.deliver(ctx)
		}
	}
	if err := inSpan(ctx, "julep user ensure", r.ensureUser); err != nil {
		return err
	}
	if r.m.ExecutionID == "" && r.m.Attempts > 1 {
		// An earlier owner may have created the execution and crashed
		// before recording it.
		x, err := r.findExecution(ctx)
		if err != nil {
			return err
		}
		if x != nil {
			r.d.log.InfoContext(ctx, "found the execution of an earlier attempt", "outbox_id", r.m.ID, "execution_id", x.Id)
			if err := storeErr("record execution", r.d.o.Store.SetExecution(ctx, r.m.ID, r.owner, x.Id)); err != nil {
				return err
			}
			r.m.ExecutionID = x.Id
		}
	}
	if r.m.ExecutionID == "" {
		if err := inSpan(ctx, "julep execution create", r.createExecution); err != nil {
			return err
		}
	}
	x, err := r.followSpan(ctx)
	if err != nil {
		return err
	}
	return r.finish(ctx, x)
}

// ensureUser creates or updates the row's Julep user (deterministic id, so
// harmless to repeat) and records the id on the auth user and the row.
func (r *row) ensureUser(ctx context.Context) error {
	d := r.d
	id := r.m.JulepUserID
	if id == "" {
		id = responder.JulepUserID(r.m.UserID)
	}
	r.julepUser = id
	if !d.ensured.fresh(id, d.o.Now()) {
		u, err := d.o.Store.UserByID(ctx, r.m.UserID)
		if err != nil && !responder.IsNotFound(err) {
			return storeErr("read user", err)
		}
		in := julep.UserInput{Name: "Astra user", Metadata: julep.Metadata{"astra_user_id": r.m.UserID}}
		if u != nil && strings.TrimSpace(u.Name) != "" {
			in.Name = truncate(strings.TrimSpace(u.Name), 120)
		}
		if d.o.Project != "-" && !d.noProject.Load() {
			in.Project = d.o.Project
		}
		_, err = d.o.Julep.CreateOrUpdateUser(ctx, id, in)
		if err != nil && in.Project != "" && isClientError(err) {
			// A Julep without that project: users work without one.
			in.Project = ""
			if _, err2 := d.o.Julep.CreateOrUpdateUser(ctx, id, in); err2 == nil {
				d.log.Warn("Julep refused the users' project; creating users without one", "project", d.o.Project, "err", err)
				d.noProject.Store(true)
				err = nil
			}
		}
		if err != nil {
			return classify("create or update Julep user "+id, err)
		}
		if u != nil && u.JulepUserID != id {
			if err := d.o.Store.SetUserJulepID(ctx, u.ID, id); err != nil {
				return storeErr("record Julep user on user", err)
			}
		}
		d.ensured.add(id, d.o.Now())
	}
	if r.m.JulepUserID != id {
		if err := d.o.Store.SetJulepUser(ctx, r.m.ID, r.owner, id); err != nil {
			return storeErr("record Julep user on row", err)
		}
		r.m.JulepUserID = id
	}
	return nil
}

func isClientError(err error) bool {
	s := julep.StatusCode(err)
	return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests && s != http.StatusConflict
}

// Executions created before the row (less this much clock skew between
// Julep and the store) cannot be the row's.
const findSkew = 5 * time.Minute

// findPages bounds the search: that many pages of 100 recent executions.
const findPages = 50

// findExecution looks through the task's recent executions, newest first,
// for one carrying this row's outbox id. Julep lists executions without a
// metadata filter, so this pages until executions older than the row.
func (r *row) findExecution(ctx context.Context) (*julep.Execution, error) {
	oldest := r.m.CreatedAt.Add(-findSkew)
	var found *julep.Execution
	for page, offset := 0, 0; page < findPages; page++ {
		xs, err := r.d.o.Julep.ListExecutions(ctx, r.d.o.TaskID, 100, offset)
		if err != nil {
			return nil, classify("look for an earlier execution", err)
		}
		for i := range xs {
			if id, _ := xs[i].Metadata["outbox_id"].(string); id == r.m.ID {
				// Newest first: the last match is the first created.
				found = &xs[i]
			}
		}
		if len(xs) < 100 || xs[len(xs)-1].CreatedAt.Before(oldest) {
			break
		}
		// Newer executions arriving meanwhile shift items down: a page may
		// repeat some, never skip one.
		offset += len(xs)
	}
	return found, nil
}

// createExecution starts the responder task for the row and records the
// execution id at once.
func (r *row) createExecution(ctx context.Context) error {
	d := r.d
	input := map[string]any{"user_id": r.julepUser, "message": r.m.Content, "outbox_id": r.m.ID}
	if h, err := r.history(ctx); err != nil {
		return storeErr("read history", err)
	} else if len(h) > 0 {
		input["history"] = h
	}
	if v, _ := r.m.Metadata["voice"].(bool); v {
		input["voice"] = true
	}
	meta := map[string]any{"outbox_id": r.m.ID, "user_id": r.m.UserID, "source": "astra"}
	// Keyed by the row: a second owner that took the row over while this
	// create was still in flight (its lease lapsed) gets the same
	// execution from an engine that honours the key.
	x, err := d.o.Julep.CreateExecutionOnce(ctx, d.o.TaskID, "outbox:"+r.m.ID, input, meta)
	if err != nil {
		// After an ambiguous failure the execution may exist: the next
		// attempt (Attempts > 1) looks for it before creating another.
		return classify("create execution", err)
	}
	d.m.claimToCreate.Observe(d.o.Now().Sub(r.claimedAt).Seconds())
	r.created = true
	if err := d.o.Store.SetExecution(ctx, r.m.ID, r.owner, x.Id); err != nil {
		return storeErr("record execution "+x.Id, err)
	}
	r.m.ExecutionID = x.Id
	d.log.InfoContext(ctx, "execution created", rowAttrs(r.m)...)
	return nil
}

// history is the user's earlier messages (before this row) with their
// answers, oldest first, as [{role, content}].
func (r *row) history(ctx context.Context) ([]map[string]any, error) {
	n := r.d.o.HistoryTurns
	if n <= 0 {
		return nil, nil
	}
	st := r.d.o.Store
	// Only the rows before this one: a backlog of newer rows of the same
	// user (a flood) costs nothing here.
	earlier, err := st.UserMessagesBefore(ctx, r.m.UserID, r.m, n) // newest first
	if err != nil {
		return nil, err
	}
	if len(earlier) == 0 {
		return nil, nil
	}
	events, err := st.LatestEvents(ctx, r.m.UserID, 4*n)
	if err != nil {
		return nil, err
	}
	answers := map[string]string{}
	for _, e := range events {
		if e.Role == responder.RoleAssistant && e.OutboxID != "" {
			answers[e.OutboxID] = e.Content
		}
	}
	out := make([]map[string]any, 0, 2*len(earlier))
	for i := len(earlier) - 1; i >= 0; i-- {
		m := earlier[i]
		out = append(out, map[string]any{"role": "user", "content": m.Content})
		if a, ok := answers[m.ID]; ok {
			out = append(out, map[string]any{"role": "assistant", "content": a})
		}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}
