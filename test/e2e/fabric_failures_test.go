package e2e

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/ledger/fabric"
	"github.com/medprov/medprov/wire"
)

// sender streams signed readings of one device to the gateway and records
// which ones the gateway acknowledged. It runs on its own goroutine, so it
// reports failures with assert, never require.
type sender struct {
	c        *client.Client
	dev      string
	key      *ecdsa.PrivateKey
	mu       sync.Mutex
	acked    []string
	pushback int
}

func (s *sender) run(ctx context.Context, t *testing.T) {
	for seq := uint64(1); ctx.Err() == nil; seq++ {
		p, err := client.NewReading(s.dev, seq, "heart_rate", "bpm", seq%200, time.Now())
		if !assert.NoError(t, err) {
			return
		}
		env, err := client.SignReading(s.key, p)
		if !assert.NoError(t, err) {
			return
		}
		for ctx.Err() == nil {
			r, err := s.c.SubmitReading(ctx, env)
			if err == nil {
				s.mu.Lock()
				s.acked = append(s.acked, r.ReadingID)
				s.mu.Unlock()
				break
			}
			if errors.Is(err, client.ErrUnavailable) {
				// Pushback: not acknowledged, so the device keeps the
				// reading and sends it again.
				s.mu.Lock()
				s.pushback++
				s.mu.Unlock()
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if ctx.Err() == nil {
				assert.NoError(t, err, "reading %s:%d", s.dev, seq)
			}
			return
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// gaugeValue reads one sample from the gateway's /metrics.
func gaugeValue(t *testing.T, baseURL, name string) float64 {
	t.Helper()
	c, err := client.New(baseURL)
	require.NoError(t, err)
	m, err := c.Metrics(t.Context())
	require.NoError(t, err)
	require.Contains(t, m, name, "/metrics")
	return m[name]
}

// recordedOnChain reads every ReadingsRecorded event from block 0 and
// counts how often each reading ID was recorded. It stops once no event has
// arrived for quiet.
func recordedOnChain(t *testing.T, profile string, quiet time.Duration) map[string]int {
	t.Helper()
	p, err := fabric.LoadProfile(profile)
	require.NoError(t, err)
	cfg, err := p.Config("")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tr, err := fabric.New(ctx, cfg)
	require.NoError(t, err)
	defer tr.Close()
	events, err := tr.Events(ctx, 0)
	require.NoError(t, err)
	counts := map[string]int{}
	for {
		select {
		case ev, ok := <-events:
			require.True(t, ok, "event stream ended early")
			if ev.Name != wire.EventReadingsRecorded {
				continue
			}
			var rr wire.ReadingsRecordedEvent
			require.NoError(t, json.Unmarshal(ev.Payload, &rr), "event in block %d", ev.Block)
			for _, id := range rr.ReadingIDs {
				counts[id]++
			}
		case <-time.After(quiet):
			return counts
		}
	}
}

// TestFabricFailuresLoseNothing stops and restarts, one at a time, the
// gateway's peer, its chaincode server and the orderer while devices keep
// sending readings. Afterwards every reading the gateway acknowledged is on
// the ledger, and no reading was recorded twice.
func TestFabricFailuresLoseNothing(t *testing.T) {
	g, n := fabricGateway(t)
	g.Args = append(g.Args, "--device-rate", "-1")
	g.Start(t)
	ctx := t.Context()

	senders := newSenders(t, g, "")

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { s.run(loadCtx, t) })
	}
	for _, component := range []string{"peer.hospital", "chaincode.hospital", "orderer0"} {
		time.Sleep(2 * time.Second)
		t.Logf("stopping %s under load", component)
		require.NoError(t, n.Stop(ctx, component), "stopping %s", component)
		time.Sleep(4 * time.Second)
		require.NoError(t, n.Up(ctx), "restarting %s", component)
	}
	time.Sleep(2 * time.Second)
	stopLoad()
	wg.Wait()

	total, onChain := drainedExactlyOnce(t, g, n, senders)
	t.Logf("%d readings acknowledged across peer, chaincode server and orderer restarts; %d on chain; pushback answers: %d/%d",
		total, onChain, senders[0].pushback, senders[1].pushback)
}

// drainedExactlyOnce waits until the gateway's queue is empty, stops the
// gateway and checks on the chain that every reading the senders saw
// acknowledged was recorded exactly once, and none twice. It answers the
// readings acknowledged and the readings on the chain.
func drainedExactlyOnce(t *testing.T, g *Gateway, n *testnet.FabricNetwork, senders []*sender) (total, onChain int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for gaugeValue(t, g.URL(), "medprov_ingest_queue_depth") > 0 {
		require.False(t, time.Now().After(deadline), "acknowledged readings still queued after 3 minutes")
		time.Sleep(500 * time.Millisecond)
	}
	g.Stop(t)

	counts := recordedOnChain(t, n.Profile, 5*time.Second)
	for _, s := range senders {
		total += len(s.acked)
		for _, id := range s.acked {
			assert.Equal(t, 1, counts[id], "times acknowledged reading %s was recorded", id)
		}
	}
	for id, c := range counts {
		assert.LessOrEqual(t, c, 1, "times reading %s was recorded", id)
	}
	assert.GreaterOrEqual(t, total, 100, "readings acknowledged; fewer means the load did not run")
	return total, len(counts)
}

// newSenders registers an operator, a patient and two devices (IDs with
// prefix) and returns a sender for each device.
func newSenders(t *testing.T, g *Gateway, prefix string) []*sender {
	t.Helper()
	ctx := t.Context()
	admin, err := client.New(g.URL(), client.WithAdminToken(g.AdminToken))
	require.NoError(t, err)
	opKey := testkit.MustKey(t)
	for _, a := range []wire.ActorInput{
		{ID: prefix + "op", Role: wire.RoleOperator, PublicKey: testkit.PublicPEM(t, opKey)},
		{ID: prefix + "pat", Role: wire.RolePatient, PublicKey: testkit.PublicPEM(t, testkit.MustKey(t))},
	} {
		_, err := admin.RegisterActor(ctx, a)
		require.NoError(t, err, "register %s", a.ID)
	}
	op, err := client.New(g.URL(), client.WithActor(prefix+"op", opKey))
	require.NoError(t, err)
	var senders []*sender
	for _, dev := range []string{prefix + "dev-a", prefix + "dev-b"} {
		k := testkit.MustKey(t)
		_, err := op.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: dev, PatientID: prefix + "pat", DeviceType: "hr", PublicKey: testkit.PublicPEM(t, k)})
		require.NoError(t, err, "register device %s", dev)
		c, err := client.New(g.URL())
		require.NoError(t, err)
		senders = append(senders, &sender{c: c, dev: dev, key: k})
	}
	return senders
}
