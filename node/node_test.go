package node_test

import (
	"crypto/ecdsa"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/wire"
)

const adminToken = "node-test-admin-token-0123456789"

func TestOpenRefusesBadConfig(t *testing.T) {
	key := testkit.RandomBytes(t, 32)
	tests := []struct {
		name string
		cfg  node.Config
	}{
		{"no data dir", node.Config{MasterKey: key, AdminToken: adminToken}},
		{"no master key", node.Config{DataDir: t.TempDir(), AdminToken: adminToken}},
		{"an unknown ledger", node.Config{DataDir: t.TempDir(), MasterKey: key, AdminToken: adminToken, Ledger: "postgres"}},
		{"an unknown blob store", node.Config{DataDir: t.TempDir(), MasterKey: key, AdminToken: adminToken, Blobs: "s3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is a configuration error", func(t *testing.T) {
			n, err := node.Open(t.Context(), tt.cfg)
			require.ErrorIs(t, err, node.ErrConfig)
			assert.Nil(t, n)
		})
	}
}

func TestEmbeddedNodeServesAndReopens(t *testing.T) {
	dir, key := t.TempDir(), testkit.RandomBytes(t, 32)
	for _, round := range []string{"first open", "reopen of the same data dir"} {
		t.Run(round, func(t *testing.T) {
			n, err := node.Open(t.Context(), node.Config{DataDir: dir, MasterKey: key, AdminToken: adminToken})
			require.NoError(t, err)
			_, err = n.Ingest.AwaitReconciled(t.Context())
			require.NoError(t, err)
			rec := httptest.NewRecorder()
			n.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			assert.Equal(t, http.StatusOK, rec.Code, "ledger and blob store must be ready: %s", rec.Body)
			assert.Contains(t, rec.Body.String(), `"reconcile":{"lost":0,"resubmitted":0,"status":"ok"}`)
			require.NoError(t, n.Close())
		})
	}
}

// TestEmbeddedNodeVerifiesEachReadingOnce checks the wiring that makes an
// embedded node cheap: the chaincode shares the gateway's verification
// memo, so each reading costs one ECDSA verification in the process, not
// two, while both still check it.
func TestEmbeddedNodeVerifiesEachReadingOnce(t *testing.T) {
	n, err := node.Open(t.Context(), node.Config{DataDir: t.TempDir(), MasterKey: testkit.RandomBytes(t, 32), AdminToken: adminToken,
		Limits: gateway.Limits{DeviceRate: -1, ActorRate: -1}})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Close()) })
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)

	ctx := t.Context()
	admin, err := client.New(srv.URL, client.WithAdminToken(adminToken))
	require.NoError(t, err)
	opKey, patKey, devKey := testkit.MustKey(t), testkit.MustKey(t), testkit.MustKey(t)
	for id, r := range map[string]struct {
		role string
		key  *ecdsa.PrivateKey
	}{"op-1": {wire.RoleOperator, opKey}, "pat-1": {wire.RolePatient, patKey}} {
		_, err := admin.RegisterActor(ctx, wire.ActorInput{ID: id, Role: r.role, PublicKey: testkit.PublicPEM(t, r.key)})
		require.NoError(t, err)
	}
	op, err := client.New(srv.URL, client.WithActor("op-1", opKey))
	require.NoError(t, err)
	_, err = op.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: "dev-1", PatientID: "pat-1", DeviceType: "hr-monitor", PublicKey: testkit.PublicPEM(t, devKey)})
	require.NoError(t, err)

	const readings = 20
	envs := make([]envelope.Envelope, readings)
	for i := range envs {
		p, err := client.NewReading("dev-1", uint64(i+1), "heart_rate", "bpm", 60+i, time.Now())
		require.NoError(t, err)
		envs[i], err = client.SignReading(devKey, p)
		require.NoError(t, err)
	}
	rc, err := admin.SubmitReadings(ctx, envs, client.WaitForCommit())
	require.NoError(t, err)
	require.Empty(t, rc.Failed())
	for _, r := range rc.Results {
		require.Equal(t, wire.StatusRecorded, r.Status)
	}

	m, err := admin.Metrics(ctx)
	require.NoError(t, err)
	assert.Equal(t, float64(readings), m["medprov_ecdsa_verifications_total"], "one ECDSA verification per reading")
	assert.GreaterOrEqual(t, m["medprov_ecdsa_memo_hits_total"], float64(readings), "the chaincode's check of each reading is answered by the memo")
}

// TestOpenMakesTheDataDirPrivate: every directory of the data dir ends up
// 0700 (so nothing in it is reachable by others), and a file left with a
// loose mode is tightened too.
func TestOpenMakesTheDataDirPrivate(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	loose := filepath.Join(dir, "left-over.txt")
	require.NoError(t, os.WriteFile(loose, []byte("x"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o777))

	n, err := node.Open(t.Context(), node.Config{DataDir: dir, MasterKey: testkit.RandomBytes(t, 32), AdminToken: adminToken})
	require.NoError(t, err)
	require.NoError(t, n.Close())

	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		if d.IsDir() || path == loose {
			assert.Zero(t, info.Mode().Perm()&0o077, "%s is %v, want no access for group or others", path, info.Mode().Perm())
		}
		return nil
	}))
}
