package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/audit"
	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

// medprovCLI runs the medprov binary with args and answers its output and
// whether it exited 0.
func medprovCLI(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), Binary(t), args...)
	cmd.Env = append(os.Environ(), "MEDPROV_GATEWAY=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "medprov %v: %s", args, out)
		return string(out), false
	}
	return string(out), true
}

// auditStory is the regulator's offline audit, through the medprov CLI
// against a running gateway: pin the trust root, export a patient's bundle,
// verify it with no gateway, save a checkpoint, verify a later bundle
// against it, and see a tampered bundle fail.
func auditStory(t *testing.T, gatewayURL, adminToken, prefix string) {
	dir := t.TempDir()
	ctx := t.Context()
	admin, err := client.New(gatewayURL, client.WithAdminToken(adminToken))
	require.NoError(t, err)
	keys := map[string]string{}
	actor := func(id, role string) *client.Client {
		k := testkit.MustKey(t)
		_, err := admin.RegisterActor(ctx, wire.ActorInput{ID: id, Role: role, PublicKey: testkit.PublicPEM(t, k)})
		require.NoError(t, err)
		der, err := envelope.MarshalPrivateKey(k)
		require.NoError(t, err)
		keys[id] = filepath.Join(dir, id+".key")
		require.NoError(t, os.WriteFile(keys[id], der, 0o600))
		pub, err := envelope.MarshalPublicKey(&k.PublicKey)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, id+".pub"), pub, 0o600))
		c, err := client.New(gatewayURL, client.WithActor(id, k))
		require.NoError(t, err)
		return c
	}
	patientID, regID := prefix+"audit-pat", prefix+"audit-reg"
	patient := actor(patientID, wire.RolePatient)
	researcher := actor(prefix+"audit-res", wire.RoleResearcher)
	operator := actor(prefix+"audit-op", wire.RoleOperator)
	actor(regID, wire.RoleRegulator)
	devKey := testkit.MustKey(t)
	deviceID := prefix + "audit-dev"
	_, err = operator.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: deviceID, PatientID: patientID, DeviceType: "monitor", PublicKey: testkit.PublicPEM(t, devKey)})
	require.NoError(t, err)
	dev, err := client.New(gatewayURL)
	require.NoError(t, err)
	seq := uint64(0)
	send := func(n int) {
		envs := make([]envelope.Envelope, 0, n)
		for range n {
			seq++
			r, err := client.NewReading(deviceID, seq, "heart_rate", "bpm", 60, time.Now())
			require.NoError(t, err)
			e, err := client.SignReading(devKey, r)
			require.NoError(t, err)
			envs = append(envs, e)
		}
		_, err := dev.SubmitReadings(ctx, envs, client.WaitForCommit())
		require.NoError(t, err)
	}
	send(3)
	_, err = patient.GrantConsent(ctx, client.ConsentGrant{GranteeID: prefix + "audit-res", Purpose: "study", DataTypes: []string{"heart_rate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	_, err = researcher.RequestAccess(ctx, client.AccessRequest{PatientID: patientID, Purpose: "study", DataTypes: []string{"heart_rate"},
		From: time.Now().Add(-time.Hour), To: time.Now()})
	require.NoError(t, err)

	gw := func(args ...string) []string {
		return append([]string{"--gateway", gatewayURL}, args...)
	}
	trust, bundle := filepath.Join(dir, "trust.json"), filepath.Join(dir, "bundle.tar")
	out, ok := medprovCLI(t, gw("audit", "trust", "--actor", regID, "--key", keys[regID], "--out", trust)...)
	require.True(t, ok, out)
	out, ok = medprovCLI(t, gw("audit", "export", "--actor", regID, "--key", keys[regID], "--patient", patientID, "--ciphertexts", "--out", bundle)...)
	require.True(t, ok, out)
	t.Log(strings.TrimSpace(out))

	t.Run("the bundle verifies offline against the pinned trust root", func(t *testing.T) {
		out, ok := medprovCLI(t, "--gateway", "http://127.0.0.1:1", "--json", "audit", "verify", bundle, "--trust", trust)
		require.True(t, ok, out)
		var rep audit.Report
		require.NoError(t, json.Unmarshal([]byte(out), &rep))
		assert.True(t, rep.OK)
		counts := rep.Count()
		for _, name := range []string{"chain.genesis", "chain.tip_signed", "block.orderer_signatures", "tx.creator_signature",
			"tx.endorsement_policy", "reading.device_signature", "action.signature", "access.decision", "ciphertext.hash", "ciphertext.cid"} {
			assert.Positive(t, counts[name][0], name)
			assert.Zero(t, counts[name][1], name)
		}
		assert.Equal(t, 3, counts["reading.device_signature"][0])
	})

	cp := filepath.Join(dir, "checkpoint.json")
	out, ok = medprovCLI(t, "audit", "checkpoint", bundle, "--trust", trust, "--actor", regID, "--key", keys[regID], "--out", cp)
	require.True(t, ok, out)

	t.Run("a later bundle must extend the checkpoint", func(t *testing.T) {
		send(2)
		later := filepath.Join(dir, "later.tar")
		out, ok := medprovCLI(t, gw("audit", "export", "--actor", regID, "--key", keys[regID], "--patient", patientID, "--out", later)...)
		require.True(t, ok, out)
		out, ok = medprovCLI(t, "audit", "verify", later, "--trust", trust, "--checkpoint", cp, "--checkpoint-key", filepath.Join(dir, regID+".pub"))
		require.True(t, ok, out)
		assert.Contains(t, out, "checkpoint.extends")
	})

	t.Run("a tampered bundle fails and says where", func(t *testing.T) {
		f, err := os.Open(bundle)
		require.NoError(t, err)
		b, err := audit.Read(f)
		require.NoError(t, f.Close())
		require.NoError(t, err)
		var n uint64
		for k := range b.Blocks {
			if k != b.Manifest.Tip && k > n {
				n = k
			}
		}
		raw := slices.Clone(b.Blocks[n])
		raw[len(raw)-40] ^= 0x01
		b.Blocks[n] = raw
		bad := filepath.Join(dir, "tampered.tar")
		g, err := os.Create(bad)
		require.NoError(t, err)
		require.NoError(t, audit.Write(g, b))
		require.NoError(t, g.Close())
		out, ok := medprovCLI(t, "audit", "verify", bad, "--trust", trust)
		assert.False(t, ok, "a tampered bundle must not verify")
		assert.Contains(t, out, "FAIL")
	})
}

// TestAuditEmbedded runs the offline audit story against the gateway
// binary on the embedded default.
func TestAuditEmbedded(t *testing.T) {
	g := NewGateway(t)
	g.Start(t)
	auditStory(t, g.URL(), g.AdminToken, "")
}
