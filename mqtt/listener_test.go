package mqtt_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/mqtt"
	"github.com/medprov/medprov/mqtt/device"
	"github.com/medprov/medprov/mqtt/mqtttest"
	"github.com/medprov/medprov/wire"
)

// fakeGateway stands in for the gateway where a test needs a fault the
// real one cannot be made to show on demand: a submission that blocks, a
// ledger that is behind. Devices are known by their keys.
type fakeGateway struct {
	mu      sync.Mutex
	keys    map[string]crypto.PublicKey
	authErr error // returned by every authentication while set
	submit  func(ctx context.Context, sub gateway.Submission) (*gateway.Receipts, error)
	subs    []gateway.Submission
	watch   func(string)
}

func (f *fakeGateway) AuthenticateDevice(_ context.Context, _, deviceID string, pub crypto.PublicKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.authErr != nil {
		return f.authErr
	}
	if k, ok := f.keys[deviceID]; !ok || !k.(*ecdsa.PublicKey).Equal(pub) {
		return wire.Errorf(wire.CodeForbidden, "unknown device")
	}
	return nil
}

func (f *fakeGateway) SubmitReadings(ctx context.Context, sub gateway.Submission) (*gateway.Receipts, error) {
	f.mu.Lock()
	f.subs = append(f.subs, sub)
	submit := f.submit
	f.mu.Unlock()
	if submit != nil {
		return submit(ctx, sub)
	}
	return &gateway.Receipts{Items: []wire.ReadingReceipt{{ReadingID: sub.Device + ":1", Status: wire.StatusQueued}}}, nil
}

func (f *fakeGateway) WatchRevocations(fn func(string)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watch = fn
	return func() {}
}

func (f *fakeGateway) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeGateway) submissions() []gateway.Submission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]gateway.Submission(nil), f.subs...)
}

// fakeEnv is a listener over a fakeGateway.
type fakeEnv struct {
	gw     *fakeGateway
	l      *mqtt.Listener
	server mqtttest.Server
	reg    *prometheus.Registry
}

func newFakeEnv(t *testing.T, edit func(*mqtt.Config)) *fakeEnv {
	t.Helper()
	e := &fakeEnv{gw: &fakeGateway{keys: map[string]crypto.PublicKey{}}, server: mqtttest.ServerCert(t, t.TempDir()), reg: prometheus.NewRegistry()}
	cfg := mqtt.Config{Addr: mqtttest.FreeAddr(t), TLS: e.server.TLS, Gateway: e.gw, Registerer: e.reg}
	if edit != nil {
		edit(&cfg)
	}
	l, err := mqtt.New(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	e.l = l
	return e
}

// device registers a fresh device key with the fake gateway and returns
// its id and certificate.
func (e *fakeEnv) device(t *testing.T, id string) tls.Certificate {
	t.Helper()
	k := testkit.MustKey(t)
	e.gw.set(func() { e.gw.keys[id] = &k.PublicKey })
	cert, err := device.Certificate(id, k)
	require.NoError(t, err)
	return cert
}

// results collects a device's results.
type results struct {
	mu  sync.Mutex
	got []result
	new chan struct{}
}

type result struct {
	wire.ReadingReceipt
	corr []byte
}

func newResults() *results { return &results{new: make(chan struct{}, 1)} }

func (r *results) add(rc wire.ReadingReceipt, corr []byte) {
	r.mu.Lock()
	r.got = append(r.got, result{rc, corr})
	r.mu.Unlock()
	select {
	case r.new <- struct{}{}:
	default:
	}
}

// wait returns once n results arrived (10s at most).
func (r *results) wait(t *testing.T, n int) []result {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		got := append([]result(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.new:
		case <-deadline:
			require.FailNow(t, "results did not arrive", "%d of %d within 10s: %+v", len(got), n, got)
		}
	}
}

func (e *fakeEnv) dial(t *testing.T, id string, cert tls.Certificate, rs *results) *device.Device {
	t.Helper()
	cfg := device.Config{Addr: e.l.Addr().String(), ID: id, Certificate: cert, RootCAs: e.server.Pool, Timeout: 10 * time.Second}
	if rs != nil {
		cfg.Results = rs.add
	}
	d, err := device.Dial(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() }) //nolint:errcheck // may be gone already
	return d
}

func TestPubackWaitsUntilTheReadingsAreQueued(t *testing.T) {
	e := newFakeEnv(t, nil)
	release := make(chan struct{})
	entered := make(chan struct{})
	e.gw.set(func() {
		e.gw.submit = func(_ context.Context, sub gateway.Submission) (*gateway.Receipts, error) {
			close(entered)
			<-release // the pipeline's fsync, as slow as the test wants
			return &gateway.Receipts{Items: []wire.ReadingReceipt{{ReadingID: sub.Device + ":1", Status: wire.StatusQueued}}}, nil
		}
	})
	cert := e.device(t, "dev-1")
	rs := newResults()
	d := e.dial(t, "dev-1", cert, rs)
	acked := make(chan error, 1)
	go func() {
		acked <- d.Publish(context.Background(), []byte(`{"payload":"","signature":""}`), []byte("c1"))
	}()
	<-entered
	select {
	case err := <-acked:
		require.FailNow(t, "PUBACK before the readings were queued", "err %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-acked:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no PUBACK after the readings were queued")
	}
	got := rs.wait(t, 1)
	assert.Equal(t, wire.StatusQueued, got[0].Status)
	assert.Equal(t, "dev-1:1", got[0].ReadingID)
	assert.Equal(t, []byte("c1"), got[0].corr, "the result carries the message's correlation data")
	subs := e.gw.submissions()
	require.Len(t, subs, 1)
	assert.Equal(t, "dev-1", subs[0].Device, "the gateway is told which device authenticated")
	assert.True(t, subs[0].Watch, "a subscribed device's outcomes are watched")
}

func TestResultsReachASeparateSubscriberOfTheDevice(t *testing.T) {
	e := newFakeEnv(t, nil)
	cert := e.device(t, "dev-s")
	rs := newResults()
	sub, err := device.Dial(t.Context(), device.Config{Addr: e.l.Addr().String(), ID: "dev-s", ClientID: "dev-s/results",
		Certificate: cert, RootCAs: e.server.Pool, Results: rs.add})
	require.NoError(t, err)
	t.Cleanup(func() { sub.Close() }) //nolint:errcheck // may be gone already
	d := e.dial(t, "dev-s", cert, nil)
	require.NoError(t, d.Publish(t.Context(), []byte(`{}`), []byte("c9")))
	got := rs.wait(t, 1)
	assert.Equal(t, "dev-s:1", got[0].ReadingID)
	assert.Equal(t, []byte("c9"), got[0].corr)
	subs := e.gw.submissions()
	require.Len(t, subs, 1)
	assert.Equal(t, "dev-s", subs[0].Device)
	assert.True(t, subs[0].Watch, "outcomes are awaited for the subscriber")
}

func TestRefusedMessagesAreAcknowledgedWithTheirError(t *testing.T) {
	refusal := func(code wire.Code) func(context.Context, gateway.Submission) (*gateway.Receipts, error) {
		return func(context.Context, gateway.Submission) (*gateway.Receipts, error) {
			return nil, wire.Errorf(code, "refused")
		}
	}
	rejected := func(code wire.Code) func(context.Context, gateway.Submission) (*gateway.Receipts, error) {
		return func(_ context.Context, sub gateway.Submission) (*gateway.Receipts, error) {
			return &gateway.Receipts{Items: []wire.ReadingReceipt{{ReadingID: sub.Device + ":7", Status: wire.StatusRejected,
				Error: &wire.ErrorBody{Code: code, Message: "refused"}}}}, nil
		}
	}
	tests := []struct {
		name     string
		submit   func(context.Context, gateway.Submission) (*gateway.Receipts, error)
		wantAck  byte
		wantCode wire.Code
	}{
		{"pushback is quota exceeded and unavailable", refusal(wire.CodeUnavailable), 0x97, wire.CodeUnavailable},
		{"a device over its rate is quota exceeded and rate_limited", rejected(wire.CodeRateLimited), 0x97, wire.CodeRateLimited},
		{"a malformed message is payload format invalid", refusal(wire.CodeInvalid), 0x99, wire.CodeInvalid},
		{"an oversized message is payload format invalid and too_large", refusal(wire.CodeTooLarge), 0x99, wire.CodeTooLarge},
		{"a bad signature is not authorized", rejected(wire.CodeUnauthenticated), 0x87, wire.CodeUnauthenticated},
		{"a duplicate seq is implementation specific", rejected(wire.CodeConflict), 0x83, wire.CodeConflict},
	}
	e := newFakeEnv(t, nil)
	cert := e.device(t, "dev-r")
	rs := newResults()
	d := e.dial(t, "dev-r", cert, rs)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.gw.set(func() { e.gw.submit = tt.submit })
			err := d.Publish(t.Context(), []byte(`{}`), nil)
			var re *device.RefusedError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tt.wantAck, re.Code, "PUBACK reason code")
			got := rs.wait(t, i+1)[i]
			assert.Equal(t, wire.StatusRejected, got.Status)
			require.NotNil(t, got.Error)
			assert.Equal(t, tt.wantCode, got.Error.Code)
		})
	}
	t.Run("the connection stays up", func(t *testing.T) {
		e.gw.set(func() { e.gw.submit = nil })
		require.NoError(t, d.Publish(t.Context(), []byte(`{}`), nil))
	})
}

func TestConnectionsAreAuthenticated(t *testing.T) {
	e := newFakeEnv(t, nil)
	cert := e.device(t, "dev-c")
	other, err := device.Certificate("dev-c", testkit.MustKey(t))
	require.NoError(t, err)
	tests := []struct {
		name     string
		cert     *tls.Certificate
		clientID string
		edit     func(*packets.ConnectParams)
		authErr  error
		want     byte // MQTT 3.1.1 CONNACK return code
	}{
		{"the registered key connects", &cert, "dev-c", nil, nil, 0},
		{"another key for the same id is not authorized", &other, "dev-c", nil, nil, 0x05},
		{"a second connection of the device, as id/suffix, connects", &cert, "dev-c/results", nil, nil, 0},
		{"a client id other than the certificate's CN is refused", &cert, "dev-x", nil, nil, 0x02},
		{"a client id that only begins with the CN is refused", &cert, "dev-c2", nil, nil, 0x02},
		{"an empty client id is refused", &cert, "", nil, nil, 0x02},
		{"a password is refused", &cert, "dev-c", func(c *packets.ConnectParams) {
			c.UsernameFlag, c.Username, c.PasswordFlag, c.Password = true, []byte("dev-c"), true, []byte("secret")
		}, nil, 0x05},
		{"a will is refused", &cert, "dev-c", func(c *packets.ConnectParams) {
			c.WillFlag, c.WillTopic, c.WillPayload = true, mqtt.ReadingsTopic("dev-c"), []byte("{}")
		}, nil, 0x05},
		{"a peer over its failure budget is told the server is unavailable", &cert, "dev-c", nil, wire.Errorf(wire.CodeRateLimited, "too many"), 0x03},
		{"an unreadable ledger is server unavailable", &cert, "dev-c", nil, wire.Errorf(wire.CodeUnavailable, "down"), 0x03},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.gw.set(func() { e.gw.authErr = tt.authErr })
			c, err := mqtttest.DialV3(t, e.l.Addr().String(), tt.cert, e.server.Pool)
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.Connect(t, tt.clientID, tt.edit))
		})
	}
	e.gw.set(func() { e.gw.authErr = nil })
	t.Run("a client without a certificate does not get in", func(t *testing.T) {
		c, err := mqtttest.DialV3(t, e.l.Addr().String(), nil, e.server.Pool)
		if err == nil {
			assert.Equal(t, byte(0xff), c.Connect(t, "dev-c", nil), "the listener hangs up")
		}
	})
	t.Run("an MQTT 5 client is told not authorized", func(t *testing.T) {
		_, err := device.Dial(t.Context(), device.Config{Addr: e.l.Addr().String(), ID: "dev-c", Certificate: other, RootCAs: e.server.Pool, Timeout: 10 * time.Second})
		var re *device.RefusedError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, byte(0x87), re.Code)
	})
}

func TestDevicesTouchOnlyTheirOwnTopics(t *testing.T) {
	e := newFakeEnv(t, nil)
	cert := e.device(t, "dev-a")
	e.device(t, "dev-b")
	c, err := mqtttest.DialV3(t, e.l.Addr().String(), &cert, e.server.Pool)
	require.NoError(t, err)
	require.Zero(t, c.Connect(t, "dev-a", nil))
	subs := []struct {
		name   string
		filter string
		want   byte
	}{
		{"its own results", mqtt.ResultsTopic("dev-a"), 0x01},
		{"its own tree with #", "medprov/v1/devices/dev-a/#", 0x01},
		{"its own tree with +", "medprov/v1/devices/dev-a/+", 0x01},
		{"another device's results are refused", mqtt.ResultsTopic("dev-b"), 0x80},
		{"every device's results are refused", "medprov/v1/devices/+/results", 0x80},
		{"everything is refused", "#", 0x80},
		{"a shared subscription is refused", "$share/g/" + mqtt.ResultsTopic("dev-a"), 0x80},
		{"broker topics are refused", "$SYS/#", 0x80},
	}
	for _, tt := range subs {
		t.Run("subscribe: "+tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, c.Subscribe(t, tt.filter))
		})
	}
	pubs := []struct {
		name     string
		topic    string
		retain   bool
		wantCode wire.Code
	}{
		{"another device's readings topic is refused", mqtt.ReadingsTopic("dev-b"), false, wire.CodeForbidden},
		{"its own results topic is refused", mqtt.ResultsTopic("dev-a"), false, wire.CodeForbidden},
		{"a retained message is refused", mqtt.ReadingsTopic("dev-a"), true, wire.CodeInvalid},
	}
	for _, tt := range pubs {
		t.Run("publish: "+tt.name, func(t *testing.T) {
			before := len(e.gw.submissions())
			require.True(t, c.Publish(t, tt.topic, []byte(`{}`), 1, tt.retain), "a refused message is still acknowledged")
			pk, err := c.NextPublish(t, 10*time.Second)
			require.NoError(t, err, "an error result")
			assert.Equal(t, mqtt.ResultsTopic("dev-a"), pk.TopicName)
			assert.Contains(t, string(pk.Payload), `"code":"`+string(tt.wantCode)+`"`)
			assert.Len(t, e.gw.submissions(), before, "nothing reached the gateway")
		})
	}
	t.Run("publish: its own readings topic at QoS 1 and 0 reaches the gateway", func(t *testing.T) {
		before := len(e.gw.submissions())
		require.True(t, c.Publish(t, mqtt.ReadingsTopic("dev-a"), []byte(`{"payload":"","signature":""}`), 1, false))
		require.True(t, c.Publish(t, mqtt.ReadingsTopic("dev-a"), []byte(`{"payload":"","signature":""}`), 0, false))
		for range 2 {
			pk, err := c.NextPublish(t, 10*time.Second)
			require.NoError(t, err)
			assert.Contains(t, string(pk.Payload), `"status":"queued"`)
		}
		assert.Len(t, e.gw.submissions(), before+2)
	})
}

func TestRevokedDevicesAreDisconnected(t *testing.T) {
	tests := []struct {
		name   string
		revoke func(e *fakeEnv, id string)
	}{
		{"on the ledger's revocation event", func(e *fakeEnv, id string) {
			e.gw.set(func() { e.gw.authErr = wire.Errorf(wire.CodeForbidden, "device is revoked") })
			e.gw.mu.Lock()
			watch := e.gw.watch
			e.gw.mu.Unlock()
			watch(id)
		}},
		{"by the periodic recheck", func(e *fakeEnv, _ string) {
			e.gw.set(func() { e.gw.authErr = wire.Errorf(wire.CodeForbidden, "device is revoked") })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEnv(t, func(c *mqtt.Config) { c.Recheck = 200 * time.Millisecond })
			cert := e.device(t, "dev-v")
			lost := make(chan error, 1)
			d, err := device.Dial(t.Context(), device.Config{Addr: e.l.Addr().String(), ID: "dev-v", Certificate: cert,
				RootCAs: e.server.Pool, OnLost: func(err error) { lost <- err }})
			require.NoError(t, err)
			t.Cleanup(func() { d.Close() }) //nolint:errcheck // gone already
			tt.revoke(e, "dev-v")
			select {
			case err := <-lost:
				var re *device.RefusedError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, byte(0x87), re.Code, "DISCONNECT reason")
			case <-time.After(10 * time.Second):
				require.FailNow(t, "the revoked device is still connected")
			}
			_, err = device.Dial(t.Context(), device.Config{Addr: e.l.Addr().String(), ID: "dev-v", Certificate: cert, RootCAs: e.server.Pool})
			var re *device.RefusedError
			require.ErrorAs(t, err, &re, "a reconnect is refused")
		})
	}
}

func TestMetricsAreRegistered(t *testing.T) {
	e := newFakeEnv(t, nil)
	cert := e.device(t, "dev-m")
	d := e.dial(t, "dev-m", cert, nil)
	require.NoError(t, d.Publish(t.Context(), []byte(`{}`), nil))
	e.gw.set(func() {
		e.gw.submit = func(context.Context, gateway.Submission) (*gateway.Receipts, error) {
			return nil, wire.Errorf(wire.CodeUnavailable, "behind")
		}
	})
	require.Error(t, d.Publish(t.Context(), []byte(`{}`), nil))
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	assert.Equal(t, 1.0, got["medprov_mqtt_connected_devices"], "connected devices")
	assert.Equal(t, 2.0, got["medprov_mqtt_messages_total{qos=1}"], "messages in")
	assert.Equal(t, 2.0, got["medprov_mqtt_puback_seconds"], "PUBACK latency samples")
	assert.Equal(t, 1.0, got["medprov_mqtt_refusals_total{reason=message_unavailable}"], "refusals by reason")
}

func TestNewNeedsTLSAndAGateway(t *testing.T) {
	_, err := mqtt.New(t.Context(), mqtt.Config{Addr: "127.0.0.1:0", Gateway: &fakeGateway{}})
	require.Error(t, err, "no server certificate")
	_, err = mqtt.New(t.Context(), mqtt.Config{Addr: "127.0.0.1:0", TLS: &tls.Config{}})
	require.Error(t, err, "no gateway")
	require.False(t, errors.Is(err, context.Canceled))
}
