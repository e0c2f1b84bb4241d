package dispatch

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/astra-app/astra/internal/responder"
)

// metrics are the dispatcher's Prometheus collectors. They exist (and
// count) even when nothing registers them, so the code has no nil checks.
type metrics struct {
	depth         *depthCollector
	inFlight      prometheus.Gauge
	claimToCreate prometheus.Histogram
	execDuration  *prometheus.HistogramVec
	retries       prometheus.Counter
	errors        *prometheus.CounterVec
}

func newMetrics(st responder.Outbox) *metrics {
	return &metrics{
		depth: &depthCollector{st: st, desc: prometheus.NewDesc("astra_outbox_rows",
			"Outbox rows by status, counted at scrape time.", []string{"status"}, nil),
			age: prometheus.NewDesc("astra_dispatch_queue_age_seconds",
				"How long the oldest claimable pending row has waited to be claimed (0: none waits), read at scrape time.", nil, nil)},
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "astra_dispatch_in_flight",
			Help: "Rows this instance is working on now."}),
		claimToCreate: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "astra_dispatch_claim_to_execution_seconds",
			Help:    "From claiming a row to Julep answering the create of its execution.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		execDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "astra_dispatch_execution_duration_seconds",
			Help:    "Julep execution time (created to terminal), by final status.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}}, []string{"status"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "astra_dispatch_retries_total",
			Help: "Rows released for a later attempt after a transient failure."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "astra_dispatch_errors_total",
			Help: "Failures by reason class."}, []string{"reason"}),
	}
}

// Reason classes of astra_dispatch_errors_total.
const (
	reasonJulepTransient  = "julep_transient"  // network, 408/409/429/5xx
	reasonJulepRejected   = "julep_rejected"   // a 4xx: the row failed at once
	reasonExecFailed      = "execution_failed" // the task itself failed
	reasonExecCancelled   = "execution_cancelled"
	reasonExecTimeout     = "execution_timeout"
	reasonAttempts        = "attempts_exhausted"
	reasonLeaseLost       = "lease_lost"
	reasonStore           = "store"
	reasonReleaseShutdown = "released_at_shutdown"
)

// reasons lists every reason class, so each series exists (at 0) from the
// start: a dashboard or alert sees zeros, not nothing.
var reasons = []string{reasonJulepTransient, reasonJulepRejected, reasonExecFailed, reasonExecCancelled,
	reasonExecTimeout, reasonAttempts, reasonLeaseLost, reasonStore, reasonReleaseShutdown}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range reasons {
		m.errors.WithLabelValues(c)
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.depth, m.inFlight, m.claimToCreate, m.execDuration, m.retries, m.errors} {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// depthCollector asks the store for the outbox depth when scraped, so the
// number is right whichever instance did the work.
type depthCollector struct {
	st   responder.Outbox
	desc *prometheus.Desc
	// age is the queue's age: from when the earliest pending row became
	// claimable (created, or its retry backoff over) to now.
	age *prometheus.Desc
}

func (c *depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.age }

func (c *depthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	counts, err := c.st.CountByStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, s := range responder.Statuses {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	next, err := c.st.NextAvailable(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.age, err)
		return
	}
	age := 0.0
	if !next.IsZero() {
		age = max(time.Since(next).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}
