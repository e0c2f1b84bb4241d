package engine

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/astra-app/astra/internal/llm"
	"github.com/astra-app/astra/internal/telemetry"
)

// metrics are the engine's Prometheus collectors (astra_engine_retries_total
// is the retrier's). They count whether or not anything registers them.
type metrics struct {
	executions *prometheus.CounterVec
	steps      *prometheus.HistogramVec
	model      *prometheus.HistogramVec
	tokens     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	m := &metrics{
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "astra_engine_executions_total",
			Help: "Executions the embedded engine ended here, by final status."}, []string{"status"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "astra_engine_step_duration_seconds",
			Help:    "Step run time by step type (prompt, tool, evaluate, ...), nested steps included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"type"}),
		model: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "astra_engine_model_request_duration_seconds",
			Help:    "One model call (each retry is one), by outcome (ok or error).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}}, []string{"outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "astra_engine_model_tokens_total",
			Help: "Tokens the model reported, by type (input or output)."}, []string{"type"}),
	}
	// Known label values exist from the start, so a dashboard sees zeros
	// rather than no series.
	for _, s := range []string{StatusSucceeded, StatusFailed, StatusCancelled} {
		m.executions.WithLabelValues(s)
	}
	for _, o := range []string{"ok", "error"} {
		m.model.WithLabelValues(o)
	}
	for _, t := range []string{"input", "output"} {
		m.tokens.WithLabelValues(t)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.executions, m.steps, m.model, m.tokens} {
			if err := reg.Register(c); err != nil {
				log.Warn("engine: metrics not registered", "err", err)
			}
		}
	}
	return m
}

// tracedModel is the engine's model with a GenAI span, a duration and the
// token counts around every call.
type tracedModel struct {
	llm.Model
	m *metrics
}

func (t tracedModel) Chat(ctx context.Context, req llm.Request, onDelta func(string)) (*llm.Response, error) {
	name := req.Model
	if name == "" {
		name = "default"
	}
	ctx, span := traceModel(ctx, name)
	start := time.Now()
	var first time.Time
	wrapped := onDelta
	if onDelta != nil {
		wrapped = func(s string) {
			if first.IsZero() && s != "" {
				first = time.Now()
			}
			onDelta(s)
		}
	}
	resp, err := t.Model.Chat(ctx, req, wrapped)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	t.m.model.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	var in, out int
	if resp != nil {
		in, out = resp.Usage.PromptTokens, resp.Usage.CompletionTokens
		t.m.tokens.WithLabelValues("input").Add(float64(in))
		t.m.tokens.WithLabelValues("output").Add(float64(out))
		if resp.Model != "" {
			span.SetAttributes(attribute.String("gen_ai.response.model", resp.Model))
		}
	}
	endModel(span, start, first, in, out, err)
	return resp, err
}

// runAttrs are the ids an execution's log lines carry: the execution, and
// the outbox row and (opaque) user the dispatcher created it for.
func runAttrs(ex *Execution) []any {
	a := []any{"execution_id", ex.ID}
	if id, _ := ex.Metadata["outbox_id"].(string); id != "" {
		a = append(a, "outbox_id", id)
	}
	if id, _ := ex.Metadata["user_id"].(string); id != "" {
		a = append(a, "user", id)
	}
	return a
}

// startRun begins the observation of one run of ex: its span, continuing
// the trace the execution was created in.
func (e *Engine) startRun(ctx context.Context, ex *Execution) (context.Context, func()) {
	ctx, span := e.traceRun(ctx, ex)
	return ctx, func() {
		span.SetAttributes(attribute.String("julep.execution.status", ex.Status))
		if terminal(ex.Status) {
			e.metrics.executions.WithLabelValues(ex.Status).Inc()
			e.log.InfoContext(ctx, "engine: execution ended", append(runAttrs(ex), "status", ex.Status, "transitions", ex.TransitionCount)...)
		}
		if ex.Status == StatusFailed {
			telemetry.End(span, errString(ex.Error))
			return
		}
		span.End()
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// startStep begins the observation of one step (see frame.step); the
// returned func ends it with the step's error.
func (f *frame) startStep(ctx context.Context, path, kind string, s map[string]any) (context.Context, func(error)) {
	label, _ := s["label"].(string)
	ctx, span := traceStep(ctx, path, kind, label)
	if i, err := strconv.Atoi(path[strings.LastIndexByte(path, '.')+1:]); err == nil {
		span.SetAttributes(attribute.Int("julep.step.index", i))
	}
	start := time.Now()
	return ctx, func(err error) {
		took := time.Since(start)
		f.x.e.metrics.steps.WithLabelValues(kind).Observe(took.Seconds())
		attrs := append(runAttrs(f.x.ex), "step", path, "type", kind, "took", took)
		if label != "" {
			attrs = append(attrs, "label", label)
		}
		if err != nil && !isUnwind(err) {
			f.x.e.log.InfoContext(ctx, "engine: step failed", append(attrs, "err", redactString(err.Error(), f.x.secrets))...)
			telemetry.End(span, errString(redactString(err.Error(), f.x.secrets)))
			return
		}
		f.x.e.log.DebugContext(ctx, "engine: step finished", attrs...)
		span.End()
	}
}

// isUnwind: a pause or a `return` ends a step without it failing.
func isUnwind(err error) bool {
	switch err.(type) {
	case *pause, *returned:
		return true
	}
	return false
}

// traceToolCall begins a tool call's span; the step's span carries its error.
func traceToolCall(ctx context.Context, t map[string]any, name string) (context.Context, trace.Span) {
	kind, _ := t["type"].(string)
	return traceTool(ctx, kind, name)
}
