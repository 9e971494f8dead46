package e2e

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ledger/fabric"
)

// sender streams signed readings of one device to the gateway and records
// which ones the gateway acknowledged.
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
		if err != nil {
			t.Error(err)
			return
		}
		env, err := client.SignReading(s.key, p)
		if err != nil {
			t.Error(err)
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
				t.Errorf("reading %s:%d: %v", s.dev, seq, err)
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
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v, ok := m[name]
	if !ok {
		t.Fatalf("no %s in /metrics", name)
	}
	return v
}

// recordedOnChain reads every ReadingsRecorded event from block 0 and
// counts how often each reading ID was recorded. It stops once no event has
// arrived for quiet.
func recordedOnChain(t *testing.T, profile string, quiet time.Duration) map[string]int {
	t.Helper()
	p, err := fabric.LoadProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := p.Config("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tr, err := fabric.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	events, err := tr.Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event stream ended early")
			}
			if ev.Name != wire.EventReadingsRecorded {
				continue
			}
			var rr wire.ReadingsRecordedEvent
			if err := json.Unmarshal(ev.Payload, &rr); err != nil {
				t.Fatal(err)
			}
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

	admin, err := client.New(g.URL(), client.WithAdminToken(g.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	newKey := func() (*ecdsa.PrivateKey, string) {
		k, err := envelope.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := envelope.MarshalPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return k, string(pub)
	}
	opKey, opPub := newKey()
	_, patPub := newKey()
	for _, a := range []wire.ActorInput{{ID: "op", Role: wire.RoleOperator, PublicKey: opPub}, {ID: "pat", Role: wire.RolePatient, PublicKey: patPub}} {
		if _, err := admin.RegisterActor(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	op, err := client.New(g.URL(), client.WithActor("op", opKey))
	if err != nil {
		t.Fatal(err)
	}
	var senders []*sender
	for _, dev := range []string{"dev-a", "dev-b"} {
		k, pub := newKey()
		if _, err := op.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: dev, PatientID: "pat", DeviceType: "hr", PublicKey: pub}); err != nil {
			t.Fatal(err)
		}
		c, err := client.New(g.URL())
		if err != nil {
			t.Fatal(err)
		}
		senders = append(senders, &sender{c: c, dev: dev, key: k})
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Add(1)
		go func() { defer wg.Done(); s.run(loadCtx, t) }()
	}
	for _, component := range []string{"peer.hospital", "chaincode.hospital", "orderer0"} {
		time.Sleep(2 * time.Second)
		t.Logf("stopping %s under load", component)
		if err := n.Stop(ctx, component); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		if err := n.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	stopLoad()
	wg.Wait()

	deadline := time.Now().Add(3 * time.Minute)
	for gaugeValue(t, g.URL(), "medprov_ingest_queue_depth") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged readings still queued after 3 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
	g.Stop(t)

	counts := recordedOnChain(t, n.Profile, 5*time.Second)
	total := 0
	for _, s := range senders {
		total += len(s.acked)
		for _, id := range s.acked {
			if counts[id] != 1 {
				t.Errorf("acknowledged reading %s recorded %d times, want exactly once", id, counts[id])
			}
		}
	}
	for id, c := range counts {
		if c > 1 {
			t.Errorf("reading %s recorded %d times", id, c)
		}
	}
	if total < 100 {
		t.Errorf("only %d readings acknowledged; the load did not run", total)
	}
	t.Logf("%d readings acknowledged across peer, chaincode server and orderer restarts; %d on chain; pushback answers: %d/%d",
		total, len(counts), senders[0].pushback, senders[1].pushback)
}
