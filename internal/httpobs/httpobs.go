// Package httpobs is what every HTTP request gets on its way in: a request
// id (X-Request-Id honoured or made, echoed in the response), a server span
// continuing an incoming traceparent, Prometheus counts and durations by
// chi route pattern and status, and a log line for failures.
package httpobs

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/astra-app/astra/internal/telemetry"
)

// HeaderRequestID is the request id header, read and echoed.
const HeaderRequestID = "X-Request-Id"

type ctxKey struct{}

// RequestID is the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// validRequestID accepts what a proxy or client plausibly sends (printable
// ASCII, bounded), so a hostile value cannot bloat or forge log lines.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Metrics are the HTTP server's collectors.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics creates the collectors and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "astra_http_requests_total",
			Help: "HTTP requests served, by method, chi route pattern and status."}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "astra_http_request_duration_seconds",
			Help:    "HTTP request duration (to the end of the handler; sockets and streams last their lifetime), by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"method", "route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// Options configure Middleware.
type Options struct {
	Metrics *Metrics // nil: not counted
	Logger  *slog.Logger
}

// Middleware observes every request of the chi router it wraps (it must
// be outside the router so the route pattern is known when the handler
// returns). Requests that match no route are labelled "unmatched", so a
// scan of random paths cannot grow the metrics.
func Middleware(o Options) func(http.Handler) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	prop := otel.GetTextMapPropagator()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get(HeaderRequestID)
			if !validRequestID(id) {
				id = newRequestID()
			}
			w.Header().Set(HeaderRequestID, id)
			ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := telemetry.Tracer().Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path),
					attrRequestID.String(id)))
			rctx := chi.NewRouteContext()
			ctx = context.WithValue(context.WithValue(ctx, ctxKey{}, id), chi.RouteCtxKey, rctx)
			rw := &recorder{ResponseWriter: w}
			defer func() {
				route := rctx.RoutePattern()
				if route == "" {
					route = "unmatched"
				}
				status := rw.status
				if status == 0 {
					status = http.StatusOK
				}
				if v := recover(); v != nil {
					// A hijacked or aborted connection: still counted, then
					// the panic goes on to net/http as before.
					status = http.StatusInternalServerError
					defer panic(v)
				}
				span.SetName(r.Method + " " + route)
				span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status))
				if status >= 500 {
					span.SetStatus(codes.Error, http.StatusText(status))
				}
				span.End()
				if o.Metrics != nil {
					o.Metrics.requests.WithLabelValues(r.Method, route, strconv.Itoa(status)).Inc()
					o.Metrics.duration.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
				}
				if status >= 500 {
					o.Logger.WarnContext(ctx, "http request failed", "request_id", id, "method", r.Method, "route", route,
						"status", status, "took", time.Since(start))
				} else {
					o.Logger.DebugContext(ctx, "http request", "request_id", id, "method", r.Method, "route", route,
						"status", status, "took", time.Since(start))
				}
			}()
			next.ServeHTTP(rw, r.WithContext(ctx))
		})
	}
}

var attrRequestID = attribute.Key("astra.request_id")

// recorder remembers the status; it passes Flush and Hijack through (the
// engine's SSE streams and the WebSocket need them) and unwraps for
// http.ResponseController.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if errors.Is(err, http.ErrNotSupported) {
		return nil, nil, http.ErrNotSupported
	}
	return c, rw, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
