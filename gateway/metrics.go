package gateway

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/medprov/medprov/ingest"
)

// Metrics are a node's Prometheus series, served at /metrics. Labels never
// carry IDs of patients, devices or actors. Metrics implements
// ingest.Observer, so the ingest pipeline reports its transactions here.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	ingested  prometheus.Counter
	rejected  *prometheus.CounterVec
	recorded  *prometheus.CounterVec
	batchSize prometheus.Histogram
	batchTime *prometheus.HistogramVec
	accesses  *prometheus.CounterVec
	events    *prometheus.CounterVec
	// logSuppressed counts request log lines left out by the bound on
	// unauthenticated 4xx lines.
	logSuppressed prometheus.Counter
}

// NewMetrics returns a node's series in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medprov_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "medprov_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		ingested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "medprov_readings_ingested_total", Help: "Readings acknowledged (durably queued).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medprov_readings_rejected_total", Help: "Readings refused, by reason.",
		}, []string{"reason"}),
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medprov_readings_committed_total", Help: "Queued readings finished by the ledger, by outcome.",
		}, []string{"outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "medprov_batch_size", Help: "Readings per RecordReadings transaction.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 1000},
		}),
		batchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "medprov_batch_duration_seconds", Help: "Time to commit one RecordReadings transaction, by result.",
			Buckets: prometheus.DefBuckets,
		}, []string{"result"}),
		accesses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medprov_access_decisions_total", Help: "Research access decisions.",
		}, []string{"decision"}),
	}
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "medprov_chaincode_events_total", Help: "Chaincode events followed, by name.",
	}, []string{"event"})
	m.logSuppressed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "medprov_log_lines_suppressed_total",
		Help: "Request log lines of 4xx answers to unauthenticated requests left out by the log rate bound.",
	})
	m.reg.MustRegister(m.requests, m.latency, m.ingested, m.rejected, m.recorded, m.batchSize, m.batchTime,
		m.accesses, m.events, m.logSuppressed, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registerer returns the registry served at /metrics, for the series of
// other parts of the node (the MQTT listener) to be served with the
// gateway's.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// watchVerifier registers the signature verification counters of v.
func (m *Metrics) watchVerifier(v verifyCounter) error {
	computed := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "medprov_ecdsa_verifications_total",
		Help: "ECDSA verifications of reading signatures computed in this process (the gateway's and, on the embedded ledger, the in-process chaincode's).",
	}, func() float64 { c, _ := v.Counts(); return float64(c) })
	remembered := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "medprov_ecdsa_memo_hits_total",
		Help: "Reading signature checks answered by the verification memo instead of ECDSA.",
	}, func() float64 { _, r := v.Counts(); return float64(r) })
	return errors.Join(m.reg.Register(computed), m.reg.Register(remembered))
}

// watchCaches registers a gauge of the entries held by each bounded cache
// of the gateway, by name (the label "cache").
func (m *Metrics) watchCaches(sizes map[string]func() int) error {
	var errs []error
	for name, size := range sizes {
		errs = append(errs, m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "medprov_gateway_cache_entries",
			Help:        "Entries held by a bounded gateway cache keyed by request input (keys, unknown IDs, nonces, rate-limit buckets).",
			ConstLabels: prometheus.Labels{"cache": name},
		}, func() float64 { return float64(size()) })))
	}
	return errors.Join(errs...)
}

// watchQueue registers the queue depth gauge, read from depth.
func (m *Metrics) watchQueue(depth func() float64) error {
	return m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "medprov_ingest_queue_depth", Help: "Readings acknowledged and not yet on the ledger.",
	}, depth))
}

// Transaction implements ingest.Observer.
func (m *Metrics) Transaction(size int, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.batchSize.Observe(float64(size))
	m.batchTime.WithLabelValues(result).Observe(took.Seconds())
}

// Finished implements ingest.Observer.
func (m *Metrics) Finished(outs []ingest.Outcome) {
	for _, o := range outs {
		m.recorded.WithLabelValues(o.State.String()).Inc()
	}
}
