package load

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medprov/medprov/loadgen"
	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/cli"
	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ledger"
	ledgerembedded "github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/test/e2e"
)

// TestBenchEmbedded runs "medprov bench" for 10s against the gateway binary
// on the embedded default (no per-device limit) and checks that every
// acknowledged reading was committed and the report has the promised keys.
// It logs the numbers; it asserts no speed.
func TestBenchEmbedded(t *testing.T) {
	g := e2e.NewGateway(t, "--device-rate", "-1")
	g.Start(t)
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == cli.EnvAdminToken {
			return g.AdminToken
		}
		return ""
	}
	code := cli.Run(t.Context(), []string{"bench", "--gateway", g.URL(), "--json", "--duration", "10s",
		"--presign-rate", "8000"}, &out, &errb, getenv)
	t.Logf("bench progress:\n%s", errb.String())
	if code != cli.ExitOK {
		t.Fatalf("medprov bench exited %d", code)
	}
	t.Logf("report: %s", out.String())

	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatalf("output is not one JSON object: %v", err)
	}
	for _, k := range []string{"acked_per_sec", "committed_per_sec", "p99_ack_ms", "p99_commit_ms", "errors", "verify_per_sec", "committed_per_verify"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	var rep loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	t.Run("every acknowledged reading was committed, none rejected", func(t *testing.T) {
		if rep.ReadingsAcked == 0 {
			t.Fatal("no reading was acknowledged")
		}
		if !rep.Drained {
			t.Errorf("the queue did not drain")
		}
		if rep.ReadingsCommitted < rep.ReadingsAcked {
			t.Errorf("committed %d < acked %d", rep.ReadingsCommitted, rep.ReadingsAcked)
		}
		if rep.ReadingsRejected != 0 {
			t.Errorf("%d readings rejected by the ledger", rep.ReadingsRejected)
		}
	})
	t.Run("no request or reading failed", func(t *testing.T) {
		if len(rep.Errors) != 0 {
			t.Errorf("errors: %v", rep.Errors)
		}
		if rep.ReadingsSent != rep.ReadingsAcked {
			t.Errorf("sent %d, acked %d", rep.ReadingsSent, rep.ReadingsAcked)
		}
	})
	t.Run("ack and commit latency and the ECDSA reference were measured", func(t *testing.T) {
		if rep.P99AckMs <= 0 || rep.CommitSamples == 0 || rep.P99CommitMs <= 0 || rep.VerifyPerSec <= 0 {
			t.Errorf("p99 ack %v ms, commit samples %d, p99 commit %v ms, verify/s %v", rep.P99AckMs, rep.CommitSamples, rep.P99CommitMs, rep.VerifyPerSec)
		}
	})
	t.Logf("acked %.0f/s, committed %.0f/s (during load %.0f/s), p50/p95/p99 ack %.1f/%.1f/%.1f ms, p99 commit %.1f ms, verify %.0f/s, committed/verify %.3f",
		rep.AckedPerSec, rep.CommittedPerSec, rep.CommittedDuringLoadPerSec, rep.P50AckMs, rep.P95AckMs, rep.P99AckMs, rep.P99CommitMs, rep.VerifyPerSec, rep.CommittedPerVerify)
}

// crashLoad drives readings into a gateway from several goroutines and
// remembers every reading the gateway acknowledged.
type crashLoad struct {
	c        *client.Client
	batch    int
	inFlight atomic.Int64
	mu       sync.Mutex
	acked    map[string]bool
	failures map[string]int // failed requests by kind; only expected after the kill
}

type crashDevice struct {
	id  string
	key *ecdsa.PrivateKey
	seq uint64
}

// register makes an operator, a patient and n devices with fresh keys.
func registerDevices(ctx context.Context, t *testing.T, base, adminToken string, n int) []crashDevice {
	t.Helper()
	admin, err := client.New(base, client.WithAdminToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("crash-%06x", rand.Uint32()&0xffffff)
	keys := map[string]*ecdsa.PrivateKey{}
	for _, a := range []struct{ id, role string }{{prefix + "-op", wire.RoleOperator}, {prefix + "-pat", wire.RolePatient}} {
		k, err := envelope.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pem, err := envelope.MarshalPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.RegisterActor(ctx, wire.ActorInput{ID: a.id, Role: a.role, PublicKey: string(pem)}); err != nil {
			t.Fatalf("register %s: %v", a.id, err)
		}
		keys[a.id] = k
	}
	op, err := client.New(base, client.WithActor(prefix+"-op", keys[prefix+"-op"]))
	if err != nil {
		t.Fatal(err)
	}
	devs := make([]crashDevice, n)
	for i := range devs {
		k, err := envelope.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pem, err := envelope.MarshalPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		id := prefix + "-d" + strconv.Itoa(i+1)
		if _, err := op.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: id, PatientID: prefix + "-pat", DeviceType: "crash", PublicKey: string(pem)}); err != nil {
			t.Fatalf("register device %s: %v", id, err)
		}
		devs[i] = crashDevice{id: id, key: k}
	}
	return devs
}

// worker sends batches of its devices' readings until stop is closed or a
// request fails (after the kill, every request fails).
func (l *crashLoad) worker(ctx context.Context, devs []crashDevice, stop <-chan struct{}) error {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return nil
		default:
		}
		envs := make([]envelope.Envelope, l.batch)
		for k := range envs {
			d := &devs[(n*l.batch+k)%len(devs)]
			d.seq++
			p, err := client.NewReading(d.id, d.seq, "heart_rate", "bpm", 60+k%40, time.Now())
			if err != nil {
				return err
			}
			if envs[k], err = client.SignReading(d.key, p); err != nil {
				return err
			}
		}
		l.inFlight.Add(1)
		rec, err := l.c.SubmitReadings(ctx, envs)
		l.inFlight.Add(-1)
		if err != nil {
			l.mu.Lock()
			l.failures[failureKind(err)]++
			l.mu.Unlock()
			return nil
		}
		l.mu.Lock()
		for _, r := range rec.Results {
			switch {
			case r.Error != nil:
				l.failures["item "+string(r.Error.Code)]++
			case r.Status == wire.StatusQueued || r.Status == wire.StatusExists || r.Status == wire.StatusRecorded:
				l.acked[r.ReadingID] = true
			default:
				l.failures["item status "+r.Status]++
			}
		}
		l.mu.Unlock()
	}
}

func failureKind(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return fmt.Sprintf("http %d %s", ae.Status, ae.Code)
	}
	return "transport"
}

func (l *crashLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// queueDepth reads medprov_ingest_queue_depth from the gateway's /metrics.
func queueDepth(ctx context.Context, base string) (int64, error) {
	c, err := client.New(base)
	if err != nil {
		return 0, err
	}
	m, err := c.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	v, ok := m["medprov_ingest_queue_depth"]
	if !ok {
		return 0, errors.New("no medprov_ingest_queue_depth in /metrics")
	}
	return int64(v), nil
}

// waitDrained waits (at most d) until the gateway's queue depth is 0.
func waitDrained(ctx context.Context, t *testing.T, base string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		depth, err := queueDepth(ctx, base)
		if err != nil {
			t.Fatalf("queue depth: %v", err)
		}
		if depth == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue depth still %d after %s", depth, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCrashDuringLoad kills the gateway (SIGKILL) while batches are in
// flight, restarts it on the same data dir, waits for the replayed queue to
// drain, and then checks on the embedded ledger itself that every
// acknowledged reading is recorded, and appears in exactly one
// ReadingsRecorded event over the whole chain.
func TestCrashDuringLoad(t *testing.T) {
	ctx := t.Context()
	// A long batch wait keeps acknowledged readings in the queue, so the
	// kill lands between acknowledgement and commit.
	g := e2e.NewGateway(t, "--device-rate", "-1", "--batch-wait", "300ms")
	g.Start(t)
	const workers, devicesPerWorker, batch = 8, 4, 50
	devs := registerDevices(ctx, t, g.URL(), g.AdminToken, workers*devicesPerWorker)
	c, err := client.New(g.URL(), client.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	load := &crashLoad{c: c, batch: batch, acked: map[string]bool{}, failures: map[string]int{}}

	stop := make(chan struct{})
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { errc <- load.worker(ctx, devs[w*devicesPerWorker:(w+1)*devicesPerWorker], stop) })
	}
	// Kill once the load has run a few seconds, at a moment when requests
	// are in flight.
	started := time.Now()
	deadline := started.Add(30 * time.Second)
	for time.Since(started) < 3*time.Second || load.ackedCount() < 1000 || load.inFlight.Load() == 0 {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("after 30s: %d acked, failures %v", load.ackedCount(), load.failures)
		}
		time.Sleep(time.Millisecond)
	}
	inFlight := load.inFlight.Load()
	g.Kill()
	killedAt := load.ackedCount()
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	acked := load.ackedCount()
	t.Logf("SIGKILL after %.1fs with %d requests in flight: %d readings acknowledged (%d when killed), failed requests/items: %v",
		time.Since(started).Seconds(), inFlight, acked, killedAt, load.failures)
	for kind, n := range load.failures {
		if strings.HasPrefix(kind, "item") || strings.HasPrefix(kind, "http") {
			t.Errorf("%d refusals before the kill: %s", n, kind)
		}
	}

	g.Start(t)
	replay, err := queueDepth(ctx, g.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after restart the queue replays %d readings", replay)
	waitDrained(ctx, t, g.URL(), 60*time.Second)
	g.Stop(t)

	cc, err := chaincode.NewChaincode()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledgerembedded.New(ctx, ledgerembedded.Config{Dir: filepath.Join(g.DataDir, "ledger"), Chaincode: cc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("the chain does not verify after the crash: %v", err)
	}

	t.Run("every acknowledged reading is on the ledger", func(t *testing.T) {
		missing := 0
		for id := range load.acked {
			b, err := l.Evaluate(ctx, ledger.Proposal{Function: "GetReading", Args: []string{id}})
			if err != nil {
				if missing++; missing <= 5 {
					t.Errorf("GetReading %s: %v", id, err)
				}
				continue
			}
			var r wire.Reading
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("GetReading %s: %v", id, err)
			}
			if r.ID != id {
				t.Errorf("GetReading %s returned %s", id, r.ID)
			}
		}
		if missing > 0 {
			t.Errorf("%d of %d acknowledged readings are not on the ledger", missing, len(load.acked))
		}
	})

	t.Run("every reading appears in exactly one ReadingsRecorded event", func(t *testing.T) {
		seen := readingEvents(ctx, t, l)
		var twice, absent int
		for id, n := range seen {
			if n > 1 {
				if twice++; twice <= 5 {
					t.Errorf("reading %s recorded %d times", id, n)
				}
			}
		}
		for id := range load.acked {
			if seen[id] == 0 {
				if absent++; absent <= 5 {
					t.Errorf("acknowledged reading %s is in no event", id)
				}
			}
		}
		if twice > 0 || absent > 0 {
			t.Errorf("%d readings recorded more than once, %d acknowledged readings in no event", twice, absent)
		}
		t.Logf("%d readings in events (%d acknowledged, %d more were in flight at the kill)", len(seen), len(load.acked), len(seen)-len(load.acked))
	})
}

// readingEvents counts, per reading id, its appearances in the
// ReadingsRecorded events of the whole chain. It reads the events through
// Events from block 0, as many as the blocks hold.
func readingEvents(ctx context.Context, t *testing.T, l *ledgerembedded.Ledger) map[string]int {
	t.Helper()
	want := 0
	for n := range l.Height() {
		blk, err := l.Block(ctx, n)
		if err != nil {
			t.Fatalf("block %d: %v", n, err)
		}
		for _, tx := range blk.Transactions {
			if tx.Event != nil {
				want++
			}
		}
	}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	evs, err := l.Events(ectx, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range want {
		ev, ok := <-evs
		if !ok {
			t.Fatalf("event stream ended before the %d events the blocks hold", want)
		}
		if ev.Name != wire.EventReadingsRecorded {
			continue
		}
		var p wire.ReadingsRecordedEvent
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatalf("event in block %d: %v", ev.Block, err)
		}
		if p.TxID != ev.TxID {
			t.Errorf("event txId %s in transaction %s", p.TxID, ev.TxID)
		}
		for _, id := range p.ReadingIDs {
			seen[id]++
		}
	}
	return seen
}
