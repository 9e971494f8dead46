package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus series. Labels never carry IDs of
// patients, devices or actors.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	ingested   prometheus.Counter
	rejected   *prometheus.CounterVec
	recorded   *prometheus.CounterVec
	batchSize  prometheus.Histogram
	batchTime  *prometheus.HistogramVec
	queueDepth prometheus.GaugeFunc
	accesses   *prometheus.CounterVec
	events     *prometheus.CounterVec
}

func newMetrics(queueDepth func() float64) *metrics {
	m := &metrics{
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
	m.queueDepth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "medprov_ingest_queue_depth", Help: "Readings acknowledged and not yet on the ledger.",
	}, queueDepth)
	m.reg.MustRegister(m.requests, m.latency, m.ingested, m.rejected, m.recorded, m.batchSize, m.batchTime,
		m.queueDepth, m.accesses, m.events, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
