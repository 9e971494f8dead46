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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/cli"
	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	ledgerembedded "github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/loadgen"
	"github.com/medprov/medprov/test/e2e"
	"github.com/medprov/medprov/wire"
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
	require.Equal(t, cli.ExitOK, code, "medprov bench exit code")
	t.Logf("report: %s", out.String())

	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(out.Bytes(), &raw), "output is not one JSON object")
	for _, k := range []string{"acked_per_sec", "committed_per_sec", "p99_ack_ms", "p99_commit_ms", "errors", "verify_per_sec", "committed_per_verify"} {
		assert.Contains(t, raw, k, "the report has every promised key")
	}
	var rep loadgen.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	t.Run("every acknowledged reading was committed, none rejected", func(t *testing.T) {
		require.NotZero(t, rep.ReadingsAcked, "no reading was acknowledged")
		assert.True(t, rep.Drained, "the queue drained")
		assert.GreaterOrEqual(t, rep.ReadingsCommitted, rep.ReadingsAcked, "committed readings cover the acknowledged ones")
		assert.Zero(t, rep.ReadingsRejected, "readings rejected by the ledger")
	})
	t.Run("no request or reading failed", func(t *testing.T) {
		assert.Empty(t, rep.Errors, "request errors")
		assert.Equal(t, rep.ReadingsSent, rep.ReadingsAcked, "every reading sent was acknowledged")
	})
	t.Run("ack and commit latency and the ECDSA reference were measured", func(t *testing.T) {
		assert.Positive(t, rep.P99AckMs, "p99 ack ms")
		assert.NotZero(t, rep.CommitSamples, "commit samples")
		assert.Positive(t, rep.P99CommitMs, "p99 commit ms")
		assert.Positive(t, rep.VerifyPerSec, "ECDSA verifications/s")
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
	require.NoError(t, err)
	prefix := fmt.Sprintf("crash-%06x", rand.Uint32()&0xffffff)
	keys := map[string]*ecdsa.PrivateKey{}
	for _, a := range []struct{ id, role string }{{prefix + "-op", wire.RoleOperator}, {prefix + "-pat", wire.RolePatient}} {
		k := testkit.MustKey(t)
		_, err := admin.RegisterActor(ctx, wire.ActorInput{ID: a.id, Role: a.role, PublicKey: testkit.PublicPEM(t, k)})
		require.NoError(t, err, "register %s", a.id)
		keys[a.id] = k
	}
	op, err := client.New(base, client.WithActor(prefix+"-op", keys[prefix+"-op"]))
	require.NoError(t, err)
	devs := make([]crashDevice, n)
	for i := range devs {
		k := testkit.MustKey(t)
		id := prefix + "-d" + strconv.Itoa(i+1)
		_, err := op.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: id, PatientID: prefix + "-pat", DeviceType: "crash", PublicKey: testkit.PublicPEM(t, k)})
		require.NoError(t, err, "register device %s", id)
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
		require.NoError(t, err, "queue depth")
		if depth == 0 {
			return
		}
		require.False(t, time.Now().After(deadline), "queue depth still %d after %s", depth, d)
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
	require.NoError(t, err)
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
			require.FailNow(t, "the load did not get going", "after 30s: %d acked, failures %v", load.ackedCount(), load.failures)
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
		require.NoError(t, err, "load worker")
	}
	acked := load.ackedCount()
	t.Logf("SIGKILL after %.1fs with %d requests in flight: %d readings acknowledged (%d when killed), failed requests/items: %v",
		time.Since(started).Seconds(), inFlight, acked, killedAt, load.failures)
	for kind, n := range load.failures {
		refusal := strings.HasPrefix(kind, "item") || strings.HasPrefix(kind, "http")
		assert.False(t, refusal, "%d refusals before the kill: %s", n, kind)
	}

	g.Start(t)
	replay, err := queueDepth(ctx, g.URL())
	require.NoError(t, err)
	t.Logf("after restart the queue replays %d readings", replay)
	waitDrained(ctx, t, g.URL(), 60*time.Second)
	g.Stop(t)

	cc, err := chaincode.NewChaincode()
	require.NoError(t, err)
	l, err := ledgerembedded.New(ctx, ledgerembedded.Config{Dir: filepath.Join(g.DataDir, "ledger"), Chaincode: cc})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close(), "closing the ledger") })
	require.NoError(t, l.Verify(ctx), "the chain does not verify after the crash")

	t.Run("every acknowledged reading is on the ledger", func(t *testing.T) {
		missing := 0
		for id := range load.acked {
			b, err := l.Evaluate(ctx, ledger.Proposal{Function: "GetReading", Args: []string{id}})
			if err != nil {
				if missing++; missing <= 5 { // the first few; the count below says how many
					assert.NoError(t, err, "GetReading %s", id)
				}
				continue
			}
			var r wire.Reading
			require.NoError(t, json.Unmarshal(b, &r), "GetReading %s", id)
			assert.Equal(t, id, r.ID, "GetReading %s", id)
		}
		assert.Zero(t, missing, "acknowledged readings not on the ledger, of %d", len(load.acked))
	})

	t.Run("every reading appears in exactly one ReadingsRecorded event", func(t *testing.T) {
		seen := readingEvents(ctx, t, l)
		var twice, absent int
		// Each check reports the first few readings; the counts below say how many.
		for id, n := range seen {
			if n > 1 {
				if twice++; twice <= 5 {
					assert.Failf(t, "a reading was recorded more than once", "reading %s recorded %d times", id, n)
				}
			}
		}
		for id := range load.acked {
			if seen[id] == 0 {
				if absent++; absent <= 5 {
					assert.Failf(t, "an acknowledged reading is in no event", "reading %s", id)
				}
			}
		}
		assert.Zero(t, twice, "readings recorded more than once")
		assert.Zero(t, absent, "acknowledged readings in no event")
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
		require.NoError(t, err, "block %d", n)
		for _, tx := range blk.Transactions {
			if tx.Event != nil {
				want++
			}
		}
	}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	evs, err := l.Events(ectx, 0)
	require.NoError(t, err)
	seen := map[string]int{}
	for range want {
		ev, ok := <-evs
		require.True(t, ok, "event stream ended before the %d events the blocks hold", want)
		if ev.Name != wire.EventReadingsRecorded {
			continue
		}
		var p wire.ReadingsRecordedEvent
		require.NoError(t, json.Unmarshal(ev.Payload, &p), "event in block %d", ev.Block)
		assert.Equal(t, ev.TxID, p.TxID, "the event's txId is its transaction's")
		for _, id := range p.ReadingIDs {
			seen[id]++
		}
	}
	return seen
}
