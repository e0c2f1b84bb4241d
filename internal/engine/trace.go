package engine

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/astra-app/astra/internal/telemetry"
)

// requestTrace is the trace context an execution created by r continues:
// the server span astra's HTTP middleware started, else (the engine served
// on its own) the request's traceparent header.
func requestTrace(r *http.Request) string {
	if tp := telemetry.Traceparent(r.Context()); tp != "" {
		return tp
	}
	return telemetry.Traceparent(telemetry.WithTraceparent(context.Background(), r.Header.Get("traceparent")))
}

// traceRun starts the span of one run of an execution (a run resumed by
// another instance after a hand-off is a second span of the same trace).
func (e *Engine) traceRun(ctx context.Context, ex *Execution) (context.Context, trace.Span) {
	ctx = telemetry.WithTraceparent(ctx, ex.TraceParent)
	return telemetry.Tracer().Start(ctx, "execution run", trace.WithAttributes(
		attribute.String("julep.execution.id", ex.ID), attribute.String("julep.task.id", ex.TaskID),
		attribute.Int("julep.task.version", ex.TaskVersion), attribute.String("julep.execution.status.start", ex.Status)))
}

// traceStep starts the span of one step: its path ("main.2", nested
// steps "main.2.then.0"), kind (the step's YAML key) and label.
func traceStep(ctx context.Context, path, kind, label string) (context.Context, trace.Span) {
	name := "step " + kind
	return telemetry.Tracer().Start(ctx, name, trace.WithAttributes(
		attribute.String("julep.step.path", path), attribute.String("julep.step.type", kind),
		attribute.String("julep.step.name", label)))
}

// traceModel starts a GenAI chat span (OpenTelemetry's GenAI semantic
// conventions: "chat {model}", gen_ai.* attributes).
func traceModel(ctx context.Context, model string) (context.Context, trace.Span) {
	return telemetry.Tracer().Start(ctx, "chat "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		semconv.GenAIOperationNameChat, semconv.GenAIRequestModel(model)))
}

// endModel records what a model call used and when its first token came.
func endModel(span trace.Span, start time.Time, firstToken time.Time, inTokens, outTokens int, err error) {
	if inTokens > 0 || outTokens > 0 {
		span.SetAttributes(semconv.GenAIUsageInputTokens(inTokens), semconv.GenAIUsageOutputTokens(outTokens))
	}
	if !firstToken.IsZero() {
		span.SetAttributes(attribute.Float64("gen_ai.response.time_to_first_chunk", firstToken.Sub(start).Seconds()))
	}
	telemetry.End(span, err)
}

// traceTool starts the span of a tool call (api_call, a system tool).
func traceTool(ctx context.Context, kind, name string) (context.Context, trace.Span) {
	return telemetry.Tracer().Start(ctx, fmt.Sprintf("execute_tool %s", name), trace.WithAttributes(
		semconv.GenAIOperationNameExecuteTool, semconv.GenAIToolName(name), attribute.String("julep.tool.type", kind)))
}
