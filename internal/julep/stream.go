package julep

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/astra-app/astra/internal/julep/julepapi"
)

// maxEventLine bounds one SSE line; status and delta events are small.
const maxEventLine = 1 << 20

// StreamStatus follows GET /executions/{id}/status.stream, calling fn with
// each status event in order. It returns nil after fn has seen a terminal
// status. When fn returns an error the stream is closed and that error is
// returned unchanged. A server without the stream (404) gives an error
// wrapping ErrNotSupported: poll GetExecution instead. A stream that ends or
// goes silent before a terminal status gives ErrStreamInterrupted (transient).
func (c *Client) StreamStatus(ctx context.Context, execID string, fn func(StatusEvent) error) error {
	return c.streamStatus(ctx, execID, nil, fn)
}

// AwaitTerminal follows the status stream until the execution is terminal
// and returns that last event. It asks the server for the terminal event
// only (terminal_only, an Astra extension); a server that ignores the
// request sends every event, and the ones before are skipped. Errors are as
// for StreamStatus. Pass the event to ExecutionFromStatus to save a
// GetExecution where the server sent the result with it.
func (c *Client) AwaitTerminal(ctx context.Context, execID string) (StatusEvent, error) {
	var last StatusEvent
	err := c.streamStatus(ctx, execID, &julepapi.StreamExecutionStatusParams{TerminalOnly: true},
		func(ev StatusEvent) error { last = ev; return nil })
	return last, err
}

// ExecutionFromStatus returns the execution a terminal status event
// describes, when the event carries its output (an Astra extension; a real
// Julep's events do not, and then ok is false: call GetExecution). The
// execution's input and task id are not in the event and stay empty.
func ExecutionFromStatus(ev StatusEvent) (x *Execution, ok bool) {
	if !IsTerminal(ev.Status) || len(ev.Output) == 0 {
		return nil, false
	}
	x = &Execution{Id: ev.ExecutionId, Status: ev.Status, Error: ev.Error, Metadata: ev.Metadata,
		TransitionCount: ev.TransitionCount, CreatedAt: ev.CreatedAt, UpdatedAt: ev.UpdatedAt}
	if err := json.Unmarshal(ev.Output, &x.Output); err != nil {
		return nil, false
	}
	return x, true
}

func (c *Client) streamStatus(ctx context.Context, execID string, params *julepapi.StreamExecutionStatusParams,
	fn func(StatusEvent) error) error {
	op := "stream status of execution " + execID
	if err := requireID(op, execID); err != nil {
		return err
	}
	terminal := false
	err := c.stream(ctx, op, func(ctx context.Context) (*http.Response, error) {
		return c.api.StreamExecutionStatus(ctx, execID, params, acceptEventStream)
	}, func(data []byte) error {
		var ev StatusEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("julep: %s: decode event %q: %w", op, truncate(data), err)
		}
		if err := fn(ev); err != nil {
			return callbackError{err}
		}
		if IsTerminal(ev.Status) {
			terminal = true
			return errStop
		}
		return nil
	})
	if err == nil && !terminal {
		return fmt.Errorf("julep: %s: %w: closed before a terminal status", op, ErrStreamInterrupted)
	}
	return err
}

// StreamDeltas follows GET /executions/{id}/deltas.stream (an Astra
// extension), calling fn with each text fragment a running prompt step
// produces, in order. It returns nil when the server ends the stream (the
// execution is terminal). Errors are as for StreamStatus; a real Julep
// answers 404, so ErrNotSupported means "no deltas", not a failure.
func (c *Client) StreamDeltas(ctx context.Context, execID string, fn func(Delta) error) error {
	op := "stream deltas of execution " + execID
	if err := requireID(op, execID); err != nil {
		return err
	}
	return c.stream(ctx, op, func(ctx context.Context) (*http.Response, error) {
		return c.api.StreamExecutionDeltas(ctx, execID, acceptEventStream)
	}, func(data []byte) error {
		var d Delta
		if err := json.Unmarshal(data, &d); err != nil {
			return fmt.Errorf("julep: %s: decode event %q: %w", op, truncate(data), err)
		}
		if err := fn(d); err != nil {
			return callbackError{err}
		}
		return nil
	})
}

func acceptEventStream(_ context.Context, req *http.Request) error {
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	return nil
}

// drainFor and drainMax bound the read of a stream's rest after the event
// that stopped it.
const (
	drainFor = time.Second
	drainMax = 64 << 10
)

// drainAndClose reads what is left of a stream the caller stopped reading,
// then closes it. A server ends a status stream right after its terminal
// event: read to that end, the connection goes back to the pool instead of
// being closed and dialled again for the next execution. A server that
// keeps the stream open is cut off after drainFor, as closing at once would.
func drainAndClose(body io.ReadCloser, cancel context.CancelFunc) {
	t := time.AfterFunc(drainFor, cancel)
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainMax))
	t.Stop()
	body.Close()
	cancel()
}

// errStop ends a stream early without error.
var errStop = errors.New("stop")

// callbackError carries the caller's own error out of the reader unchanged.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// stream opens an SSE response (retrying the connection like any safe GET),
// then feeds each event's data to onData until the server closes the stream
// cleanly (nil), onData returns errStop (nil) or an error, or the stream fails.
func (c *Client) stream(ctx context.Context, op string, send func(context.Context) (*http.Response, error), onData func([]byte) error) error {
	sctx, cancel := context.WithCancel(ctx)
	resp, err := c.openStream(sctx, op, send)
	if err != nil {
		cancel()
		return err
	}
	stopped := false
	defer func() {
		if stopped {
			go func() {
				drainAndClose(resp.Body, cancel)
				if c.drained != nil {
					c.drained()
				}
			}()
			return
		}
		resp.Body.Close()
		cancel()
	}()

	body := io.Reader(resp.Body)
	var idle *idleReader
	if c.streamIdle > 0 {
		idle = newIdleReader(resp.Body, c.streamIdle, cancel)
		defer idle.stop()
		body = idle
	}
	err = readEvents(body, func(ev sseEvent) error {
		if ev.event == "error" {
			return fmt.Errorf("julep: %s: server sent error event: %s", op, truncate(ev.data))
		}
		return onData(ev.data)
	})
	var cb callbackError
	switch {
	case errors.Is(err, errStop):
		stopped = true
		return nil
	case err == nil:
		return nil
	case errors.As(err, &cb):
		return cb.err
	case ctx.Err() != nil:
		return fmt.Errorf("julep: %s: %w", op, ctx.Err())
	case idle != nil && idle.fired():
		return fmt.Errorf("julep: %s: %w: nothing received for %v", op, ErrStreamInterrupted, c.streamIdle)
	case errors.Is(err, errReadFailed):
		return fmt.Errorf("julep: %s: %w: %v", op, ErrStreamInterrupted, err)
	default:
		return err
	}
}

// openStream gets the stream's response headers, retrying transient
// failures; 404 or a response that is not an event stream is ErrNotSupported.
func (c *Client) openStream(ctx context.Context, op string, send func(context.Context) (*http.Response, error)) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := c.openOnce(ctx, send)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("julep: %s: %w", op, ctx.Err())
		}
		if errors.Is(err, ErrNotSupported) || attempt >= c.retry.MaxAttempts || !IsTransient(err) {
			return nil, fmt.Errorf("julep: %s: %w", op, err)
		}
		var retryAfter time.Duration
		var ae *APIError
		if errors.As(err, &ae) {
			if retryAfter = ae.RetryAfter; retryAfter > c.retry.MaxRetryAfter {
				return nil, fmt.Errorf("julep: %s: %w", op, err)
			}
		}
		if serr := c.sleep(ctx, c.retry.delay(attempt, retryAfter)); serr != nil {
			return nil, fmt.Errorf("julep: %s: %w (last failure: %v)", op, serr, err)
		}
	}
}

func (c *Client) openOnce(ctx context.Context, send func(context.Context) (*http.Response, error)) (*http.Response, error) {
	// The attempt's timeout covers only the wait for headers: the stream
	// itself lives as long as ctx (and the idle watchdog) allow.
	actx, cancel := context.WithCancel(ctx)
	var timer *time.Timer
	if c.timeout > 0 {
		timer = time.AfterFunc(c.timeout, cancel)
	}
	resp, err := send(actx)
	if timer != nil && !timer.Stop() {
		if resp != nil {
			resp.Body.Close()
		}
		cancel()
		return nil, newTransportError(fmt.Errorf("no response headers within %v", c.timeout))
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		ae := newAPIError(resp, body)
		if ae.Status == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %w", ErrNotSupported, ae)
		}
		return nil, ae
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("%w: answered %q, not text/event-stream", ErrNotSupported, mt)
	}
	// Tie actx's lifetime to the body: closing the body releases it.
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// idleReader cancels the stream when no byte arrives for d.
type idleReader struct {
	r       io.Reader
	d       time.Duration
	t       *time.Timer
	mu      sync.Mutex
	expired bool
}

func newIdleReader(r io.Reader, d time.Duration, cancel context.CancelFunc) *idleReader {
	ir := &idleReader{r: r, d: d}
	ir.t = time.AfterFunc(d, func() {
		ir.mu.Lock()
		ir.expired = true
		ir.mu.Unlock()
		cancel()
	})
	return ir
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.t.Reset(ir.d)
	}
	return n, err
}

func (ir *idleReader) stop() { ir.t.Stop() }

func (ir *idleReader) fired() bool {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	return ir.expired
}

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	event string
	id    string
	data  []byte
}

// errReadFailed marks a failure reading the stream itself (as opposed to an
// event the reader rejected).
var errReadFailed = errors.New("read failed")

// readEvents parses text/event-stream (the WHATWG rules that matter here):
// lines starting with ':' are comments (pings); "data:" lines accumulate;
// a blank line dispatches the event if it has data. It returns nil at a
// clean end of stream, the first error fn returns, or a read error wrapping
// errReadFailed. An unterminated event at the end is dropped, as the spec says.
func readEvents(r io.Reader, fn func(sseEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	var ev sseEvent
	var data bytes.Buffer
	hasData := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if hasData {
				// Copy: the buffer is reused for the next event.
				ev.data = bytes.Clone(bytes.TrimSuffix(data.Bytes(), []byte("\n")))
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, hasData = sseEvent{}, false
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "event":
			ev.event = value
		case "id":
			ev.id = value
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %w", errReadFailed, err)
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
