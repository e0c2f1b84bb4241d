package dispatch

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/telemetry"
)

// startRow begins the trace work of one claimed row's attempt: a span
// continuing the trace its POST began (whichever instance posted it), with
// the claim as its first child (from asking to getting the row), and the
// "row claimed" log line. The returned func ends the row's span.
func (d *Dispatcher) startRow(ctx context.Context, m *responder.Message, sent, claimed time.Time) (context.Context, func(error)) {
	ctx = telemetry.WithTraceparent(ctx, m.TraceParent)
	ctx, span := telemetry.Tracer().Start(ctx, "dispatch row", trace.WithTimestamp(sent), trace.WithAttributes(
		attribute.String("astra.outbox_id", m.ID), attribute.String("astra.user_id", m.UserID),
		attribute.Int("astra.attempt", m.Attempts)))
	_, claim := telemetry.Tracer().Start(ctx, "outbox claim", trace.WithTimestamp(sent))
	claim.End(trace.WithTimestamp(claimed))
	attrs := []any{"outbox_id", m.ID, "user", m.UserID, "attempt", m.Attempts, "waited", claimed.Sub(m.CreatedAt).Round(time.Millisecond)}
	if m.ExecutionID != "" {
		attrs = append(attrs, "execution_id", m.ExecutionID)
	}
	d.log.InfoContext(ctx, "row claimed", attrs...)
	return ctx, func(err error) {
		if m.ExecutionID != "" {
			span.SetAttributes(attribute.String("julep.execution.id", m.ExecutionID))
		}
		telemetry.End(span, err)
	}
}

// inSpan runs fn in a child span of ctx's named name.
func inSpan(ctx context.Context, name string, fn func(context.Context) error) error {
	ctx, span := telemetry.Tracer().Start(ctx, name)
	err := fn(ctx)
	telemetry.End(span, err)
	return err
}

// followSpan is inSpan for following the execution.
func (r *row) followSpan(ctx context.Context) (*julep.Execution, error) {
	ctx, span := telemetry.Tracer().Start(ctx, "julep execution follow",
		trace.WithAttributes(attribute.String("julep.execution.id", r.m.ExecutionID)))
	x, err := r.follow(ctx)
	if x != nil {
		span.SetAttributes(attribute.String("julep.execution.status", string(x.Status)))
	}
	telemetry.End(span, err)
	return x, err
}

// rowAttrs are the ids a row's log lines carry.
func rowAttrs(m *responder.Message) []any {
	a := []any{"outbox_id", m.ID, "user", m.UserID}
	if m.ExecutionID != "" {
		a = append(a, "execution_id", m.ExecutionID)
	}
	return a
}

// publishSpan wraps the hub publish of an appended event; the event
// carries the span's context to the sockets that send it.
func publishSpan(ctx context.Context, e *responder.Event, publish func(responder.Event)) {
	ctx, span := telemetry.Tracer().Start(ctx, "hub publish")
	ev := *e
	ev.TraceParent = telemetry.Traceparent(ctx)
	publish(ev)
	span.End()
}
