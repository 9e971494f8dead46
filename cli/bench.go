package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/loadgen"
)

func newBenchCmd(a *app) *cobra.Command {
	var cfg loadgen.Config
	var compare, compareTokenFile string
	var mq mqttOptions
	cmd := &cobra.Command{
		Use:   "bench --duration 30s [--concurrency N] [--batch N] [--rate R] [--compare URL] [--json]",
		Short: "Measure a running gateway's ingest throughput and latency",
		Long: `bench registers its own operator, patient and --devices devices (fresh keys;
the actors with the admin token, the devices through the operator's signed
device.register), signs all its readings before the timed phase, then
drives the gateway with --concurrency requests in flight, --batch readings
per request (1 uses POST /v1/readings), for --duration, as fast as the
gateway answers or at --rate readings per second.

A --commit-sample fraction of the requests is sent with ?wait=commit to
measure commit latency under the same load. 429 and 503 answers are counted
as pushback and retried after Retry-After. After the load phase bench waits
(at most --drain-timeout) until the gateway's ingest queue is empty.

It reports readings/s acknowledged (over the load phase) and committed
(medprov_readings_committed_total growth over load plus drain), p50/p95/p99
acknowledgement and commit latency, errors by kind, and this machine's raw
ECDSA P-256 verifications per second on all cores (measured after the
drain) with the ratio of committed readings/s to it. --json prints one JSON
object (acked_per_sec, committed_per_sec, p99_ack_ms, p99_commit_ms,
errors, verify_per_sec, ...).

Unpaced, the gateway is saturated and acknowledgement latency is mostly
queueing: about concurrency x batch / rate (Little's law). To check a
latency target at a throughput, pace the run with --rate.

Only loopback gateways are accepted. The gateway's per-device rate limit
(serve --device-rate, default 200/s) applies: run it with --device-rate -1
to measure the pipeline rather than the limiter. bench exits non-zero if no
reading was acknowledged or the queue did not drain.

With --mqtt HOST:PORT (the gateway's serve --mqtt-addr, loopback) the
readings are published over MQTT instead: each device on its own TLS
connection with a certificate for its key, each message --batch readings
of one device at QoS 1, and the latencies reported are PUBACK latencies
(the PUBACK comes once the readings are durably queued). Sampled messages'
commit latency runs until their readings' "recorded" results arrive.
--mqtt-ca verifies the listener's certificate (--mqtt-insecure skips it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := a.adminToken()
			if err != nil {
				return err
			}
			cfg.Gateway, cfg.AdminToken, cfg.Progress = a.gateway, tok, cmd.ErrOrStderr()
			if cfg.MQTT, cfg.MQTTInsecure = mq.addr, mq.insecure; cfg.MQTT != "" {
				if cfg.MQTTRootCAs, err = mq.rootCAs(); err != nil {
					return err
				}
			}
			if cfg.Duration <= 0 {
				return usagef("--duration must be positive")
			}
			if compare != "" {
				return a.benchCompare(cmd.Context(), cfg, compare, compareTokenFile)
			}
			rep, err := runBench(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := a.emit(rep, func(w io.Writer) { printBenchReport(w, rep) }); err != nil {
				return err
			}
			return benchOutcome(rep, cfg)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Devices, "devices", 50, "simulated devices to register")
	f.IntVar(&cfg.Concurrency, "concurrency", 32, "requests in flight")
	f.IntVar(&cfg.Batch, "batch", 100, "readings per request (1: POST /v1/readings)")
	f.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the load phase")
	f.Float64Var(&cfg.Rate, "rate", 0, "readings per second (0: as fast as possible)")
	f.Float64Var(&cfg.CommitSample, "commit-sample", 0.02, "fraction of requests sent with ?wait=commit")
	f.IntVar(&cfg.Readings, "presign", 0, "readings to sign before the load (0: duration x rate, or x --presign-rate, +5%)")
	f.Float64Var(&cfg.PresignRate, "presign-rate", 15000, "rate assumed to size the pre-signed readings of an unpaced run")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", 2*time.Minute, "longest wait for the queue to drain after the load")
	f.DurationVar(&cfg.VerifyFor, "verify-for", 2*time.Second, "length of the ECDSA verify reference (negative: skip)")
	f.StringVar(&compare, "compare", "", "a second gateway's URL: run the same load against --gateway, then against it, and print both side by side")
	f.StringVar(&compareTokenFile, "compare-admin-token-file", "", "the second gateway's admin token file (default: the same token as --gateway)")
	mq.bind(f)
	return cmd
}

func printBenchReport(w io.Writer, r *loadgen.Report) {
	fmt.Fprintf(w, "gateway %s  devices %d  concurrency %d  batch %d  rate %s  commit-sample %.3f  GOMAXPROCS %d\n",
		r.Gateway, r.Devices, r.Concurrency, r.Batch, loadgen.RateText(r.Rate), r.CommitSample, r.GOMAXPROCS)
	fmt.Fprintf(w, "load      %.1fs (+%.1fs tail)  %d requests  %d readings sent  %d acked  %.0f acked/s\n",
		r.LoadSeconds, r.TailSeconds, r.Requests, r.ReadingsSent, r.ReadingsAcked, r.AckedPerSec)
	fmt.Fprintf(w, "committed %d  %.0f/s (load+drain)  %.0f/s during load  rejected %d  drained %v in %.1fs (queue %d at load end)\n",
		r.ReadingsCommitted, r.CommittedPerSec, r.CommittedDuringLoadPerSec, r.ReadingsRejected, r.Drained, r.DrainSeconds, r.QueueDepthAtLoadEnd)
	if r.GatewayCPUSeconds > 0 {
		fmt.Fprintf(w, "gateway   %.1f CPU-s, %.2f cores, %.0f µs CPU and %.2f ECDSA verifications per committed reading\n", r.GatewayCPUSeconds, r.GatewayCores, r.GatewayCPUPerReadingUs, r.ECDSAPerReading)
	}
	ack := "ack ms   "
	if r.MQTT != "" {
		fmt.Fprintf(w, "mqtt      %s: QoS 1, one connection per device\n", r.MQTT)
		ack = "puback ms"
	}
	fmt.Fprintf(w, "%s p50 %.1f  p95 %.1f  p99 %.1f  max %.1f\n", ack, r.P50AckMs, r.P95AckMs, r.P99AckMs, r.MaxAckMs)
	fmt.Fprintf(w, "commit ms p50 %.1f  p95 %.1f  p99 %.1f  (%d samples)\n", r.P50CommitMs, r.P95CommitMs, r.P99CommitMs, r.CommitSamples)
	if r.VerifyPerSec > 0 {
		fmt.Fprintf(w, "ecdsa     %.0f P-256 verifies/s on %d cores; committed/verify %.3f\n", r.VerifyPerSec, r.GOMAXPROCS, r.CommittedPerVerify)
	}
	if r.PresignExhausted {
		fmt.Fprintf(w, "note      the pre-signed readings ran out before --duration: raise --presign-rate\n")
	}
	for _, m := range []struct {
		name string
		v    map[string]int64
	}{{"pushback", r.Pushback}, {"errors", r.Errors}} {
		keys := make([]string, 0, len(m.v))
		for k := range m.v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%-9s %8d  %s\n", m.name, m.v[k], k)
		}
	}
}

// runBench runs one bench against cfg.Gateway.
func runBench(ctx context.Context, cfg loadgen.Config) (*loadgen.Report, error) {
	b, err := loadgen.New(ctx, cfg)
	if errors.Is(err, loadgen.ErrConfig) || errors.Is(err, loadgen.ErrNotLoopback) {
		return nil, usageError{err}
	}
	if err != nil {
		return nil, err
	}
	return b.Run(ctx)
}

// benchOutcome fails a run in which nothing was acknowledged or the queue
// did not drain.
func benchOutcome(rep *loadgen.Report, cfg loadgen.Config) error {
	switch {
	case rep.ReadingsAcked == 0:
		return fmt.Errorf("%s: no reading was acknowledged", rep.Gateway)
	case !rep.Drained:
		return fmt.Errorf("%s: the ingest queue did not drain within %s", rep.Gateway, cfg.DrainTimeout)
	}
	return nil
}

// Comparison is what bench --compare prints with --json: the same load
// against two gateways, one after the other.
type Comparison struct {
	A *loadgen.Report `json:"a"`
	B *loadgen.Report `json:"b"`
}

// benchCompare runs cfg against cfg.Gateway, then against other (one
// after the other, so they do not compete for the machine), and prints
// the two reports side by side.
func (a *app) benchCompare(ctx context.Context, cfg loadgen.Config, other, tokenFile string) error {
	first, err := runBench(ctx, cfg)
	if err != nil {
		return err
	}
	second := cfg
	second.Gateway = other
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("compare admin token: %w", err)
		}
		second.AdminToken = strings.TrimSpace(string(b))
	}
	rep, err := runBench(ctx, second)
	if err != nil {
		return err
	}
	c := Comparison{A: first, B: rep}
	if err := a.emit(c, func(w io.Writer) { printComparison(w, c) }); err != nil {
		return err
	}
	return errors.Join(benchOutcome(first, cfg), benchOutcome(rep, second))
}

// printComparison prints the figures of two runs side by side.
func printComparison(w io.Writer, c Comparison) {
	rows := []struct {
		name string
		f    func(r *loadgen.Report) string
	}{
		{"gateway", func(r *loadgen.Report) string { return r.Gateway }},
		{"acked/s", func(r *loadgen.Report) string { return fmt.Sprintf("%.0f", r.AckedPerSec) }},
		{"committed/s", func(r *loadgen.Report) string { return fmt.Sprintf("%.0f", r.CommittedPerSec) }},
		{"p50 / p99 ack ms", func(r *loadgen.Report) string { return fmt.Sprintf("%.1f / %.1f", r.P50AckMs, r.P99AckMs) }},
		{"p50 / p99 commit ms", func(r *loadgen.Report) string { return fmt.Sprintf("%.1f / %.1f", r.P50CommitMs, r.P99CommitMs) }},
		{"gateway µs CPU/reading", func(r *loadgen.Report) string { return fmt.Sprintf("%.0f", r.GatewayCPUPerReadingUs) }},
		{"ECDSA per reading", func(r *loadgen.Report) string { return fmt.Sprintf("%.2f", r.ECDSAPerReading) }},
		{"ECDSA reference/s", func(r *loadgen.Report) string { return fmt.Sprintf("%.0f", r.VerifyPerSec) }},
		{"committed/ECDSA ref", func(r *loadgen.Report) string { return fmt.Sprintf("%.3f", r.CommittedPerVerify) }},
		{"rejected", func(r *loadgen.Report) string { return fmt.Sprint(r.ReadingsRejected) }},
		{"drained", func(r *loadgen.Report) string { return fmt.Sprint(r.Drained) }},
	}
	fmt.Fprintf(w, "%-24s %-28s %-28s\n", "", "A", "B")
	for _, row := range rows {
		fmt.Fprintf(w, "%-24s %-28s %-28s\n", row.name, row.f(c.A), row.f(c.B))
	}
}
