package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace endpoint (protobuf) that keeps what
// child processes export, with the service that sent each span.
type otlpReceiver struct {
	mu    sync.Mutex
	spans map[string][]span // by trace id
	from  map[string]string // span id -> service.name
}

func newOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	rc := &otlpReceiver{spans: map[string][]span{}, from: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		var req collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if r.URL.Path != "/v1/traces" || err != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sp := span{Name: s.Name, ID: hex.EncodeToString(s.SpanId), Parent: hex.EncodeToString(s.ParentSpanId), Attrs: map[string]any{}}
					for _, a := range s.Attributes {
						switch v := a.GetValue().GetValue().(type) {
						case *commonpb.AnyValue_StringValue:
							sp.Attrs[a.Key] = v.StringValue
						case *commonpb.AnyValue_IntValue:
							sp.Attrs[a.Key] = v.IntValue
						case *commonpb.AnyValue_DoubleValue:
							sp.Attrs[a.Key] = v.DoubleValue
						case *commonpb.AnyValue_BoolValue:
							sp.Attrs[a.Key] = v.BoolValue
						}
					}
					tid := hex.EncodeToString(s.TraceId)
					rc.spans[tid] = append(rc.spans[tid], sp)
					rc.from[sp.ID] = service
				}
			}
		}
		rc.mu.Unlock()
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func (rc *otlpReceiver) trace(id string) ([]span, map[string]string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	from := map[string]string{}
	for _, s := range rc.spans[id] {
		from[s.Name] = rc.from[s.ID]
	}
	return append([]span(nil), rc.spans[id]...), from
}

// TestOneTraceAcrossProcesses: the API and the dispatcher are separate
// `astra serve` processes on one database, each exporting over OTLP. The
// message's trace is still one tree: the dispatcher continues the trace
// the API's POST stored on the outbox row, and the engine continues the
// dispatcher's through traceparent.
func TestOneTraceAcrossProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	rc, endpoint := newOTLPReceiver(t)
	model := usageModel(t, "Calm week ahead.")
	env := scaleEnv(t, model.URL+"/v1")
	env["ASTRA_DATA_DIR"] = t.TempDir()
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
	env["OTEL_BSP_SCHEDULE_DELAY"] = "50" // ms: export soon after a span ends
	apiEnv, dispEnv := map[string]string{}, map[string]string{}
	for k, v := range env {
		apiEnv[k], dispEnv[k] = v, v
	}
	apiEnv["ASTRA_ROLES"], apiEnv["OTEL_SERVICE_NAME"] = "api", "astra-api"
	dispEnv["ASTRA_ROLES"], dispEnv["OTEL_SERVICE_NAME"] = "dispatch", "astra-dispatch"
	api := startProc(t, "api", apiEnv)
	startProc(t, "dispatch", dispEnv)

	pp := signInAt(t, api.url, "two-procs@example.com")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(api.url, "http")+"/api/responder/socket", &websocket.DialOptions{
		HTTPClient: pp.client, HTTPHeader: http.Header{"Origin": {api.url}}})
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	defer conn.CloseNow()
	const traceID, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	id := postTraced(t, pp.client, api.url, "00-"+traceID+"-"+callerSpan+"-01", "req-two-procs")
	for answered := false; !answered; {
		var f wsFrame
		if err := wsjson.Read(ctx, conn, &f); err != nil {
			t.Fatalf("socket read: %v", err)
		}
		var e wsEvent
		answered = f.Type == "messages:append" && json.Unmarshal(f.Data, &e) == nil && e.Role == "assistant"
	}
	waitStatus(t, pp.client, api.url, id, "delivered")

	var spans []span
	var from map[string]string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		spans, from = rc.trace(traceID)
		tr := newTree(t, spans)
		if len(tr.byName["outbox deliver"]) > 0 && len(tr.byName["execution run"]) > 0 && len(tr.byName["POST /api/responder/messages"]) > 0 &&
			len(tr.byName["socket write"]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the message's spans did not all arrive: %v", tr.names())
		}
	}
	checkMessageTrace(t, spans, callerSpan)
	// The API instance's socket got the answer from its feed: the event's
	// stored trace context puts that write under the dispatcher's append.
	tr := newTree(t, spans)
	tr.childOf(tr.one("socket write"), tr.one("event append"))
	for name, want := range map[string]string{"POST /api/responder/messages": "astra-api", "dispatch row": "astra-dispatch",
		"execution run": "astra-dispatch", "socket write": "astra-api"} {
		if from[name] != want {
			t.Errorf("span %q came from service %q, want %q", name, from[name], want)
		}
	}
}
