package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	mqttdevice "github.com/medprov/medprov/mqtt/device"
	"github.com/medprov/medprov/wire"
)

// mqttLoad publishes the pre-signed bodies over the gateway's MQTT
// listener: one connection per device, each body (all of one device's
// readings) to its device's readings topic at QoS 1, with its index as
// correlation data. Every device subscribes to its results, as a device
// that wants its outcomes does: readings refused within an acknowledged
// body are counted from them (settle), and a sampled body's commit latency
// runs until the "recorded" result of each of its readings.
type mqttLoad struct {
	devs  []*mqttdevice.Device
	batch int

	mu       sync.Mutex
	waiters  map[string]*commitWaiter // sampled bodies, by correlation
	accepted map[string]bool          // bodies acknowledged
	refused  map[string][]wire.Code   // readings refused, by body
}

// commitWaiter waits for the recorded results of one sampled body.
type commitWaiter struct {
	left int
	done chan struct{}
}

// dialMQTT connects every device to the listener at cfg.MQTT.
func dialMQTT(ctx context.Context, cfg Config, devs []device) (*mqttLoad, error) {
	host, _, err := net.SplitHostPort(cfg.MQTT)
	if err != nil {
		return nil, fmt.Errorf("%w: mqtt address %q: want host:port", ErrConfig, cfg.MQTT)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%w: %q", ErrNotLoopback, host)
	}
	m := &mqttLoad{batch: cfg.Batch, waiters: map[string]*commitWaiter{}, accepted: map[string]bool{}, refused: map[string][]wire.Code{}}
	for i, d := range devs {
		cert, err := mqttdevice.Certificate(d.id, d.key)
		if err != nil {
			return nil, errors.Join(err, m.close())
		}
		c, err := mqttdevice.Dial(ctx, mqttdevice.Config{Addr: cfg.MQTT, ID: d.id, Certificate: cert, RootCAs: cfg.MQTTRootCAs,
			Insecure: cfg.MQTTInsecure, Results: m.result, Timeout: 60 * time.Second})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("device %d over MQTT: %w", i+1, err), m.close())
		}
		m.devs = append(m.devs, c)
	}
	return m, nil
}

// result records a refused reading and ends the wait of a sampled body.
func (m *mqttLoad) result(r wire.ReadingReceipt, corr []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Error != nil && r.ReadingID != "" {
		m.refused[string(corr)] = append(m.refused[string(corr)], r.Error.Code)
	}
	if r.Status != wire.StatusRecorded && r.Error == nil {
		return
	}
	if w, ok := m.waiters[string(corr)]; ok {
		if w.left--; w.left == 0 {
			close(w.done)
			delete(m.waiters, string(corr))
		}
	}
}

// settle counts the readings refused within acknowledged bodies: they are
// not acknowledged readings but errors. Bodies refused whole were counted
// when their PUBACK said so.
func (m *mqttLoad) settle(st *loadStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for corr, codes := range m.refused {
		if !m.accepted[corr] {
			continue
		}
		st.acked.Add(-int64(len(codes)))
		for _, c := range codes {
			st.count(st.errors, "item "+string(c), 1)
		}
	}
	m.refused = map[string][]wire.Code{}
}

// send publishes body i on its device's connection, retrying pushback
// (PUBACK 0x97) after a second while loadCtx lives. With wait it then
// waits for the recorded results of its readings (60s at most), like
// ?wait=commit. It returns the latency (PUBACK, or commit with wait) and
// whether the body was acknowledged.
func (m *mqttLoad) send(ctx, loadCtx context.Context, st *loadStats, i int, body []byte, wait bool) (time.Duration, bool) {
	d := m.devs[i%len(m.devs)]
	n := int64(m.batch)
	corr := []byte(strconv.Itoa(i))
	var w *commitWaiter
	if wait {
		w = &commitWaiter{left: m.batch, done: make(chan struct{})}
		m.mu.Lock()
		m.waiters[string(corr)] = w
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			delete(m.waiters, string(corr))
			m.mu.Unlock()
		}()
	}
	for {
		st.requests.Add(1)
		t0 := time.Now()
		err := d.Publish(ctx, body, corr)
		var re *mqttdevice.RefusedError
		switch {
		case errors.As(err, &re) && re.Code == 0x97:
			st.count(st.pushback, "puback 0x97 quota exceeded", 1)
			t := time.NewTimer(time.Second)
			select {
			case <-loadCtx.Done():
				t.Stop()
				return 0, false
			case <-t.C:
			}
			continue
		case errors.As(err, &re):
			st.sent.Add(n)
			st.count(st.errors, fmt.Sprintf("puback 0x%02x", re.Code), n)
			return 0, false
		case err != nil:
			st.sent.Add(n)
			st.count(st.errors, transportKind(err), n)
			return 0, false
		}
		st.sent.Add(n)
		st.acked.Add(n)
		m.mu.Lock()
		m.accepted[string(corr)] = true
		m.mu.Unlock()
		if !wait {
			return time.Since(t0), true
		}
		select {
		case <-w.done:
			return time.Since(t0), true
		case <-time.After(60 * time.Second):
			st.count(st.errors, "no recorded result within 60s", 1)
			return 0, false
		case <-ctx.Done():
			return 0, false
		}
	}
}

// close disconnects every device.
func (m *mqttLoad) close() error {
	if m == nil {
		return nil
	}
	var errs []error
	for _, d := range m.devs {
		errs = append(errs, d.Close())
	}
	m.devs = nil
	return errors.Join(errs...)
}
