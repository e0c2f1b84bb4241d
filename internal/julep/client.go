// Package julep is Astra's client of the Julep v1 REST API: a thin layer over
// the client generated from api/julep.yaml (package julepapi) that adds
// authentication, retries of transient failures, typed errors carrying
// Julep's message, paging until a short page, and SSE stream readers.
//
// The same client talks to a self-hosted Julep and to Astra's embedded
// engine, which serves the same description.
package julep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/astra-app/astra/internal/julep/julepapi"
	"github.com/astra-app/astra/internal/responder"
)

// maxBody bounds a unary response body; Julep's largest answers (a page of
// 100 tasks or docs) stay far below it.
const maxBody = 64 << 20

// RetryPolicy says how often and how patiently repeatable calls are retried.
type RetryPolicy struct {
	// MaxAttempts counts the first try; 1 disables retries. Default 4.
	MaxAttempts int
	// BaseDelay is the first backoff; it doubles per attempt. Default 250ms.
	BaseDelay time.Duration
	// MaxDelay caps one backoff wait. Default 5s.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits for in-line;
	// a longer one ends the call with the error, whose RetryAfter the caller
	// can schedule by. Default 30s.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy is used unless WithRetry says otherwise.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 4, BaseDelay: 250 * time.Millisecond, MaxDelay: 5 * time.Second, MaxRetryAfter: 30 * time.Second}

// delay is the wait before attempt n+1: capped exponential backoff with equal
// jitter, never shorter than the server's Retry-After.
func (p RetryPolicy) delay(n int, retryAfter time.Duration) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	if d > 0 {
		d = d/2 + rand.N(d/2+1)
	}
	return max(d, retryAfter)
}

type options struct {
	authHeader  string
	httpClient  *http.Client
	timeout     time.Duration
	streamIdle  time.Duration
	retry       RetryPolicy
	userAgent   string
	optionError error
}

// Option configures a Client.
type Option func(*options)

// WithAuthHeader names the header carrying the API key. "Authorization" (the
// default) sends "Bearer <key>"; any other name, such as X-Auth-Key for a
// single-tenant self-hosted Julep, carries the raw key.
func WithAuthHeader(name string) Option {
	return func(o *options) {
		if name != "" && !validHeaderName(name) {
			o.optionError = fmt.Errorf("julep: invalid auth header name %q", name)
			return
		}
		o.authHeader = name
	}
}

// WithHTTPClient sets the http.Client requests go through. Leave its Timeout
// zero: it would also cut event streams; use WithTimeout instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) {
		if hc != nil {
			o.httpClient = hc
		}
	}
}

// WithTimeout bounds each attempt of a unary call, and the wait for a
// stream's response headers. Default 30s; 0 means no bound.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = max(d, 0) } }

// WithStreamIdleTimeout ends a stream that sends nothing (not even the
// server's 15 s pings) for d, as ErrStreamInterrupted. Default 60s; 0 disables.
func WithStreamIdleTimeout(d time.Duration) Option {
	return func(o *options) { o.streamIdle = max(d, 0) }
}

// WithRetry sets the retry policy; zero fields take the default's values.
func WithRetry(p RetryPolicy) Option {
	return func(o *options) {
		if p.MaxAttempts <= 0 {
			p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
		}
		if p.BaseDelay <= 0 {
			p.BaseDelay = DefaultRetryPolicy.BaseDelay
		}
		if p.MaxDelay <= 0 {
			p.MaxDelay = DefaultRetryPolicy.MaxDelay
		}
		if p.MaxRetryAfter <= 0 {
			p.MaxRetryAfter = DefaultRetryPolicy.MaxRetryAfter
		}
		o.retry = p
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// Client calls one Julep endpoint. It is safe for concurrent use.
type Client struct {
	api        *julepapi.Client
	timeout    time.Duration
	streamIdle time.Duration
	retry      RetryPolicy
	// sleep waits between attempts; tests replace it to observe delays.
	sleep func(ctx context.Context, d time.Duration) error
	// drained, when set (by tests), is called when a stopped stream's
	// background drain is over.
	drained func()
}

// New returns a client of the Julep v1 API at baseURL (for example
// http://localhost:8080 or http://localhost/api). An empty apiKey sends no
// auth header. The key is only ever written into request headers.
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("julep: base URL %q must be an absolute http(s) URL", baseURL)
	}
	o := options{
		authHeader: "Authorization",
		httpClient: &http.Client{},
		timeout:    30 * time.Second,
		streamIdle: 60 * time.Second,
		retry:      DefaultRetryPolicy,
		userAgent:  "astra-julep/1",
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.optionError != nil {
		return nil, o.optionError
	}
	header, value := o.authHeader, apiKey
	if header == "" || strings.EqualFold(header, "Authorization") {
		header, value = "Authorization", "Bearer "+apiKey
	}
	ua := o.userAgent
	editor := func(ctx context.Context, req *http.Request) error {
		// traceparent: the embedded engine (or a traced proxy) continues
		// the caller's trace.
		otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
		if apiKey != "" {
			req.Header.Set(header, value)
		}
		if ua != "" {
			req.Header.Set("User-Agent", ua)
		}
		return nil
	}
	api, err := julepapi.NewClient(u.String(), julepapi.WithHTTPClient(doer{o.httpClient}), julepapi.WithRequestEditorFn(editor))
	if err != nil {
		return nil, fmt.Errorf("julep: %w", err)
	}
	return &Client{api: api, timeout: o.timeout, streamIdle: o.streamIdle, retry: o.retry, sleep: sleepCtx}, nil
}

// doer marks every failure of the HTTP round trip as a transport error, so
// failures to build a request (a body that does not marshal) stay permanent.
type doer struct{ hc *http.Client }

func (d doer) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, newTransportError(err)
	}
	return resp, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryMode says when a call may be sent again after a failure.
type retryMode int

const (
	// retrySafe: repeating the call does no harm (GET, PUT, DELETE,
	// create-or-update with a client id, read-only search). Retried on any
	// transient failure.
	retrySafe retryMode = iota
	// retryUnsent: repeating could act twice (create with a server id, above
	// all CreateExecution). Retried only when the request never left.
	retryUnsent
)

type call struct {
	op   string
	mode retryMode
	send func(ctx context.Context) (*http.Response, error)
	out  any // decoded from a 2xx body when non-nil
	// goneOK makes a 404 on a repeated attempt a success: a DELETE whose
	// first attempt worked but whose answer was lost.
	goneOK bool
}

// do runs a unary call with the retry policy and wraps any error with the
// operation's name.
func (c *Client) do(ctx context.Context, k call) error {
	for attempt := 1; ; attempt++ {
		err := c.once(ctx, k)
		if err == nil {
			return nil
		}
		if k.goneOK && attempt > 1 && IsNotFound(err) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("julep: %s: %w", k.op, ctx.Err())
		}
		if attempt >= c.retry.MaxAttempts || !retryable(k.mode, err) {
			return fmt.Errorf("julep: %s: %w", k.op, err)
		}
		var retryAfter time.Duration
		var ae *APIError
		if errors.As(err, &ae) {
			retryAfter = ae.RetryAfter
			if retryAfter > c.retry.MaxRetryAfter {
				return fmt.Errorf("julep: %s: %w", k.op, err)
			}
		}
		if serr := c.sleep(ctx, c.retry.delay(attempt, retryAfter)); serr != nil {
			return fmt.Errorf("julep: %s: %w (last failure: %v)", k.op, serr, err)
		}
	}
}

func retryable(mode retryMode, err error) bool {
	if mode == retryUnsent {
		var te *transportError
		return errors.As(err, &te) && te.unsent
	}
	return IsTransient(err)
}

// once is one attempt: send, read the whole body within the attempt's
// timeout, and decode it or turn it into an *APIError.
func (c *Client) once(ctx context.Context, k call) error {
	actx, cancel := ctx, context.CancelFunc(func() {})
	if c.timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	defer cancel()
	resp, err := k.send(actx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return newTransportError(fmt.Errorf("read response: %w", err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(resp, body)
	}
	if len(body) > maxBody {
		return fmt.Errorf("response larger than %d bytes", maxBody)
	}
	if k.out == nil {
		return nil
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return fmt.Errorf("empty %d response", resp.StatusCode)
	}
	if err := json.Unmarshal(trimmed, k.out); err != nil {
		return fmt.Errorf("decode %d response: %w", resp.StatusCode, err)
	}
	return nil
}

// withMetadataFilter adds metadata_filter.<key>=<value> query keys, the form the
// server reads list filters in (OpenAPI 3.0 cannot describe it, so the
// generated client cannot send it).
func withMetadataFilter(filter map[string]string) julepapi.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		if len(filter) == 0 {
			return nil
		}
		q := req.URL.Query()
		keys := make([]string, 0, len(filter))
		for k := range filter {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			q.Set("metadata_filter."+k, filter[k])
		}
		req.URL.RawQuery = q.Encode()
		return nil
	}
}

// pageSize is the server's maximum page.
const pageSize = 100

// pageAll fetches pages of pageSize until a short page. Items already seen
// (by id) are dropped, and a page with nothing new ends the walk, so a server
// that ignores offset cannot loop it forever.
func pageAll[T any](ctx context.Context, fetch func(ctx context.Context, limit, offset int) ([]T, error), id func(T) string) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	for offset := 0; ; {
		page, err := fetch(ctx, pageSize, offset)
		if err != nil {
			return nil, err
		}
		fresh := 0
		for _, it := range page {
			if k := id(it); !seen[k] {
				seen[k] = true
				all = append(all, it)
				fresh++
			}
		}
		if len(page) < pageSize || fresh == 0 {
			return all, nil
		}
		offset += len(page)
	}
}

func requireID(op string, ids ...string) error {
	for _, id := range ids {
		if strings.TrimSpace(id) == "" {
			return responder.Errorf(responder.EINVALID, "julep: %s: empty id", op)
		}
	}
	return nil
}

func validHeaderName(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }
