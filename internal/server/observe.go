package server

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/telemetry"
)

// observeSocketWrite starts the span and log line of sending one event to
// one socket: in the message's trace when the event was published in
// process (it carries the publisher's context), else in a trace of its own
// (an event another instance wrote, read from the store or a feed).
func (s *server) observeSocketWrite(ctx context.Context, e *responder.Event) (context.Context, func(error)) {
	parent := telemetry.WithTraceparent(context.WithoutCancel(ctx), e.TraceParent)
	if e.TraceParent == "" {
		// A root, not a child of the socket request's hours-long span.
		parent = trace.ContextWithSpanContext(context.WithoutCancel(ctx), trace.SpanContext{})
	}
	sctx, span := telemetry.Tracer().Start(parent, "socket write", trace.WithAttributes(
		attribute.String("astra.event_id", e.ID), attribute.String("astra.outbox_id", e.OutboxID)))
	return ctx, func(err error) {
		defer telemetry.End(span, err) // after the log line: a test waiting for the span finds both
		attrs := []any{"event_id", e.ID, "role", string(e.Role), "user", e.UserID}
		if e.OutboxID != "" {
			attrs = append(attrs, "outbox_id", e.OutboxID)
		}
		if e.ExecutionID != "" {
			attrs = append(attrs, "execution_id", e.ExecutionID)
		}
		if err != nil {
			s.log.DebugContext(sctx, "socket send failed", append(attrs, "err", err)...)
			return
		}
		s.log.DebugContext(sctx, "socket sent", attrs...)
	}
}
