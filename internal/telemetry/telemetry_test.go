package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestLogLinesCarryTraceIDsAndDurationStrings(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr})))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	log.With("component", "c").InfoContext(ctx, "hello", "lease", 30*time.Second, "took", 1500*time.Microsecond)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if line["trace_id"] != sc.TraceID().String() || line["span_id"] != sc.SpanID().String() {
		t.Errorf("line %v lacks the span's ids %s/%s (a sampler that records nothing still makes ids)", line, sc.TraceID(), sc.SpanID())
	}
	if line["lease"] != "30s" || line["took"] != "1.5ms" {
		t.Errorf("durations logged as %v and %v, want \"30s\" and \"1.5ms\"", line["lease"], line["took"])
	}
	buf.Reset()
	log.Info("no context")
	if bytes.Contains(buf.Bytes(), []byte("trace_id")) {
		t.Errorf("a line without a span got a trace id: %s", buf.Bytes())
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := WithTraceparent(context.Background(), tp)
	if got := Traceparent(ctx); got != tp {
		t.Errorf("Traceparent(WithTraceparent(%q)) = %q", tp, got)
	}
	if got := TraceID(ctx); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("TraceID = %q", got)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if got := Traceparent(WithTraceparent(context.Background(), bad)); got != "" {
			t.Errorf("stored traceparent %q continued as %q, want a trace of its own", bad, got)
		}
	}
}

func TestExportingFollowsTheStandardVariables(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, false},
	} {
		if got := Exporting(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("Exporting(%v) = %v, want %v", tc.env, got, tc.want)
		}
	}
	if _, err := exporter(context.Background(), func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}[k]
	}); err == nil {
		t.Error("an unknown OTLP protocol was accepted")
	}
}

// BenchmarkSpanUnexported is the cost of a span when no exporter is
// configured: ids are made, nothing is recorded.
func BenchmarkSpanUnexported(b *testing.B) {
	tr := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())).Tracer("b")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(ctx, "x")
		s.End()
	}
}
