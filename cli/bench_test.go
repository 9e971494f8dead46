package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/medprov/medprov/loadgen"
)

// TestBenchCommand runs "medprov bench" against an in-process embedded
// gateway (per-device limit 200/s) at a pace under that limit.
func TestBenchCommand(t *testing.T) {
	base, token, stop, err := startEmbeddedGateway(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	env := map[string]string{EnvAdminToken: token}
	getenv := func(k string) string { return env[k] }

	t.Run("a remote gateway is refused as a usage error", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := Run(t.Context(), []string{"bench", "--gateway", "http://192.0.2.1:8080", "--duration", "1s"}, &out, &errb, getenv)
		if code != ExitUsage || !strings.Contains(errb.String(), "loopback") {
			t.Errorf("exit %d, stderr %q; want %d naming loopback", code, errb.String(), ExitUsage)
		}
	})

	t.Run("a paced run reports every acknowledged reading committed, as JSON", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := Run(t.Context(), []string{"bench", "--gateway", base, "--json", "--duration", "2s", "--devices", "4",
			"--concurrency", "4", "--batch", "10", "--rate", "400", "--commit-sample", "0.2", "--verify-for", "200ms"}, &out, &errb, getenv)
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
			t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
		}
		for _, k := range []string{"acked_per_sec", "committed_per_sec", "p99_ack_ms", "p99_commit_ms", "errors", "verify_per_sec", "committed_per_verify"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("JSON lacks %q", k)
			}
		}
		var rep loadgen.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.ReadingsAcked == 0 || rep.ReadingsCommitted < rep.ReadingsAcked || rep.ReadingsRejected != 0 {
			t.Errorf("acked %d, committed %d, rejected %d: want every acknowledged reading committed", rep.ReadingsAcked, rep.ReadingsCommitted, rep.ReadingsRejected)
		}
		if len(rep.Errors) != 0 || !rep.Drained {
			t.Errorf("errors %v, drained %v", rep.Errors, rep.Drained)
		}
		if rep.CommitSamples == 0 || rep.P99CommitMs <= 0 || rep.VerifyPerSec <= 0 || rep.GatewayCPUSeconds <= 0 {
			t.Errorf("commit samples %d, p99 commit %vms, verify/s %v, gateway CPU %vs: want all measured", rep.CommitSamples, rep.P99CommitMs, rep.VerifyPerSec, rep.GatewayCPUSeconds)
		}
	})
}
