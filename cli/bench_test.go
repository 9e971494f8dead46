package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/loadgen"
)

// TestBenchCommand runs "medprov bench" against an in-process embedded
// gateway (per-device limit 200/s) at a pace under that limit.
func TestBenchCommand(t *testing.T) {
	base, token, stop, err := startEmbeddedGateway(t.Context(), t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, stop(), "stopping the gateway") })
	env := map[string]string{EnvAdminToken: token}
	getenv := func(k string) string { return env[k] }

	t.Run("a remote gateway is refused as a usage error", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := Run(t.Context(), []string{"bench", "--gateway", "http://192.0.2.1:8080", "--duration", "1s"}, &out, &errb, getenv)
		assert.Equal(t, ExitUsage, code, "exit code; stderr %q", errb.String())
		assert.Contains(t, errb.String(), "loopback")
	})

	t.Run("a paced run reports every acknowledged reading committed, as JSON", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := Run(t.Context(), []string{"bench", "--gateway", base, "--json", "--duration", "2s", "--devices", "4",
			"--concurrency", "4", "--batch", "10", "--rate", "400", "--commit-sample", "0.2", "--verify-for", "200ms"}, &out, &errb, getenv)
		require.Equal(t, ExitOK, code, "exit code; stderr %s", errb.String())
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(out.Bytes(), &raw), "output is not one JSON object:\n%s", out.String())
		for _, k := range []string{"acked_per_sec", "committed_per_sec", "p99_ack_ms", "p99_commit_ms", "errors", "verify_per_sec", "committed_per_verify"} {
			assert.Contains(t, raw, k, "JSON lacks %q", k)
		}
		var rep loadgen.Report
		require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
		// Every acknowledged reading committed, none rejected.
		assert.NotZero(t, rep.ReadingsAcked, "readings acked")
		assert.GreaterOrEqual(t, rep.ReadingsCommitted, rep.ReadingsAcked, "readings committed, want every acknowledged one")
		assert.Zero(t, rep.ReadingsRejected, "readings rejected")
		assert.Empty(t, rep.Errors, "errors")
		assert.True(t, rep.Drained, "drained")
		// Everything measured.
		assert.NotZero(t, rep.CommitSamples, "commit samples")
		assert.Positive(t, rep.P99CommitMs, "p99 commit ms")
		assert.Positive(t, rep.VerifyPerSec, "verify/s")
		assert.Positive(t, rep.GatewayCPUSeconds, "gateway CPU s")
	})

	t.Run("compare runs the same load against two gateways and reports both", func(t *testing.T) {
		base2, token2, stop2, err := startEmbeddedGateway(t.Context(), t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, stop2(), "stopping the second gateway") })
		tokenFile := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(tokenFile, []byte(token2+"\n"), 0o600))
		var out, errb bytes.Buffer
		code := Run(t.Context(), []string{"bench", "--gateway", base, "--compare", base2, "--compare-admin-token-file", tokenFile,
			"--json", "--duration", "1s", "--devices", "2", "--concurrency", "2", "--batch", "10", "--rate", "200", "--verify-for", "100ms"}, &out, &errb, getenv)
		require.Equal(t, ExitOK, code, "exit code; stderr %s", errb.String())
		var c Comparison
		require.NoError(t, json.Unmarshal(out.Bytes(), &c), "output:\n%s", out.String())
		require.NotNil(t, c.A)
		require.NotNil(t, c.B)
		assert.Equal(t, base, c.A.Gateway)
		assert.Equal(t, base2, c.B.Gateway)
		for _, r := range []*loadgen.Report{c.A, c.B} {
			assert.NotZero(t, r.ReadingsAcked, "%s acked", r.Gateway)
			assert.True(t, r.Drained, "%s drained", r.Gateway)
		}

		t.Run("as text, side by side", func(t *testing.T) {
			var w bytes.Buffer
			printComparison(&w, c)
			assert.Contains(t, w.String(), base)
			assert.Contains(t, w.String(), base2)
			assert.Contains(t, w.String(), "committed/s")
		})
	})
}
