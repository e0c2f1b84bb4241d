// Package telemetry is Astra's OpenTelemetry setup: the tracer provider
// configured by the standard OTEL_* variables, the W3C trace context that
// carries one message's trace across processes (the outbox row, the Julep
// request, the engine's execution), and a slog handler that stamps every
// log line written with a context by its trace and span ids.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of Astra's spans.
const ScopeName = "github.com/astra-app/astra"

// Tracer is Astra's tracer from the global provider (set by Setup, or by a
// test), looked up at each call so a provider installed later is used.
func Tracer() trace.Tracer { return otel.Tracer(ScopeName) }

// propagator is W3C trace context (and baggage): what `traceparent` carries.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

func init() { otel.SetTextMapPropagator(propagator) }

// Exporting reports whether the environment asks for spans to be exported:
// an OTLP endpoint is named and neither OTEL_SDK_DISABLED nor
// OTEL_TRACES_EXPORTER=none turns it off.
func Exporting(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))) {
	case "", "otlp":
	default:
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs the global tracer provider and returns its shutdown, which
// flushes spans still queued.
//
// With an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) spans are batched and exported over
// OTLP, http/protobuf unless OTEL_EXPORTER_OTLP(_TRACES)_PROTOCOL says grpc;
// the exporter reads the other OTEL_EXPORTER_OTLP_* variables (headers,
// timeout, compression, certificates) itself, and the sampler follows
// OTEL_TRACES_SAMPLER. The service is OTEL_SERVICE_NAME (default "astra").
//
// Without one, nothing is recorded or exported, yet trace ids are still
// made (a sampler that records nothing), so log lines and traceparent
// headers join up across processes at the cost of two random numbers per
// span. OTEL_SDK_DISABLED=true installs the no-op provider: no ids at all.
func Setup(ctx context.Context, getenv func(string) string, version string) (func(context.Context) error, error) {
	// One provider per process: a second serve in the same process (tests
	// run several) keeps the first one's, or the one a test installed.
	installed.Lock()
	defer installed.Unlock()
	if installed.done {
		return func(context.Context) error { return nil }, nil
	}
	installed.done = true
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		otel.SetTracerProvider(noop.NewTracerProvider())
		return func(context.Context) error { return nil }, nil
	}
	if !Exporting(getenv) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
		otel.SetTracerProvider(tp)
		return tp.Shutdown, nil
	}
	exp, err := exporter(ctx, getenv)
	if err != nil {
		return nil, err
	}
	// resource.Default reads OTEL_RESOURCE_ATTRIBUTES from the environment.
	name := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = "astra"
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(name), semconv.ServiceVersion(version)))
	if err != nil {
		res = resource.Default()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) // export failures must not spam stderr; the SDK retries
	return tp.Shutdown, nil
}

var installed struct {
	sync.Mutex
	done bool
}

// Install makes tp the process's tracer provider, which later Setup calls
// keep (tests install an in-memory recorder this way).
func Install(tp trace.TracerProvider) {
	installed.Lock()
	defer installed.Unlock()
	installed.done = true
	otel.SetTracerProvider(tp)
}

// exporter is the OTLP span exporter the environment names. Endpoint and
// headers are passed explicitly so values from a .env file count too.
func exporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "", "http/protobuf":
		var opts []otlptracehttp.Option
		if u := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); u != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(u))
		} else if u := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); u != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimRight(u, "/")+"/v1/traces"))
		}
		if h := headers(getenv); h != nil {
			opts = append(opts, otlptracehttp.WithHeaders(h))
		}
		return otlptracehttp.New(ctx, opts...)
	case "grpc":
		var opts []otlptracegrpc.Option
		if u := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); u != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(u))
		} else if u := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); u != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(u))
		}
		if h := headers(getenv); h != nil {
			opts = append(opts, otlptracegrpc.WithHeaders(h))
		}
		return otlptracegrpc.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want http/protobuf or grpc", proto)
	}
}

// headers reads OTEL_EXPORTER_OTLP(_TRACES)_HEADERS: k=v,k2=v2.
func headers(getenv func(string) string) map[string]string {
	s := getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
	if s == "" {
		s = getenv("OTEL_EXPORTER_OTLP_HEADERS")
	}
	if s == "" {
		return nil
	}
	h := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) != "" {
			h[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return h
}

// Traceparent returns ctx's span context as a W3C traceparent value to
// store (on an outbox row, an execution), or "" when ctx has none.
func Traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// WithTraceparent returns ctx continuing the trace a stored traceparent
// names; an empty or malformed value leaves ctx as it is (rows written
// before traces were stored have none).
func WithTraceparent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// TraceID is ctx's trace id in hex, or "".
func TraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

// End ends span, recording err (when not nil) as its error status.
func End(span trace.Span, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
