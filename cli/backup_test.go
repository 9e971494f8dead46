package cli

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
)

// TestBackupAndRestoreCommands takes a backup of a running node with
// "medprov backup", then restores it with "medprov restore" once the node
// is stopped, and opens the node again.
func TestBackupAndRestoreCommands(t *testing.T) {
	dir := t.TempDir()
	const token = "cli-backup-admin-token-0123"
	keyFile := filepath.Join(dir, "master.key")
	mk, err := seal.LoadOrCreateMasterKey(keyFile)
	require.NoError(t, err)
	dataDir := filepath.Join(dir, "node")
	open := func() (*node.Node, *httptest.Server) {
		n, err := node.Open(t.Context(), node.Config{DataDir: dataDir, MasterKey: mk, AdminToken: token,
			Limits: gateway.Limits{DeviceRate: -1, ActorRate: -1}})
		require.NoError(t, err)
		return n, httptest.NewServer(n.Handler())
	}
	n, srv := open()
	env := map[string]string{EnvGateway: srv.URL, EnvAdminToken: token}
	_, pub := keyPair(t, dir, "pat")
	code, _, stderr := run(t, env, "actor", "register", "--id", "pat", "--role", "patient", "--pubkey", pub)
	require.Equal(t, ExitOK, code, "register: %s", stderr)

	backup := filepath.Join(dir, "backup")
	t.Run("a backup is written, verified and private", func(t *testing.T) {
		code, out, stderr := run(t, env, "backup", "--out", backup)
		require.Equal(t, ExitOK, code, "stderr: %s", stderr)
		assert.Contains(t, out, "verified")
		assert.Contains(t, out, "medprov restore --from "+backup)
		assert.FileExists(t, filepath.Join(backup, node.ManifestFile))
		assertMode(t, 0o700, backup)
		assertMode(t, 0o600, filepath.Join(backup, node.ManifestFile))
	})
	t.Run("--json prints what was verified", func(t *testing.T) {
		code, out, stderr := run(t, env, "backup", "--out", filepath.Join(dir, "backup-json"), "--json")
		require.Equal(t, ExitOK, code, "stderr: %s", stderr)
		var chk node.BackupCheck
		require.NoError(t, json.Unmarshal([]byte(out), &chk), "output %s", out)
		require.NotNil(t, chk.Ledger)
		assert.Equal(t, chk.Manifest.Ledger.Height, chk.Ledger.Blocks)
		assert.True(t, chk.Ledger.Anchored)
		assert.NotNil(t, chk.Queue, "the queue was checked")
		assert.NotNil(t, chk.Blobs, "the blobs were checked")
	})
	t.Run("a wrong admin token is refused and leaves nothing", func(t *testing.T) {
		out := filepath.Join(dir, "backup-refused")
		code, _, stderr := run(t, map[string]string{EnvGateway: srv.URL, EnvAdminToken: "not-the-token-at-all"}, "backup", "--out", out)
		assert.Equal(t, ExitFailure, code)
		assert.Contains(t, stderr, "401")
		assert.NoDirExists(t, out)
	})
	t.Run("a non-empty --out is refused", func(t *testing.T) {
		code, _, stderr := run(t, env, "backup", "--out", backup)
		assert.Equal(t, ExitFailure, code)
		assert.Contains(t, stderr, "not empty")
	})
	t.Run("--verify-only checks the backup", func(t *testing.T) {
		code, out, stderr := run(t, nil, "restore", "--from", backup, "--verify-only")
		require.Equal(t, ExitOK, code, "stderr: %s", stderr)
		assert.Contains(t, out, "verified")
	})
	t.Run("a running node is not restored", func(t *testing.T) {
		code, _, stderr := run(t, nil, "restore", "--from", backup, "--data-dir", dataDir, "--master-key-file", keyFile)
		assert.Equal(t, ExitFailure, code)
		assert.Contains(t, stderr, "running")
	})

	srv.Close()
	require.NoError(t, n.Close())

	t.Run("restore needs the master key", func(t *testing.T) {
		code, _, stderr := run(t, nil, "restore", "--from", backup, "--data-dir", dataDir)
		assert.Equal(t, ExitFailure, code)
		assert.Contains(t, stderr, "master key")
	})
	t.Run("a stopped node is restored, keeping its queue", func(t *testing.T) {
		code, out, stderr := run(t, nil, "restore", "--from", backup, "--data-dir", dataDir, "--master-key-file", keyFile)
		require.Equal(t, ExitOK, code, "stderr: %s", stderr)
		assert.Contains(t, out, "(mode ledger)")
		assert.Regexp(t, `ledger +restored`, out)
		assert.Regexp(t, `queue +kept`, out)
		assert.Contains(t, out, "before-restore-")
	})
	t.Run("--all restores every store, as JSON", func(t *testing.T) {
		code, out, stderr := run(t, map[string]string{EnvMasterKey: hex.EncodeToString(mk)}, "restore", "--from", backup, "--data-dir", dataDir, "--all", "--json")
		require.Equal(t, ExitOK, code, "stderr: %s", stderr)
		var rep node.RestoreReport
		require.NoError(t, json.Unmarshal([]byte(out), &rep), "output %s", out)
		assert.Equal(t, node.RestoreAll, rep.Mode)
		for _, st := range rep.Steps {
			if st.Part != "events" {
				assert.Equal(t, "restored", st.Action, "%s", st.Part)
			}
		}
	})
	t.Run("the restored node opens and serves", func(t *testing.T) {
		n, srv := open()
		defer func() { srv.Close(); assert.NoError(t, n.Close()) }()
		_, err := n.Ingest.AwaitReconciled(t.Context())
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/readyz", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
	entries, err := os.ReadDir(dataDir)
	require.NoError(t, err)
	var aside int
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "before-restore-") {
			aside++
		}
	}
	assert.Equal(t, 2, aside, "each restore kept what it replaced")
}
