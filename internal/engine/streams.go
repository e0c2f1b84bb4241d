package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// pingEvery is how often an idle SSE stream sends a `: ping` comment.
var pingEvery = 15 * time.Second

// remoteEvery is how often a stream re-reads an execution that another
// process runs (several instances share one state): no in-process change
// wakes it, so it polls.
var remoteEvery = 250 * time.Millisecond

// ifRemote returns c while this engine does not run the execution (the
// stream then polls the state), nil while it does (its changes wake the
// stream).
func (e *Engine) ifRemote(id string, c <-chan time.Time) <-chan time.Time {
	if e.runFor(id) != nil {
		return nil
	}
	return c
}

// hub wakes stream handlers when an execution changes. A waiter takes the
// channel first, then reads the state, so a change between the two is not
// lost. For executions running in this process it also keeps the latest
// record, so followers are served from memory instead of the database.
type hub struct {
	mu      sync.Mutex
	chans   map[string]*waiters
	latest  map[string]Execution
	tracked map[string]bool
	// ended keeps the last few executions that finished here, terminal
	// and so unchanging: a follower woken by the terminal status reads
	// it from memory even when the run has already untracked it.
	ended     map[string]Execution
	endedFIFO []string
	closed    bool
	done      chan struct{}
}

// keepEnded bounds hub.ended.
const keepEnded = 256

func newHub() *hub {
	return &hub{chans: map[string]*waiters{}, latest: map[string]Execution{}, tracked: map[string]bool{},
		ended: map[string]Execution{}, done: make(chan struct{})}
}

// waiters is the channel the next change of one execution closes, shared
// by everyone waiting for it; n counts them so the last to leave removes it.
type waiters struct {
	ch chan struct{}
	n  int
}

// wait returns a channel closed at the execution's next change, and a
// release function the caller must call when it stops waiting on it.
func (h *hub) wait(id string) (<-chan struct{}, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return h.done, func() {}
	}
	w, ok := h.chans[id]
	if !ok {
		w = &waiters{ch: make(chan struct{})}
		h.chans[id] = w
	}
	w.n++
	return w.ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if w.n--; w.n == 0 && h.chans[id] == w {
			delete(h.chans, id)
		}
	}
}

// publish records x as the latest state of a tracked execution and wakes
// its waiters.
func (h *hub) publish(x Execution) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tracked[x.ID] {
		h.latest[x.ID] = x
	}
	if w, ok := h.chans[x.ID]; ok {
		close(w.ch)
		delete(h.chans, x.ID)
	}
}

// track starts keeping the latest record of an execution this process runs.
func (h *hub) track(x Execution) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tracked[x.ID] = true
	h.latest[x.ID] = x
}

func (h *hub) untrack(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if x, ok := h.latest[id]; ok && terminal(x.Status) {
		if _, dup := h.ended[id]; !dup {
			if len(h.endedFIFO) >= keepEnded {
				delete(h.ended, h.endedFIFO[0])
				h.endedFIFO = h.endedFIFO[1:]
			}
			h.endedFIFO = append(h.endedFIFO, id)
		}
		h.ended[id] = x
	}
	delete(h.tracked, id)
	delete(h.latest, id)
}

func (h *hub) snapshot(id string) (Execution, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if x, ok := h.latest[id]; ok {
		return x, true
	}
	x, ok := h.ended[id]
	return x, ok
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// deltaLog keeps a running execution's prompt deltas so late joiners get
// everything so far, then the rest as it comes.
type deltaLog struct {
	mu     sync.Mutex
	events []deltaEvent
	ended  bool
	wake   chan struct{}
}

type deltaEvent struct {
	done  bool // the end of a prompt step
	delta string
}

func newDeltaLog() *deltaLog { return &deltaLog{wake: make(chan struct{})} }

func (d *deltaLog) push(ev deltaEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended {
		return
	}
	d.events = append(d.events, ev)
	close(d.wake)
	d.wake = make(chan struct{})
}

func (d *deltaLog) add(s string) { d.push(deltaEvent{delta: s}) }
func (d *deltaLog) endStep()     { d.push(deltaEvent{done: true}) }

func (d *deltaLog) finish() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ended {
		d.ended = true
		close(d.wake)
	}
}

func (d *deltaLog) since(i int) ([]deltaEvent, bool, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]deltaEvent(nil), d.events[min(i, len(d.events)):]...), d.ended, d.wake
}

type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) (*sse, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		return nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f.Flush()
	return &sse{w: w, f: f}, true
}

func (s *sse) event(name string, v any) error {
	if err := s.write(name, v); err != nil {
		return err
	}
	s.f.Flush()
	return nil
}

// write buffers an event without flushing it, so several sent together
// cost one write to the connection.
func (s *sse) write(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if name != "" {
		if _, err := fmt.Fprintf(s.w, "event: %s\n", name); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(s.w, "data: %s\n\n", b)
	return err
}

func (s *sse) ping() error {
	if _, err := fmt.Fprint(s.w, ": ping\n\n"); err != nil {
		return err
	}
	s.f.Flush()
	return nil
}

func statusEvent(ex Execution) map[string]any {
	var errv any
	if ex.Error != "" {
		errv = ex.Error
	}
	meta := ex.Metadata
	if meta == nil {
		meta = map[string]any{}
	}
	ev := map[string]any{"execution_id": ex.ID, "status": ex.Status, "updated_at": ts(ex.UpdatedAt),
		"error": errv, "transition_count": ex.TransitionCount, "metadata": meta}
	if terminal(ex.Status) {
		// Astra extension (api/julep.yaml): the result comes with the
		// terminal status, so a follower needs no GET /executions/{id}.
		ev["output"] = ex.Output
		ev["created_at"] = ts(ex.CreatedAt)
	}
	return ev
}

// serveStatusStream sends the execution's status now and on every change,
// and returns after sending a terminal status. With ?terminal_only=true (an
// Astra extension) it sends the terminal status alone: a follower waiting
// for the result is spared an event per step.
func (e *Engine) serveStatusStream(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	terminalOnly, _ := strconv.ParseBool(r.URL.Query().Get("terminal_only"))
	ex, err := e.execution(ctx, id)
	if err != nil {
		e.writeErr(w, r, stateErr(err, "execution", id))
		return
	}
	s, ok := startSSE(w)
	if !ok {
		e.writeErr(w, r, errorf(http.StatusInternalServerError, "streaming is not supported"))
		return
	}
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	remote := time.NewTicker(remoteEvery)
	defer remote.Stop()
	lastStatus, lastCount := "", -1
	for {
		if e.ctx.Err() != nil {
			return
		}
		ch, release := e.changes.wait(id)
		if ex, err = e.execution(ctx, id); err != nil {
			release()
			return
		}
		if (ex.Status != lastStatus || ex.TransitionCount != lastCount) && (!terminalOnly || terminal(ex.Status)) {
			if s.event("", statusEvent(ex)) != nil {
				release()
				return
			}
			lastStatus, lastCount = ex.Status, ex.TransitionCount
		}
		if terminal(ex.Status) {
			release()
			return
		}
		stop := false
		select {
		case <-ctx.Done():
			stop = true
		case <-ch:
		case <-e.ifRemote(id, remote.C):
		case <-ping.C:
			stop = s.ping() != nil
		}
		release()
		if stop {
			return
		}
	}
}

// serveDeltaStream (an Astra extension) sends the token deltas of the
// execution's prompt steps: `event: delta` with {index, delta}, `event:
// done` when a prompt step ends; it returns when the execution is terminal.
func (e *Engine) serveDeltaStream(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	if _, err := e.execution(ctx, id); err != nil {
		e.writeErr(w, r, stateErr(err, "execution", id))
		return
	}
	s, ok := startSSE(w)
	if !ok {
		e.writeErr(w, r, errorf(http.StatusInternalServerError, "streaming is not supported"))
		return
	}
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	remote := time.NewTicker(remoteEvery)
	defer remote.Stop()
	index := 0
	var (
		cur  *deltaLog
		seen int
	)
	for {
		if e.ctx.Err() != nil {
			return
		}
		ch, release := e.changes.wait(id)
		if !e.deltaRound(ctx, s, id, ch, ping.C, e.ifRemote(id, remote.C), &cur, &seen, &index) {
			release()
			return
		}
		release()
	}
}

// deltaRound sends what the execution's delta log has beyond seen and
// waits for more; it reports whether the stream should go on.
func (e *Engine) deltaRound(ctx context.Context, s *sse, id string, ch <-chan struct{}, ping, remote <-chan time.Time,
	curp **deltaLog, seenp, indexp *int) bool {
	cur, seen, index := *curp, *seenp, *indexp
	defer func() { *curp, *seenp, *indexp = cur, seen, index }()
	if d := e.deltasFor(id); d != nil && d != cur {
		cur, seen = d, 0
	}
	var wake <-chan struct{}
	if cur != nil {
		evs, ended, wk := cur.since(seen)
		seen += len(evs)
		for _, ev := range evs {
			var err error
			// Every event, the end-of-step marker too, has its own index,
			// so a reader dropping repeats by index never drops a fragment.
			if ev.done {
				err = s.write("done", map[string]any{"index": index, "delta": "", "done": true})
			} else {
				err = s.write("delta", map[string]any{"index": index, "delta": ev.delta})
			}
			index++
			if err != nil {
				return false
			}
		}
		if len(evs) > 0 {
			s.f.Flush()
		}
		if !ended {
			wake = wk
		}
	}
	ex, err := e.execution(ctx, id)
	if err != nil {
		return false
	}
	if terminal(ex.Status) && (cur == nil || wake == nil) {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-ch:
	case <-wake:
	case <-remote:
	case <-ping:
		return s.ping() == nil
	}
	return true
}

// keepDeltas is how long a finished run's deltas stay available, so a
// client that opens the stream just after a fast prompt still gets them.
const keepDeltas = 30 * time.Second

type keptDeltas struct {
	log   *deltaLog
	until time.Time
}

// deltasFor returns the delta log of the execution's current run, or of
// its last run if that ended recently.
func (e *Engine) deltasFor(id string) *deltaLog {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.running[id]; r != nil {
		return r.deltas
	}
	if k, ok := e.kept[id]; ok && time.Now().Before(k.until) {
		return k.log
	}
	return nil
}

// keep retains a finished run's deltas for keepDeltas; called with e.mu held.
func (e *Engine) keep(id string, d *deltaLog) {
	now := time.Now()
	if len(e.kept) >= 256 {
		for k, v := range e.kept {
			if now.After(v.until) {
				delete(e.kept, k)
			}
		}
	}
	if len(e.kept) < 4096 && len(d.events) > 0 {
		e.kept[id] = keptDeltas{log: d, until: now.Add(keepDeltas)}
	}
}
