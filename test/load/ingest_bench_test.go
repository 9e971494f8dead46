package load

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/ingest"
	"github.com/medprov/medprov/loadgen"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
)

// Flags of BenchmarkGatewayIngest; they mirror "medprov serve" and
// "medprov bench".
var (
	flagCPUProfile  = flag.String("load.cpuprofile", "", "write a CPU profile of the load and drain phases (not setup or signing) to this file")
	flagBatchMax    = flag.Int("load.batch-max", 500, "gateway: most readings per ledger transaction (serve --batch-max)")
	flagBatchWait   = flag.Duration("load.batch-wait", 20*time.Millisecond, "gateway: longest a reading waits for its transaction (serve --batch-wait)")
	flagInFlight    = flag.Int("load.in-flight", 4, "gateway: ledger transactions in flight (serve --in-flight)")
	flagConcurrency = flag.Int("load.concurrency", 32, "bench: requests in flight")
	flagBatch       = flag.Int("load.batch", 100, "bench: readings per request")
	flagDevices     = flag.Int("load.devices", 50, "bench: simulated devices")
)

// startInProcess runs an embedded node (wired by package node, as "medprov serve" wires it,
// it, without the per-device limit) on a loopback port in this process.
func startInProcess(b *testing.B, adminToken string) string {
	b.Helper()
	dir := b.TempDir()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	require.NoError(b, err)
	n, err := node.Open(b.Context(), node.Config{
		DataDir: dir, MasterKey: mk, AdminToken: adminToken,
		Queue:   ingest.QueueConfig{MaxPending: 200000},
		Batcher: ingest.BatcherConfig{MaxBatch: *flagBatchMax, MaxWait: *flagBatchWait, InFlight: *flagInFlight},
		Limits:  gateway.Limits{DeviceRate: -1, ActorRate: -1},
		Logger:  log,
	})
	require.NoError(b, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	srv := node.NewHTTPServer(n.Handler(), log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		assert.NoError(b, srv.Shutdown(sctx), "shutting the HTTP server down")
		assert.ErrorIs(b, <-served, http.ErrServerClosed, "Serve ends only by Shutdown")
		assert.NoError(b, n.Close())
	})
	return "http://" + ln.Addr().String()
}

// BenchmarkGatewayIngest sends b.N pre-signed readings (rounded up to whole
// requests) to an in-process embedded gateway as fast as it answers, waits
// until they are all committed, and reports readings/s acknowledged and
// committed and the p99 acknowledgement latency. The client runs in the same
// process, so a profile shows its share too (net/http client, loadgen.(*Bench)).
// Use -benchtime Nx: every iteration count builds a fresh gateway.
func BenchmarkGatewayIngest(b *testing.B) {
	const token = "load-admin-token-0123456789abcdef"
	base := startInProcess(b, token)
	cfg := loadgen.Config{
		Gateway: base, AdminToken: token, Devices: *flagDevices, Concurrency: *flagConcurrency, Batch: *flagBatch,
		Duration: 10 * time.Minute, Readings: b.N, CommitSample: 0.02, VerifyFor: -1,
	}
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	bench, err := loadgen.New(b.Context(), cfg)
	require.NoError(b, err)
	if *flagCPUProfile != "" {
		f, err := os.Create(*flagCPUProfile)
		require.NoError(b, err)
		require.NoError(b, pprof.StartCPUProfile(f))
		defer func() {
			pprof.StopCPUProfile()
			assert.NoError(b, f.Close(), "closing the CPU profile")
		}()
	}
	b.ResetTimer()
	rep, err := bench.Run(b.Context())
	b.StopTimer()
	require.NoError(b, err)
	require.True(b, rep.Drained, "the queue drained")
	require.Empty(b, rep.Errors, "request errors")
	require.Zero(b, rep.ReadingsRejected, "readings rejected by the ledger")
	require.GreaterOrEqual(b, rep.ReadingsCommitted, rep.ReadingsAcked, "committed readings cover the acknowledged ones")
	b.ReportMetric(rep.AckedPerSec, "acked/s")
	b.ReportMetric(rep.CommittedPerSec, "committed/s")
	b.ReportMetric(rep.P99AckMs, "p99-ack-ms")
	b.ReportMetric(rep.P99CommitMs, "p99-commit-ms")
	b.ReportMetric(rep.ECDSAPerReading, "ecdsa/reading")
	b.ReportMetric(0, "ns/op")
}
