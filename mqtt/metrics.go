package mqtt

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the listener's Prometheus series. Labels never carry device
// ids.
type metrics struct {
	messages *prometheus.CounterVec
	puback   prometheus.Histogram
	refused  *prometheus.CounterVec
}

// Refusal reasons of the medprov_mqtt_refusals_total series, beside
// "connect_<code>", "message_<code>" and "reading_<code>" for the wire
// error codes of refused connections, whole messages and single readings.
const (
	reasonNoCertificate = "connect_no_certificate"
	reasonClientID      = "connect_client_id"
	reasonWill          = "connect_will"
	reasonPassword      = "connect_password"
	reasonTopic         = "publish_topic"
	reasonRetained      = "publish_retained"
	reasonSubscribe     = "subscribe_topic"
	reasonRevoked       = "disconnect_revoked"
)

func newMetrics(reg prometheus.Registerer, connected func() float64) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medprov_mqtt_messages_total", Help: "PUBLISH packets received from devices, by QoS.",
		}, []string{"qos"}),
		puback: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "medprov_mqtt_puback_seconds",
			Help:    "Time from a QoS 1 or 2 reading message's arrival to its acknowledgement (after the readings are durably queued).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medprov_mqtt_refusals_total",
			Help: "MQTT connections, subscriptions, messages and readings refused, by reason.",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "medprov_mqtt_connected_devices", Help: "Devices connected to the MQTT listener.",
	}, connected)
	return m, errors.Join(reg.Register(m.messages), reg.Register(m.puback), reg.Register(m.refused), reg.Register(gauge))
}

func (m *metrics) message(qos byte) { m.messages.WithLabelValues(strconv.Itoa(int(qos))).Inc() }

func (m *metrics) refuse(reason string) { m.refused.WithLabelValues(reason).Inc() }
