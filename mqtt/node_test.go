package mqtt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/mqtt/device"
	"github.com/medprov/medprov/mqtt/mqtttest"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// nodeEnv is a node on the embedded backends, wired as "medprov serve
// --mqtt-addr" wires it, with its HTTP gateway on a loopback port and an
// operator and a patient registered.
type nodeEnv struct {
	n      *node.Node
	server mqtttest.Server
	op     *client.Client
	prefix string
}

func newNodeEnv(t *testing.T, limits gateway.Limits) *nodeEnv {
	t.Helper()
	dir := t.TempDir()
	mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	require.NoError(t, err)
	e := &nodeEnv{server: mqtttest.ServerCert(t, dir), prefix: "m"}
	n, err := node.Open(t.Context(), node.Config{DataDir: filepath.Join(dir, "data"), MasterKey: mk, AdminToken: "mqtt-test-admin-token-0123",
		Limits: limits, MQTTAddr: mqtttest.FreeAddr(t), MQTTTLS: e.server.TLS})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Close()) })
	e.n = n
	ln, err := net.Listen("tcp", mqtttest.FreeAddr(t))
	require.NoError(t, err)
	srv := node.NewHTTPServer(n.Handler(), testLogger())
	go srv.Serve(ln) //nolint:errcheck // ErrServerClosed after Close
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()
	admin, err := client.New(base, client.WithAdminToken("mqtt-test-admin-token-0123"))
	require.NoError(t, err)
	opKey, patKey := testkit.MustKey(t), testkit.MustKey(t)
	for _, a := range []struct {
		id, role string
		key      *ecdsa.PrivateKey
	}{{"op", wire.RoleOperator, opKey}, {"pat", wire.RolePatient, patKey}} {
		_, err := admin.RegisterActor(t.Context(), wire.ActorInput{ID: a.id, Role: a.role, PublicKey: testkit.PublicPEM(t, a.key)})
		require.NoError(t, err)
	}
	e.op, err = client.New(base, client.WithActor("op", opKey))
	require.NoError(t, err)
	return e
}

// register registers a device with a fresh key.
func (e *nodeEnv) register(t *testing.T, id string) (*ecdsa.PrivateKey, tls.Certificate) {
	t.Helper()
	k := testkit.MustKey(t)
	_, err := e.op.RegisterDevice(t.Context(), client.DeviceRegistration{DeviceID: id, PatientID: "pat", DeviceType: "monitor", PublicKey: testkit.PublicPEM(t, k)})
	require.NoError(t, err)
	cert, err := device.Certificate(id, k)
	require.NoError(t, err)
	return k, cert
}

func (e *nodeEnv) dial(t *testing.T, id string, cert tls.Certificate, rs *results) (*device.Device, error) {
	t.Helper()
	cfg := device.Config{Addr: e.n.MQTT.Addr().String(), ID: id, Certificate: cert, RootCAs: e.server.Pool, Timeout: 20 * time.Second}
	if rs != nil {
		cfg.Results = rs.add
	}
	d, err := device.Dial(t.Context(), cfg)
	if err == nil {
		t.Cleanup(func() { d.Close() }) //nolint:errcheck // may be gone already
	}
	return d, err
}

// reading returns a signed reading body.
func reading(t *testing.T, id string, key *ecdsa.PrivateKey, seq uint64) []byte {
	t.Helper()
	p, err := client.NewReading(id, seq, "heart_rate", "bpm", 60+seq%40, time.Now())
	require.NoError(t, err)
	env, err := client.SignReading(key, p)
	require.NoError(t, err)
	return testkit.MustJSON(t, env)
}

// onLedger reads a reading from the node's ledger.
func (e *nodeEnv) onLedger(t *testing.T, readingID string) (wire.Reading, error) {
	t.Helper()
	b, err := e.n.Ledger.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetReading, Args: []string{readingID}})
	if err != nil {
		return wire.Reading{}, err
	}
	var r wire.Reading
	require.NoError(t, json.Unmarshal(b, &r))
	return r, nil
}

func TestReadingsGoThroughTheGatewayToTheLedger(t *testing.T) {
	e := newNodeEnv(t, gateway.Limits{DeviceRate: -1})
	key, cert := e.register(t, "pump-1")
	otherKey, _ := e.register(t, "pump-2")
	rs := newResults()
	d, err := e.dial(t, "pump-1", cert, rs)
	require.NoError(t, err)
	seen := 0
	next := func(t *testing.T, n int) []result {
		t.Helper()
		got := rs.wait(t, seen+n)[seen : seen+n]
		seen += n
		return got
	}

	t.Run("a QoS 1 reading is queued, then recorded on the ledger", func(t *testing.T) {
		require.NoError(t, d.Publish(t.Context(), reading(t, "pump-1", key, 1), []byte("one")))
		got := next(t, 2)
		assert.Equal(t, wire.StatusQueued, got[0].Status)
		assert.Equal(t, wire.StatusRecorded, got[1].Status)
		for _, r := range got {
			assert.Equal(t, "pump-1:1", r.ReadingID)
			assert.Equal(t, []byte("one"), r.corr)
		}
		assert.NotEmpty(t, got[1].TxID)
		rec, err := e.onLedger(t, "pump-1:1")
		require.NoError(t, err)
		assert.Equal(t, got[0].DataHash, rec.DataHash)
	})
	t.Run("a reading sent again is answered as known, not recorded twice", func(t *testing.T) {
		body := reading(t, "pump-1", key, 2)
		require.NoError(t, d.Publish(t.Context(), body, nil))
		first := next(t, 2)
		require.Equal(t, wire.StatusRecorded, first[1].Status)
		require.NoError(t, d.Publish(t.Context(), body, nil))
		again := next(t, 1)
		assert.Equal(t, wire.StatusRecorded, again[0].Status)
		assert.Empty(t, again[0].TxID, "no new transaction")
	})
	t.Run("a batch answers each reading with its index", func(t *testing.T) {
		var envs []json.RawMessage
		for seq := uint64(10); seq < 13; seq++ {
			envs = append(envs, reading(t, "pump-1", key, seq))
		}
		require.NoError(t, d.Publish(t.Context(), testkit.MustJSON(t, wire.BatchRequest{Readings: envs}), nil))
		got := next(t, 6)
		for i, r := range got[:3] {
			assert.Equal(t, wire.StatusQueued, r.Status)
			require.NotNil(t, r.Index)
			assert.Equal(t, i, *r.Index)
		}
		for _, r := range got[3:] {
			assert.Equal(t, wire.StatusRecorded, r.Status)
		}
	})
	refusals := []struct {
		name     string
		body     []byte
		wantAck  byte
		wantCode wire.Code
	}{
		{"a reading signed by another device is refused", reading(t, "pump-2", otherKey, 1), 0x87, wire.CodeForbidden},
		{"a reading whose signature does not verify is refused", badSignature(t, reading(t, "pump-1", key, 20)), 0x87, wire.CodeUnauthenticated},
		{"a message that is not JSON is malformed", []byte("heart rate 72"), 0x99, wire.CodeInvalid},
		{"an empty message is malformed", []byte(" "), 0x99, wire.CodeInvalid},
		{"an envelope with an unknown member is malformed", []byte(`{"payload":"","signature":"","x":1}`), 0x99, wire.CodeInvalid},
		{"an empty batch is malformed", []byte(`{"readings":[]}`), 0x99, wire.CodeInvalid},
		{"a single reading over 64 KiB is too large", []byte(`{"payload":"` + strings.Repeat("A", 70<<10) + `","signature":""}`), 0x99, wire.CodeTooLarge},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Publish(t.Context(), tt.body, nil)
			var re *device.RefusedError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tt.wantAck, re.Code)
			got := next(t, 1)[0]
			assert.Equal(t, wire.StatusRejected, got.Status)
			require.NotNil(t, got.Error)
			assert.Equal(t, tt.wantCode, got.Error.Code)
		})
	}
	t.Run("the connection stayed up through the refusals", func(t *testing.T) {
		require.NoError(t, d.Publish(t.Context(), reading(t, "pump-1", key, 30), nil))
		assert.Equal(t, wire.StatusQueued, next(t, 2)[0].Status)
	})
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// badSignature returns body with another device's signature.
func badSignature(t *testing.T, body []byte) []byte {
	t.Helper()
	var env map[string]string
	require.NoError(t, json.Unmarshal(body, &env))
	other := testkit.MustSign(t, testkit.MustKey(t), []byte("something else"))
	env["signature"] = base64.StdEncoding.EncodeToString(other.Signature)
	return testkit.MustJSON(t, env)
}

func TestOnlyRegisteredActiveDevicesConnect(t *testing.T) {
	e := newNodeEnv(t, gateway.Limits{DeviceRate: -1})
	_, cert := e.register(t, "meter-1")
	_, revokedCert := e.register(t, "meter-2")
	unregistered, err := device.Certificate("meter-9", testkit.MustKey(t))
	require.NoError(t, err)
	otherKey, err := device.Certificate("meter-1", testkit.MustKey(t))
	require.NoError(t, err)

	lost := make(chan error, 1)
	live, err := device.Dial(t.Context(), device.Config{Addr: e.n.MQTT.Addr().String(), ID: "meter-2", Certificate: revokedCert,
		RootCAs: e.server.Pool, OnLost: func(err error) { lost <- err }})
	require.NoError(t, err)
	t.Cleanup(func() { live.Close() }) //nolint:errcheck // gone already
	_, err = e.op.RevokeDevice(t.Context(), "meter-2")
	require.NoError(t, err)
	t.Run("revoking a connected device disconnects it", func(t *testing.T) {
		select {
		case err := <-lost:
			var re *device.RefusedError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, byte(0x87), re.Code)
		case <-time.After(10 * time.Second):
			require.FailNow(t, "the revoked device is still connected")
		}
	})
	tests := []struct {
		name string
		id   string
		cert tls.Certificate
		ok   bool
	}{
		{"the registered key connects", "meter-1", cert, true},
		{"an unregistered device is refused", "meter-9", unregistered, false},
		{"another key for a registered device is refused", "meter-1", otherKey, false},
		{"a revoked device is refused", "meter-2", revokedCert, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.dial(t, tt.id, tt.cert, nil)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			var re *device.RefusedError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, byte(0x87), re.Code, "not authorized")
		})
	}
}

func TestDeviceRateLimitAppliesAndTheConnectionStays(t *testing.T) {
	e := newNodeEnv(t, gateway.Limits{DeviceRate: 1, DeviceBurst: 2})
	key, cert := e.register(t, "sensor-1")
	rs := newResults()
	d, err := e.dial(t, "sensor-1", cert, rs)
	require.NoError(t, err)
	var limited int
	for seq := uint64(1); seq <= 4; seq++ {
		err := d.Publish(t.Context(), reading(t, "sensor-1", key, seq), nil)
		var re *device.RefusedError
		if errors.As(err, &re) {
			assert.Equal(t, byte(0x97), re.Code, "quota exceeded")
			limited++
			continue
		}
		require.NoError(t, err)
	}
	assert.Equal(t, 2, limited, "readings beyond the burst of 2")
	var codes []wire.Code
	for _, r := range rs.wait(t, 6) {
		if r.Error != nil {
			codes = append(codes, r.Error.Code)
		}
	}
	assert.Equal(t, []wire.Code{wire.CodeRateLimited, wire.CodeRateLimited}, codes)
	time.Sleep(1100 * time.Millisecond)
	require.NoError(t, d.Publish(context.Background(), reading(t, "sensor-1", key, 5), nil), "a token later the device publishes again")
}
