package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/internal/testnet"
	ledgerembedded "github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/mqtt"
	"github.com/medprov/medprov/mqtt/device"
	"github.com/medprov/medprov/mqtt/mqtttest"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/wire"
)

// TestMQTTEmbedded runs the MQTT story against the gateway binary on the
// embedded default, counting recorded readings on the embedded ledger
// itself.
func TestMQTTEmbedded(t *testing.T) {
	g := NewGateway(t)
	g.Addr = mqtttest.FreeAddr(t)
	mqttStory(t, g, "emb-", embeddedRecorded(g))
}

// fabricRecorded counts recorded readings on the Fabric network n, from
// its ReadingsRecorded events (for mqttStory).
func fabricRecorded(n *testnet.FabricNetwork) func(t *testing.T) map[string]int {
	return func(t *testing.T) map[string]int { return recordedOnChain(t, n.Profile, 10*time.Second) }
}

// embeddedRecorded counts recorded readings on the embedded ledger of g,
// from the ReadingsRecorded events of every block: it stops g, reads its
// ledger directory and starts g again (for mqttStory).
func embeddedRecorded(g *Gateway) func(t *testing.T) map[string]int {
	return func(t *testing.T) map[string]int {
		t.Helper()
		g.Stop(t)
		defer g.Start(t)
		cc, err := chaincode.NewChaincode()
		require.NoError(t, err)
		l, err := ledgerembedded.New(t.Context(), ledgerembedded.Config{Dir: filepath.Join(g.DataDir, node.LedgerDir), Chaincode: cc})
		require.NoError(t, err)
		defer func() { assert.NoError(t, l.Close()) }()
		counts := map[string]int{}
		for n := range l.Height() {
			blk, err := l.Block(t.Context(), n)
			require.NoError(t, err, "block %d", n)
			for _, tx := range blk.Transactions {
				if tx.Event == nil || tx.Event.Name != wire.EventReadingsRecorded {
					continue
				}
				var ev wire.ReadingsRecordedEvent
				require.NoError(t, json.Unmarshal(tx.Event.Payload, &ev), "event in block %d", n)
				for _, id := range ev.ReadingIDs {
					counts[id]++
				}
			}
		}
		return counts
	}
}

// mqttDevice is a device of the story: its key and certificate.
type mqttDevice struct {
	id   string
	key  *ecdsa.PrivateKey
	cert tls.Certificate
}

// mqttStory restarts g (on either backend) with its MQTT listener on a
// port below 32768 and a fresh server certificate, registers devices
// through the HTTP API and checks, over MQTT with real clients (paho for
// MQTT 5, a bare client for 3.1.1): readings published at QoS 1 are on the
// ledger exactly once, also across a SIGKILL of the gateway mid-stream; a
// device can neither publish as another device nor subscribe to another
// device's results, nor connect with an unregistered or revoked key;
// malformed and oversized messages are answered with error results.
// recorded counts how often the ledger recorded each reading id; it may
// restart g. prefix keeps the story's ids apart from other tests' on a
// shared ledger. g's flags are restored when the story ends (its MQTT
// listener stays on until g restarts).
func mqttStory(t *testing.T, g *Gateway, prefix string, recorded func(t *testing.T) map[string]int) {
	ctx := t.Context()
	srv := mqtttest.ServerCert(t, t.TempDir())
	mqttAddr := mqtttest.FreeAddr(t)
	saved := g.Args
	t.Cleanup(func() { g.Args = saved })
	if g.Running() {
		g.Stop(t)
	}
	// A long batch wait keeps acknowledged readings in the queue, so that
	// the SIGKILL below lands between acknowledgement and commit.
	g.Args = append(append([]string(nil), saved...), "--mqtt-addr", mqttAddr, "--mqtt-tls-cert", srv.CertFile, "--mqtt-tls-key", srv.KeyFile,
		"--batch-wait", "300ms")
	g.Start(t)

	admin, err := client.New(g.URL(), client.WithAdminToken(g.AdminToken))
	require.NoError(t, err)
	prefix += fmt.Sprintf("mq%06x", rand.Uint32()&0xffffff)
	opKey, patKey := testkit.MustKey(t), testkit.MustKey(t)
	op, pat := prefix+"-op", prefix+"-pat"
	for _, a := range []struct {
		id, role string
		key      *ecdsa.PrivateKey
	}{{op, wire.RoleOperator, opKey}, {pat, wire.RolePatient, patKey}} {
		_, err := admin.RegisterActor(ctx, wire.ActorInput{ID: a.id, Role: a.role, PublicKey: testkit.PublicPEM(t, a.key)})
		require.NoError(t, err, "register %s", a.id)
	}
	opc, err := client.New(g.URL(), client.WithActor(op, opKey))
	require.NoError(t, err)
	register := func(t *testing.T, name string) mqttDevice {
		t.Helper()
		d := mqttDevice{id: prefix + "-" + name, key: testkit.MustKey(t)}
		_, err := opc.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: d.id, PatientID: pat, DeviceType: "monitor", PublicKey: testkit.PublicPEM(t, d.key)})
		require.NoError(t, err, "register device %s", d.id)
		d.cert, err = device.Certificate(d.id, d.key)
		require.NoError(t, err)
		return d
	}
	dial := func(t *testing.T, d mqttDevice, results func(wire.ReadingReceipt, []byte)) (*device.Device, error) {
		t.Helper()
		c, err := device.Dial(ctx, device.Config{Addr: mqttAddr, ID: d.id, Certificate: d.cert, RootCAs: srv.Pool, Results: results, Timeout: 30 * time.Second})
		if err == nil {
			t.Cleanup(func() { c.Close() }) //nolint:errcheck // may be gone with the gateway
		}
		return c, err
	}
	signed := func(t *testing.T, d mqttDevice, seq uint64) []byte {
		t.Helper()
		p, err := client.NewReading(d.id, seq, "heart_rate", "bpm", 60+seq%40, time.Now())
		require.NoError(t, err)
		env, err := client.SignReading(d.key, p)
		require.NoError(t, err)
		return testkit.MustJSON(t, env)
	}
	alice, bob := register(t, "alice"), register(t, "bob")

	t.Run("a device cannot publish as another device", func(t *testing.T) {
		var mu sync.Mutex
		var got []wire.ReadingReceipt
		c, err := dial(t, alice, func(r wire.ReadingReceipt, _ []byte) { mu.Lock(); got = append(got, r); mu.Unlock() })
		require.NoError(t, err)
		var re *device.RefusedError
		require.ErrorAs(t, c.Publish(ctx, signed(t, bob, 1), nil), &re, "bob's signed reading on alice's connection")
		assert.Equal(t, byte(0x87), re.Code, "not authorized")
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 }, 10*time.Second, 20*time.Millisecond)
		require.NotNil(t, got[0].Error)
		assert.Equal(t, wire.CodeForbidden, got[0].Error.Code)

		v3, err := mqtttest.DialV3(t, mqttAddr, &alice.cert, srv.Pool)
		require.NoError(t, err)
		require.Zero(t, v3.Connect(t, alice.id, nil), "alice connects over MQTT 3.1.1")
		require.EqualValues(t, 1, v3.Subscribe(t, mqtt.ResultsTopic(alice.id)))
		require.True(t, v3.Publish(t, mqtt.ReadingsTopic(bob.id), signed(t, bob, 2), 1, false), "acknowledged, not taken")
		pk, err := v3.NextPublish(t, 10*time.Second)
		require.NoError(t, err)
		assert.Contains(t, string(pk.Payload), `"code":"forbidden"`, "alice's result for bob's topic")

		t.Run("nor subscribe to another device's results", func(t *testing.T) {
			assert.EqualValues(t, 0x80, v3.Subscribe(t, mqtt.ResultsTopic(bob.id)))
			assert.EqualValues(t, 0x80, v3.Subscribe(t, "medprov/v1/devices/+/results"))
		})
		t.Run("QoS 0 goes the same way, unacknowledged", func(t *testing.T) {
			require.True(t, v3.Publish(t, mqtt.ReadingsTopic(alice.id), signed(t, alice, 900), 0, false))
			pk, err := v3.NextPublish(t, 10*time.Second)
			require.NoError(t, err)
			assert.Contains(t, string(pk.Payload), `"readingId":"`+alice.id+`:900"`)
		})
	})

	t.Run("unregistered and revoked keys cannot connect", func(t *testing.T) {
		carol := register(t, "carol")
		lost := make(chan error, 1)
		live, err := device.Dial(ctx, device.Config{Addr: mqttAddr, ID: carol.id, Certificate: carol.cert, RootCAs: srv.Pool,
			OnLost: func(err error) { lost <- err }})
		require.NoError(t, err)
		t.Cleanup(func() { live.Close() }) //nolint:errcheck // gone already
		_, err = opc.RevokeDevice(ctx, carol.id)
		require.NoError(t, err)
		select {
		case <-lost:
		case <-time.After(30 * time.Second):
			require.FailNow(t, "the revoked device is still connected after 30s")
		}
		stranger, err := device.Certificate(prefix+"-nobody", testkit.MustKey(t))
		require.NoError(t, err)
		forged, err := device.Certificate(alice.id, testkit.MustKey(t))
		require.NoError(t, err)
		for _, tt := range []struct {
			name string
			d    mqttDevice
		}{
			{"an unregistered device", mqttDevice{id: prefix + "-nobody", cert: stranger}},
			{"a registered device id with another key", mqttDevice{id: alice.id, cert: forged}},
			{"a revoked device", carol},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := dial(t, tt.d, nil)
				var re *device.RefusedError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, byte(0x87), re.Code, "not authorized")
			})
		}
	})

	t.Run("malformed and oversized messages answer error results", func(t *testing.T) {
		var mu sync.Mutex
		var got []wire.ReadingReceipt
		c, err := dial(t, bob, func(r wire.ReadingReceipt, _ []byte) { mu.Lock(); got = append(got, r); mu.Unlock() })
		require.NoError(t, err)
		manyReadings := `{"readings":[` + strings.TrimSuffix(strings.Repeat(`{"payload":"","signature":""},`, 1001), ",") + `]}`
		tests := []struct {
			name string
			body string
			want wire.Code
		}{
			{"not JSON", "72 bpm", wire.CodeInvalid},
			{"an envelope without its signature", `{"payload":"e30="}`, wire.CodeInvalid},
			{"a payload that is not a reading", string(testkit.MustJSON(t, testkit.MustSign(t, bob.key, []byte(`{"hello":1}`)))), wire.CodeInvalid},
			{"a batch of more than 1000 readings", manyReadings, wire.CodeInvalid},
			{"a single reading over 64 KiB", `{"payload":"` + strings.Repeat("QUJD", 17<<10) + `","signature":"AA=="}`, wire.CodeTooLarge},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				require.Error(t, c.Publish(ctx, []byte(tt.body), nil), "refused whole")
				require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == i+1 }, 10*time.Second, 20*time.Millisecond)
				mu.Lock()
				r := got[i]
				mu.Unlock()
				require.NotNil(t, r.Error)
				assert.Equal(t, tt.want, r.Error.Code)
			})
		}
		require.NoError(t, c.Publish(ctx, signed(t, bob, 3), nil), "the connection is still up")
	})

	t.Run("QoS 1 readings are on the ledger exactly once, across a SIGKILL of the gateway", func(t *testing.T) {
		senders := make([]*mqttSender, 4)
		for i := range senders {
			d := register(t, fmt.Sprintf("stream%d", i))
			senders[i] = &mqttSender{d: d, cfg: device.Config{Addr: mqttAddr, ID: d.id, Certificate: d.cert, RootCAs: srv.Pool, Timeout: 30 * time.Second}}
		}
		sctx, stopSending := context.WithCancel(ctx)
		defer stopSending()
		var wg sync.WaitGroup
		for _, s := range senders {
			wg.Go(func() { s.run(sctx, t, signed) })
		}
		acked := func() int {
			n := 0
			for _, s := range senders {
				n += s.count()
			}
			return n
		}
		waitAcked := func(n int) {
			deadline := time.Now().Add(60 * time.Second)
			for acked() < n {
				require.False(t, time.Now().After(deadline), "only %d of %d readings acknowledged after 60s", acked(), n)
				time.Sleep(20 * time.Millisecond)
			}
		}
		waitAcked(150)
		pending := gaugeValue(t, g.URL(), "medprov_ingest_queue_depth")
		g.Kill()
		atKill := acked()
		t0 := time.Now()
		g.Start(t)
		t.Logf("SIGKILL with %.0f readings acknowledged and not yet on the ledger; restarted in %.1fs", pending, time.Since(t0).Seconds())
		waitAcked(atKill + 150)
		stopSending()
		wg.Wait()
		t.Logf("sent %.1fs after the restart", time.Since(t0).Seconds())

		drained := time.Now().Add(2 * time.Minute)
		for gaugeValue(t, g.URL(), "medprov_ingest_queue_depth") > 0 {
			require.False(t, time.Now().After(drained), "the ingest queue did not drain within 2 minutes")
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("drained %.1fs after the restart", time.Since(t0).Seconds())
		counts := recorded(t)
		t.Logf("counted %.1fs after the restart", time.Since(t0).Seconds())
		var missing, twice int
		for _, s := range senders {
			for _, id := range s.ackedIDs() {
				if counts[id] == 0 {
					if missing++; missing <= 5 {
						assert.Failf(t, "an acknowledged reading is not on the ledger", "reading %s", id)
					}
				}
			}
		}
		for id, n := range counts {
			if strings.HasPrefix(id, prefix) && n > 1 {
				if twice++; twice <= 5 {
					assert.Failf(t, "a reading was recorded more than once", "reading %s recorded %d times", id, n)
				}
			}
		}
		assert.Zero(t, missing, "acknowledged readings missing from the ledger")
		assert.Zero(t, twice, "readings recorded more than once")
		reconnects, pushback := 0, 0
		for _, s := range senders {
			reconnects += s.reconnects
			pushback += s.pushback
		}
		assert.Positive(t, reconnects, "the devices reconnected after the kill")
		t.Logf("%d readings acknowledged (%d before the SIGKILL), %d reconnects, %d pushed back", acked(), atKill, reconnects, pushback)
	})
}

// mqttSender streams one device's readings at QoS 1 and remembers those
// acknowledged. A reading whose PUBACK did not arrive (the gateway died) is
// sent again, byte for byte, once the device reconnects. It runs on its
// own goroutine and reports with assert.
type mqttSender struct {
	d          mqttDevice
	cfg        device.Config
	mu         sync.Mutex
	acked      []string
	reconnects int
	pushback   int
}

func (s *mqttSender) run(ctx context.Context, t *testing.T, signed func(*testing.T, mqttDevice, uint64) []byte) {
	var c *device.Device
	defer func() {
		if c != nil {
			c.Close() //nolint:errcheck // the story is over
		}
	}()
	for seq := uint64(1); ctx.Err() == nil; seq++ {
		body := signed(t, s.d, seq)
		for {
			if ctx.Err() != nil {
				return
			}
			if c == nil {
				var err error
				if c, err = device.Dial(ctx, s.cfg); err != nil {
					time.Sleep(100 * time.Millisecond) // the gateway is down: keep the reading
					continue
				}
			}
			err := c.Publish(context.WithoutCancel(ctx), body, nil)
			if err == nil {
				s.mu.Lock()
				s.acked = append(s.acked, wire.ReadingID(s.d.id, seq))
				s.mu.Unlock()
				break
			}
			var re *device.RefusedError
			if errors.As(err, &re) && re.Code == 0x97 {
				s.mu.Lock()
				s.pushback++
				s.mu.Unlock()
				time.Sleep(200 * time.Millisecond) // pushback: not taken, send again
				continue
			}
			if !assert.NotErrorAs(t, err, &re, "reading %d of %s refused", seq, s.d.id) {
				return
			}
			c.Close() //nolint:errcheck // the connection is lost
			c = nil
			s.mu.Lock()
			s.reconnects++
			s.mu.Unlock()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *mqttSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

func (s *mqttSender) ackedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acked...)
}
