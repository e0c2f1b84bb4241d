package engine

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astra-app/astra/internal/retry"
)

// Kinds of call the engine retries, as the metric's kind label.
const (
	retryModel   = "model"
	retryAPICall = "api_call"
)

// retrier retries the engine's outside calls (model, api_call) on transient
// failures, as Julep's activities were retried by Temporal. Retries are
// logged and counted, never recorded as transitions: they are not steps.
type retrier struct {
	policy retry.Policy
	log    *slog.Logger
	count  *prometheus.CounterVec
}

// newRetrier registers its counter when reg is not nil; the counter counts
// either way, so the code has no nil checks.
func newRetrier(p retry.Policy, log *slog.Logger, reg prometheus.Registerer) *retrier {
	r := &retrier{policy: p, log: log, count: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "astra_engine_retries_total",
		Help: "Model and api_call attempts retried by the embedded engine after a transient failure.",
	}, []string{"kind", "reason"})}
	for _, kind := range []string{retryModel, retryAPICall} {
		for _, reason := range []string{retry.Reason5xx, retry.Reason429, retry.ReasonTimeout, retry.ReasonConn} {
			r.count.WithLabelValues(kind, reason) // zeros, not missing series
		}
	}
	if reg != nil {
		if err := reg.Register(r.count); err != nil {
			log.Warn("engine: retry metrics not registered", "err", err)
		}
	}
	return r
}

// do runs fn under the retry policy. kind and x (the execution) name the
// call in logs; x's secrets are redacted from the errors logged.
func (r *retrier) do(ctx context.Context, kind string, x *executor, fn func(context.Context) error) error {
	attempts := 0
	err := r.policy.Do(ctx, func(ctx context.Context) error {
		attempts++
		return fn(ctx)
	}, func(a retry.Retry) {
		r.count.WithLabelValues(kind, a.Reason).Inc()
		r.log.WarnContext(ctx, "engine: retrying "+kind, append(runAttrs(x.ex), "attempt", a.Attempt,
			"wait", a.Wait, "reason", a.Reason, "status", a.Status, "err", redactString(a.Err.Error(), x.secrets))...)
	})
	switch {
	case err == nil && attempts > 1:
		r.log.Info("engine: "+kind+" succeeded after retries", "execution_id", x.ex.ID, "attempts", attempts)
	case err != nil:
		var ex *retry.Exhausted
		if errors.As(err, &ex) && ex.Attempts > 1 {
			r.log.Warn("engine: "+kind+" failed after retries", "execution_id", x.ex.ID, "attempts", ex.Attempts,
				"reason", ex.Reason, "status", ex.Status, "err", redactString(ex.Err.Error(), x.secrets))
		}
	}
	return err
}
