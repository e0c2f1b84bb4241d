package dispatch

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"sync"
	"time"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/stream"
)

// errExecTimeout ends following an execution that ran too long.
var errExecTimeout = errors.New("execution took too long")

// maxFollowFailures is how many transient failures in a row following may
// meet before the row is released for a later attempt.
const maxFollowFailures = 6

// follow waits until the row's execution is terminal and returns it:
// through the status stream where the server has one, else by polling.
// Meanwhile it relays token deltas and tells the person when it is slow.
func (r *row) follow(ctx context.Context) (*julep.Execution, error) {
	d := r.d
	execID := r.m.ExecutionID
	fctx, cancel := context.WithTimeoutCause(ctx, d.o.ExecutionTimeout, errExecTimeout)
	defer cancel()

	var bg sync.WaitGroup
	defer bg.Wait()
	bgCtx, stopBg := context.WithCancel(fctx)
	defer stopBg()
	var relayed chan struct{} // closed when the relay has ended
	if (d.o.Hub != nil || d.deltas != nil) && !d.noDeltas.Load() {
		relayed = make(chan struct{})
		bg.Add(1)
		go func() { defer bg.Done(); defer close(relayed); r.relayDeltas(bgCtx, execID) }()
	}
	// The terminal status can come before the relay has sent (or even
	// read) the reply's deltas; stopping it then lost them all. So the
	// relay is given until it has read the reply to its end (the engine
	// keeps a finished run's deltas) before the answer is appended, which
	// keeps every delta ahead of the final append.
	defer func() {
		if relayed == nil {
			return
		}
		t := time.NewTimer(relayGrace)
		defer t.Stop()
		select {
		case <-relayed:
		case <-t.C:
		case <-ctx.Done():
		}
	}()
	if d.o.StillWorking > 0 {
		// Counted before the timer exists: an Add in the callback could
		// run while (or after) Wait runs, which panics or leaves the
		// callback running after following has ended.
		bg.Add(1)
		stop := d.afterFunc(d.o.StillWorking, func() {
			defer bg.Done()
			r.stillWorking(bgCtx)
		})
		defer func() {
			if stop() {
				bg.Done() // stopped before firing: the callback never runs
			}
		}()
	}

	poll := d.noStatusSS.Load()
	delay := 100 * time.Millisecond
	failures := 0
	for {
		var err error
		switched := false
		if !poll {
			var ev julep.StatusEvent
			ev, err = d.o.Julep.AwaitTerminal(fctx, execID)
			if err == nil {
				// Astra's engine sends the result with the terminal status;
				// from a real Julep it takes the GET below.
				if x, ok := julep.ExecutionFromStatus(ev); ok {
					return x, nil
				}
			}
			if errors.Is(err, julep.ErrNotSupported) {
				poll, switched, err = true, true, nil
			}
		}
		// After the stream ends (terminal or broken), or as the poll itself.
		x, gerr := d.o.Julep.GetExecution(fctx, execID)
		if switched && gerr == nil && !d.noStatusSS.Swap(true) {
			// The execution exists, so the 404 was the stream's own.
			d.log.Info("Julep has no status stream; polling executions")
		}
		switch {
		case gerr == nil && julep.IsTerminal(x.Status):
			return x, nil
		case julep.IsNotFound(gerr):
			return nil, &permanentError{
				reason: fmt.Sprintf("execution %s no longer exists in Julep", execID),
				tell:   "Sorry, I lost track of the answer to this message. Please send it again.",
				class:  reasonExecFailed,
			}
		case gerr != nil:
			err = gerr
		}
		if fctx.Err() != nil {
			return nil, r.followEnded(ctx, fctx)
		}
		if err != nil {
			cerr := classify("follow execution "+execID, err)
			if !isTransient(cerr) {
				return nil, cerr
			}
			if failures++; failures >= maxFollowFailures {
				return nil, cerr
			}
		} else {
			failures = 0
		}
		if err := sleep(fctx, delay); err != nil {
			return nil, r.followEnded(ctx, fctx)
		}
		delay = min(delay*2, time.Second)
	}
}

func isTransient(err error) bool {
	var te *transientError
	return errors.As(err, &te)
}

// followEnded explains why following stopped: the row's own context ended
// (shutdown, lease lost), or the execution ran out of time, in which case
// it is cancelled and the row fails.
func (r *row) followEnded(ctx, fctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if errors.Is(context.Cause(fctx), errExecTimeout) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.d.o.Julep.CancelExecution(cctx, r.m.ExecutionID, "astra: no result within "+r.d.o.ExecutionTimeout.String()); err != nil {
			r.d.log.Warn("cancel overdue execution", "execution_id", r.m.ExecutionID, "err", err)
		}
		return &permanentError{
			reason: fmt.Sprintf("execution %s gave no result within %v; cancelled", r.m.ExecutionID, r.d.o.ExecutionTimeout),
			tell:   "Sorry, this answer took far too long, so I stopped it. Please send your message again.",
			class:  reasonExecTimeout,
		}
	}
	return context.Cause(fctx)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// relayGrace bounds how long a terminal execution waits for its delta
// relay to reach the end of the reply.
const relayGrace = 5 * time.Second

// errReplyDone ends the delta relay after the reply step.
var errReplyDone = errors.New("reply step done")

// relayDeltas sends the reply's text fragments to the person's sockets as
// they are produced: to this instance's hub, and through the store to
// every instance's feed (ShareDeltas). Only the first prompt step's deltas
// are the reply (the task's later summary step is not for the person); the
// engine marks the end of a step with an empty delta. It returns once the
// deltas it shared are written, so follow appends the answer after them.
func (r *row) relayDeltas(ctx context.Context, execID string) {
	d := r.d
	var written <-chan struct{} // the write holding the last shared delta
	shared := 0
	err := d.o.Julep.StreamDeltas(ctx, execID, func(dl julep.Delta) error {
		if dl.Delta == "" {
			return errReplyDone
		}
		if d.o.Hub != nil {
			d.o.Hub.PublishDelta(r.m.UserID, stream.Delta{OutboxID: r.m.ID, ExecutionID: execID, Text: dl.Delta, Index: dl.Index})
		}
		// Bounded per reply before anything is written: past the limit
		// (or for an oversized fragment) other instances' sockets get the
		// text with the answer only.
		if d.deltas != nil && shared < responder.MaxReplyDeltas && len(dl.Delta) <= responder.MaxDeltaText && dl.Index >= 0 {
			shared++
			written = d.deltas.add(responder.Delta{UserID: r.m.UserID, OutboxID: r.m.ID, ExecutionID: execID, Index: dl.Index, Text: dl.Delta})
		}
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errReplyDone), ctx.Err() != nil:
	case errors.Is(err, julep.ErrNotSupported) && r.created:
		// The execution was just created, so the 404 is the stream's.
		if !d.noDeltas.Swap(true) {
			d.log.Info("Julep has no delta stream; answers arrive whole")
		}
	default:
		d.log.Debug("delta stream ended", "execution_id", execID, "err", err)
	}
	if written != nil {
		select {
		case <-written:
		case <-ctx.Done():
		}
	}
}

// publishRow tells the person's sockets on this instance that their
// message m is now in status (sockets elsewhere read it from the store
// when the row's event reaches them: stream.Options.Rows).
func (d *Dispatcher) publishRow(m *responder.Message, status responder.Status, lastError string) {
	if d.o.Hub == nil {
		return
	}
	row := *m
	row.Status, row.LastError, row.UpdatedAt = status, lastError, d.o.Now()
	if status == responder.StatusDelivered {
		row.DeliveredAt = d.o.Now()
	}
	d.o.Hub.PublishOutbox(row)
}

// stillWorking tells the person, once per row, that the answer is coming.
func (r *row) stillWorking(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	e := &responder.Event{
		UserID: r.m.UserID, OutboxID: r.m.ID, ExecutionID: r.m.ExecutionID, Role: responder.RoleSystem,
		Content:   "Still working on your answer…",
		Metadata:  map[string]any{"outboxId": r.m.ID, "executionId": r.m.ExecutionID, "progress": true},
		DedupeKey: "outbox:" + r.m.ID + ":still-working",
	}
	if err := r.d.appendEvent(ctx, e); err != nil && ctx.Err() == nil {
		r.d.log.Warn("still-working event", "outbox_id", r.m.ID, "err", err)
	}
}

// finish turns a terminal execution into the row's outcome.
func (r *row) finish(ctx context.Context, x *julep.Execution) error {
	d := r.d
	if !x.CreatedAt.IsZero() && !x.UpdatedAt.IsZero() {
		d.m.execDuration.WithLabelValues(string(x.Status)).Observe(x.UpdatedAt.Sub(x.CreatedAt).Seconds())
	}
	switch x.Status {
	case julep.StatusSucceeded:
	case julep.StatusCancelled:
		return &permanentError{
			reason: fmt.Sprintf("execution %s was cancelled%s", x.Id, suffix(x.Error)),
			tell:   "Sorry, the answer to this message was cancelled before it was ready. Please send it again.",
			class:  reasonExecCancelled,
		}
	default:
		return &permanentError{
			reason: fmt.Sprintf("execution %s failed%s", x.Id, suffix(x.Error)),
			tell:   "Sorry, something went wrong while preparing the answer to this message. Please try sending it again.",
			class:  reasonExecFailed,
		}
	}
	reply, summary := outputOf(x.Output)
	if strings.TrimSpace(reply) == "" {
		return &permanentError{
			reason: fmt.Sprintf("execution %s succeeded without a reply", x.Id),
			tell:   "Sorry, the assistant finished without an answer to this message. Please try again.",
			class:  reasonExecFailed,
		}
	}
	// No lease check first: if another owner has taken the row over, the
	// dedupe key makes both appends one event and only one Deliver passes.
	meta := map[string]any{"executionId": x.Id, "outboxId": r.m.ID, "taskId": d.o.TaskID}
	if summary != "" {
		meta["summary"] = summary
	}
	if hasAudio(x.Output) {
		// Audio is stored before the answer event that links it: with the
		// answer already stored (another attempt got here first), storing
		// it again would leave a blob nothing refers to.
		answered, err := d.answered(ctx, r.m.ID)
		if err != nil {
			return storeErr("look up answer", err)
		}
		if answered {
			return r.deliver(ctx)
		}
	}
	if url := d.storeAudio(ctx, r.m.UserID, x.Output); url != "" {
		meta["audioUrl"] = url
	}
	if strings.TrimSpace(reply) == "WAIT" {
		// The persona's "nothing in memory answers this": kept as is, marked
		// so a client can show it as such.
		meta["wait"] = true
	}
	e := &responder.Event{
		UserID: r.m.UserID, OutboxID: r.m.ID, ExecutionID: x.Id, Role: responder.RoleAssistant,
		Content: reply, Metadata: meta, DedupeKey: answerKey(r.m.ID),
	}
	if err := d.appendEvent(ctx, e); err != nil {
		return storeErr("append answer", err)
	}
	// From here the person has the answer: nothing may turn the row into
	// an error (fail delivers an answered row).
	if summary != "" {
		// The seed's step 6: the latest turn summary, on the user record
		// (the task has also saved it as a frontline notes doc in Julep,
		// and it is on the event). An extra: a failure is only logged.
		if err := d.o.Store.SetResponderSummary(ctx, r.m.UserID, summary, d.o.Now()); err != nil && !responder.IsNotFound(err) && ctx.Err() == nil {
			d.log.Warn("turn summary not stored on the user", "outbox_id", r.m.ID, "err", err)
		}
	}
	return r.deliver(ctx)
}

// deliver marks the answered row delivered.
func (r *row) deliver(ctx context.Context) error {
	if err := inSpan(ctx, "outbox deliver", func(ctx context.Context) error { return r.d.o.Store.Deliver(ctx, r.m.ID, r.owner) }); err != nil {
		return storeErr("deliver", err)
	}
	r.d.publishRow(r.m, responder.StatusDelivered, "")
	r.d.log.InfoContext(ctx, "row delivered", append(rowAttrs(r.m), "took", r.d.o.Now().Sub(r.claimedAt).Round(time.Millisecond))...)
	return nil
}

func suffix(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return ""
	}
	return ": " + s
}

// outputOf reads the task's {reply, summary}; a plain string output is the
// reply, and any other output is shown as JSON.
func outputOf(out any) (reply, summary string) {
	switch v := out.(type) {
	case map[string]any:
		if s, ok := v["reply"].(string); ok {
			summary, _ = v["summary"].(string)
			return strings.TrimSpace(s), strings.TrimSpace(summary)
		}
	case string:
		return strings.TrimSpace(v), ""
	case nil:
		return "", ""
	}
	b, _ := json.Marshal(out)
	return string(b), ""
}

// hasAudio reports whether the task's output carries a spoken reply.
func hasAudio(out any) bool {
	o, _ := out.(map[string]any)
	a, _ := o["audio"].(map[string]any)
	return a != nil
}

// storeAudio keeps the spoken reply the task returned as
// audio: {content_type, base64} and returns the URL its owner plays it
// from. Audio is an extra: anything wrong with it is logged and the reply
// stays text. Only audio/* types are kept, so a misbehaving speech endpoint
// cannot make the service serve a page from its own origin.
func (d *Dispatcher) storeAudio(ctx context.Context, userID string, out any) string {
	o, _ := out.(map[string]any)
	a, _ := o["audio"].(map[string]any)
	if a == nil {
		return ""
	}
	b64, _ := a["base64"].(string)
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(data) == 0 {
		d.log.Warn("spoken reply dropped: audio is not base64", "err", err)
		return ""
	}
	ct, _ := a["content_type"].(string)
	if mt, _, err := mime.ParseMediaType(ct); err != nil || !strings.HasPrefix(mt, "audio/") {
		ct = "audio/mpeg"
	}
	blob := &responder.Blob{UserID: userID, ContentType: ct, Data: data}
	if err := d.o.Store.PutBlob(ctx, blob); err != nil {
		d.log.Warn("spoken reply dropped: cannot store audio", "err", err, "bytes", len(data))
		return ""
	}
	return responder.AudioPath(blob.ID)
}
