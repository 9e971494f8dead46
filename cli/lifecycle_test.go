package cli

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// TestLifecycleCommandsOnAGateway drives actor rotate, actor revoke and
// patient erase through the HTTP API of a real node on the embedded
// backends.
func TestLifecycleCommandsOnAGateway(t *testing.T) {
	dir := t.TempDir()
	const token = "cli-lifecycle-admin-token"
	mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	require.NoError(t, err)
	n, err := node.Open(t.Context(), node.Config{DataDir: filepath.Join(dir, "node"), MasterKey: mk, AdminToken: token,
		Limits: gateway.Limits{DeviceRate: -1, ActorRate: -1}})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Close()) })
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	env := map[string]string{EnvGateway: srv.URL, EnvAdminToken: token}

	keys := map[string][2]string{}
	for _, a := range []struct{ id, role string }{{"pat", "patient"}, {"res", "researcher"}, {"reg", "regulator"}, {"op", "operator"}} {
		priv, pub := keyPair(t, dir, a.id)
		keys[a.id] = [2]string{priv, pub}
		code, _, stderr := run(t, env, "actor", "register", "--id", a.id, "--role", a.role, "--pubkey", pub)
		require.Equal(t, ExitOK, code, "register %s: %s", a.id, stderr)
	}
	newPriv, newPub := keyPair(t, dir, "pat-next")

	steps := []struct {
		name    string
		env     map[string]string
		args    []string
		code    int
		out     string // in stdout when the command succeeds
		stderr  string // in stderr when it fails
		receipt func(t *testing.T, out string)
	}{
		{"a patient rotates its key with the current one", env,
			[]string{"actor", "rotate", "--id", "pat", "--key", keys["pat"][0], "--new-pubkey", newPub}, ExitOK, "key rotated", "", nil},
		{"the old key is refused afterwards", env,
			[]string{"patient", "erase", "--patient", "pat", "--key", keys["pat"][0], "--reason", "gdpr-request"}, ExitFailure, "", "401 unauthenticated", nil},
		{"the patient erases its data with the new key", env,
			[]string{"patient", "erase", "--patient", "pat", "--key", newPriv, "--reason", "gdpr-request"}, ExitOK, "keys crypto-shredded", "", nil},
		{"erasing twice fails with a conflict", env,
			[]string{"patient", "erase", "--patient", "pat", "--key", newPriv, "--reason", "gdpr-request"}, ExitFailure, "", "409 conflict", nil},
		{"a regulator revokes a researcher", env,
			[]string{"actor", "revoke", "--id", "res", "--reason", "left-study", "--signer", "reg", "--key", keys["reg"][0]}, ExitOK, "revoked by reg", "", nil},
		{"the revoked researcher cannot revoke itself again", env,
			[]string{"actor", "revoke", "--id", "res", "--reason", "key-lost", "--signer", "res", "--key", keys["res"][0]}, ExitFailure, "", "403 forbidden", nil},
		{"the org admin revokes an operator, as JSON", env,
			[]string{"actor", "revoke", "--id", "op", "--reason", "offboarded", "--json"}, ExitOK, "", "", func(t *testing.T, out string) {
				var r wire.ActorReceipt
				require.NoError(t, json.Unmarshal([]byte(out), &r), "JSON output %s", out)
				assert.Equal(t, wire.StatusRevoked, r.Actor.Status)
				assert.Equal(t, "org:HospitalMSP", r.Actor.RevokedBy)
			}},
		{"a free-text reason is refused", env,
			[]string{"actor", "revoke", "--id", "reg", "--reason", "Bad Apple", "--signer", "reg", "--key", keys["reg"][0]}, ExitFailure, "", "400 invalid", nil},
		{"a revocation without signer or admin token is a usage error", map[string]string{EnvGateway: srv.URL},
			[]string{"actor", "revoke", "--id", "reg", "--reason", "x"}, ExitUsage, "", EnvAdminToken, nil},
		{"a signer without a key is a usage error", env,
			[]string{"actor", "revoke", "--id", "reg", "--reason", "x", "--signer", "reg"}, ExitUsage, "", "--key", nil},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := run(t, tt.env, tt.args...)
			require.Equal(t, tt.code, code, "exit code; stdout %s; stderr %s", out, stderr)
			if tt.out != "" {
				assert.Contains(t, out, tt.out)
			}
			if tt.stderr != "" {
				assert.Contains(t, stderr, tt.stderr)
			}
			if tt.receipt != nil {
				tt.receipt(t, out)
			}
		})
	}

	t.Run("the erased patient's keys are gone from the keyring", func(t *testing.T) {
		_, err := n.Keyring.Seal(t.Context(), "pat", "dev:1", []byte("{}"))
		assert.ErrorIs(t, err, seal.ErrErased)
	})
	_, err = os.Stat(newPriv)
	require.NoError(t, err, "the new key file is untouched")
}
