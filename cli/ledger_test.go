package cli

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger/embedded"
)

// demoLedger runs the demo on an embedded node in a fresh data directory
// and returns it: a stopped node whose ledger holds real actors, readings,
// and a consent granted and revoked.
func demoLedger(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	code, out, stderr := run(t, nil, "demo", "--data-dir", dir)
	require.Equal(t, ExitOK, code, "demo exit code\nstderr: %s\nstdout:\n%s", stderr, out)
	return dir
}

func TestLedgerVerify(t *testing.T) {
	demo := demoLedger(t)

	t.Run("an untouched ledger is ok", func(t *testing.T) {
		code, out, stderr := run(t, nil, "ledger", "verify", "--data-dir", demo)
		require.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
		assert.Regexp(t, `^ok: \d+ blocks, \d+ keys \(\d+ transactions, \d+ history entries; chain anchor matched\)\n$`, out)
	})
	t.Run("the ledger directory itself is accepted", func(t *testing.T) {
		code, out, stderr := run(t, nil, "ledger", "verify", "--data-dir", filepath.Join(demo, "ledger"))
		require.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
		assert.True(t, strings.HasPrefix(out, "ok: "), "output %q", out)
	})
	t.Run("--json reports the counts", func(t *testing.T) {
		code, out, stderr := run(t, nil, "ledger", "verify", "--data-dir", demo, "--json")
		require.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
		var got ledgerVerification
		require.NoError(t, json.Unmarshal([]byte(out), &got), "output %s", out)
		assert.True(t, got.OK, "ok")
		require.NotNil(t, got.Report, "report")
		assert.Greater(t, got.Report.Blocks, uint64(5), "blocks")
		assert.Greater(t, got.Report.Keys, uint64(20), "keys")
		assert.True(t, got.Report.Anchored, "anchored")
	})

	tests := []struct {
		name       string
		tamper     func(t *testing.T, dir string)
		objectType string // "" for a fault located by block only
		want       string
	}{
		{
			name: "a researcher made regulator is reported with the key's type",
			tamper: func(t *testing.T, dir string) {
				testkit.EditLedgerState(t, filepath.Join(dir, "ledger", embedded.StoreDir), "actor", `"role":"researcher"`, `"role":"regulator"`)
			},
			objectType: "actor", want: "actor key",
		},
		{
			name: "a revoked consent set back to active is reported with the key's type",
			tamper: func(t *testing.T, dir string) {
				testkit.EditLedgerState(t, filepath.Join(dir, "ledger", embedded.StoreDir), "consent", `"status":"revoked"`, `"status":"active"`)
			},
			objectType: "consent", want: "consent key",
		},
		{
			name: "a flipped byte in the journal is reported",
			tamper: func(t *testing.T, dir string) {
				testkit.FlipJournalByte(t, filepath.Join(dir, "ledger", embedded.StoreDir))
			},
			want: "ledger store corrupt",
		},
		{
			name: "a removed store is reported",
			tamper: func(t *testing.T, dir string) {
				require.NoError(t, os.RemoveAll(filepath.Join(dir, "ledger", embedded.StoreDir)))
			},
			want: "lost",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testkit.CopyDir(t, demo)
			tt.tamper(t, dir)

			code, out, stderr := run(t, nil, "ledger", "verify", "--data-dir", dir)
			assert.Equal(t, ExitFailure, code, "exit code; stdout %s", out)
			assert.True(t, strings.HasPrefix(out, "FAILED: "), "output %q", out)
			assert.Contains(t, out, tt.want)
			assert.Contains(t, stderr, "failed verification")

			code, out, _ = run(t, nil, "ledger", "verify", "--data-dir", dir, "--json")
			assert.Equal(t, ExitFailure, code, "exit code with --json")
			var got ledgerVerification
			require.NoError(t, json.Unmarshal([]byte(out), &got), "output %s", out)
			assert.False(t, got.OK, "ok")
			assert.Nil(t, got.Report, "a report of a ledger that failed")
			assert.Equal(t, tt.objectType, got.ObjectType, "object type")
			if tt.objectType != "" {
				assert.NotNil(t, got.Block, "block")
			}
		})
	}

	t.Run("a directory without a ledger fails", func(t *testing.T) {
		code, out, stderr := run(t, nil, "ledger", "verify", "--data-dir", t.TempDir())
		assert.Equal(t, ExitFailure, code, "exit code")
		assert.Empty(t, out, "output")
		assert.Contains(t, stderr, "no embedded ledger")
	})
	t.Run("a ledger in use by a running node is not verified", func(t *testing.T) {
		dir := testkit.CopyDir(t, demo)
		cc, err := chaincode.NewChaincode()
		require.NoError(t, err)
		l, err := embedded.New(t.Context(), embedded.Config{Dir: filepath.Join(dir, "ledger"), Chaincode: cc, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err, "open the ledger")
		defer func() { assert.NoError(t, l.Close(), "Close") }()
		code, out, _ := run(t, nil, "ledger", "verify", "--data-dir", dir)
		assert.Equal(t, ExitFailure, code, "exit code")
		assert.NotContains(t, out, "ok:")
		assert.Contains(t, out, "another process")
	})
}
