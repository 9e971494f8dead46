package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/cli"
	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/loadgen"
	"github.com/medprov/medprov/mqtt/mqtttest"
	"github.com/medprov/medprov/wire"
)

// TestMQTTCommands runs "medprov bench --mqtt" and "medprov device
// simulate --mqtt" against the gateway binary's MQTT listener (embedded
// backends, no per-device limit). It logs the numbers; it asserts no
// speed.
func TestMQTTCommands(t *testing.T) {
	dir := t.TempDir()
	srv := mqtttest.ServerCert(t, dir)
	mqttAddr := mqtttest.FreeAddr(t)
	g := NewGateway(t, "--device-rate", "-1", "--mqtt-addr", mqttAddr, "--mqtt-tls-cert", srv.CertFile, "--mqtt-tls-key", srv.KeyFile)
	g.Addr = mqtttest.FreeAddr(t)
	g.Start(t)
	getenv := func(k string) string {
		if k == cli.EnvAdminToken {
			return g.AdminToken
		}
		return ""
	}
	run := func(t *testing.T, args ...string) []byte {
		t.Helper()
		var out, errb bytes.Buffer
		code := cli.Run(t.Context(), append([]string{"--gateway", g.URL(), "--json"}, args...), &out, &errb, getenv)
		t.Logf("%s progress:\n%s", args[0], errb.String())
		require.Equal(t, cli.ExitOK, code, "exit code of medprov %s", args[0])
		return out.Bytes()
	}

	t.Run("bench --mqtt reports readings/s and PUBACK latency, every acknowledged reading committed", func(t *testing.T) {
		out := run(t, "bench", "--mqtt", mqttAddr, "--mqtt-ca", srv.CertFile, "--duration", "5s", "--devices", "8",
			"--concurrency", "16", "--batch", "50", "--presign-rate", "6000", "--commit-sample", "0.05", "--verify-for", "500ms")
		var rep loadgen.Report
		require.NoError(t, json.Unmarshal(out, &rep))
		t.Logf("report: %s", out)
		assert.Equal(t, mqttAddr, rep.MQTT)
		require.NotZero(t, rep.ReadingsAcked, "readings acknowledged")
		assert.Equal(t, rep.ReadingsSent, rep.ReadingsAcked, "every reading sent was acknowledged")
		assert.Empty(t, rep.Errors, "errors")
		assert.True(t, rep.Drained, "the queue drained")
		assert.GreaterOrEqual(t, rep.ReadingsCommitted, rep.ReadingsAcked, "committed readings cover the acknowledged ones")
		assert.Positive(t, rep.P99AckMs, "p99 PUBACK ms")
		assert.NotZero(t, rep.CommitSamples, "commit samples")
		assert.Positive(t, rep.VerifyPerSec, "the ECDSA reference")
	})

	t.Run("device simulate --mqtt registers devices and publishes their readings", func(t *testing.T) {
		admin, err := client.New(g.URL(), client.WithAdminToken(g.AdminToken))
		require.NoError(t, err)
		opKey := testkit.MustKey(t)
		for _, a := range []struct{ id, role, pem string }{
			{"sim-op", wire.RoleOperator, testkit.PublicPEM(t, opKey)},
			{"sim-pat", wire.RolePatient, testkit.PublicPEM(t, testkit.MustKey(t))},
		} {
			_, err := admin.RegisterActor(t.Context(), wire.ActorInput{ID: a.id, Role: a.role, PublicKey: a.pem})
			require.NoError(t, err)
		}
		pem, err := envelope.MarshalPrivateKey(opKey)
		require.NoError(t, err)
		keyFile := filepath.Join(dir, "sim-op.pem")
		require.NoError(t, os.WriteFile(keyFile, pem, 0o600))
		out := run(t, "device", "simulate", "--register", "--operator", "sim-op", "--key", keyFile, "--patient", "sim-pat",
			"--devices", "3", "--rate", "30", "--duration", "2s", "--batch", "2", "--mqtt", mqttAddr, "--mqtt-ca", srv.CertFile)
		var st struct {
			Sent, Accepted, Failed int
		}
		require.NoError(t, json.Unmarshal(out, &st))
		t.Logf("simulate: %s", out)
		assert.Positive(t, st.Accepted, "readings accepted")
		assert.Equal(t, st.Sent, st.Accepted, "every reading sent was accepted")
		assert.Zero(t, st.Failed, "readings refused")
	})
}
