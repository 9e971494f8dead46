package cli

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// TestRelyingPartyAndInviteCommandsOnAGateway sets the relying party and
// invites people through the HTTP API of a real node.
func TestRelyingPartyAndInviteCommandsOnAGateway(t *testing.T) {
	dir := t.TempDir()
	const token = "cli-invite-admin-token-0123"
	mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	require.NoError(t, err)
	n, err := node.Open(t.Context(), node.Config{DataDir: filepath.Join(dir, "node"), MasterKey: mk, AdminToken: token,
		Limits: gateway.Limits{DeviceRate: -1, ActorRate: -1}, PublicURL: "https://portal.hospital.example"})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Close()) })
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	env := map[string]string{EnvGateway: srv.URL, EnvAdminToken: token}
	link := regexp.MustCompile(`https://portal\.hospital\.example/enrol/[A-Za-z0-9_-]{43}\n`)

	steps := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		out    *regexp.Regexp // matches stdout when the command succeeds
		stderr string         // in stderr when it fails
	}{
		{"an invitation before the relying party is set is forbidden", env,
			[]string{"actor", "invite", "--id", "pat-1", "--role", "patient"}, ExitFailure, nil, "403 forbidden"},
		{"the org admin sets the relying party", env,
			[]string{"rp", "set", "--rp-id", "portal.hospital.example", "--origin", "https://portal.hospital.example", "--origin", "https://portal.hospital.example:8443"},
			ExitOK, regexp.MustCompile(`relying party of HospitalMSP: rpId portal\.hospital\.example  origins https://portal\.hospital\.example https://portal\.hospital\.example:8443`), ""},
		{"an origin outside the rpId is refused", env,
			[]string{"rp", "set", "--rp-id", "portal.hospital.example", "--origin", "https://evil.example"}, ExitFailure, nil, "400 invalid"},
		{"the org admin invites a patient and gets the link", env,
			[]string{"actor", "invite", "--id", "pat-1", "--role", "patient", "--ttl", "24h"}, ExitOK, link, ""},
		{"an invitation without the admin token is a usage error", map[string]string{EnvGateway: srv.URL},
			[]string{"actor", "invite", "--id", "pat-2", "--role", "patient"}, ExitUsage, nil, EnvAdminToken},
		{"an invitation valid for a year is a usage error", env,
			[]string{"actor", "invite", "--id", "pat-2", "--role", "patient", "--ttl", "8760h"}, ExitUsage, nil, "--ttl"},
		{"a relying party without an origin is a usage error", env,
			[]string{"rp", "set", "--rp-id", "localhost"}, ExitUsage, nil, "origin"},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := run(t, tt.env, tt.args...)
			require.Equal(t, tt.code, code, "exit code; stderr %s", stderr)
			if tt.out != nil {
				assert.Regexp(t, tt.out, out)
			}
			if tt.stderr != "" {
				assert.Contains(t, stderr, tt.stderr)
			}
		})
	}
	t.Run("an invitation as JSON carries its token, path and expiry", func(t *testing.T) {
		code, out, stderr := run(t, env, "actor", "invite", "--id", "reg-1", "--role", "regulator", "--json")
		require.Equal(t, ExitOK, code, "stderr %s", stderr)
		var inv wire.Invite
		require.NoError(t, json.Unmarshal([]byte(out), &inv), "JSON output %s", out)
		assert.Equal(t, "reg-1", inv.ActorID)
		assert.Equal(t, wire.EnrolPathPrefix+inv.Token, inv.Path)
		assert.Equal(t, "https://portal.hospital.example"+inv.Path, inv.URL)
		assert.NotEmpty(t, inv.ExpiresAt)
	})
}

func TestServePublicURL(t *testing.T) {
	t.Run("the flag reaches the node without a trailing slash", func(t *testing.T) {
		a := &app{getenv: func(string) string { return "" }}
		o := &serveOptions{}
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o.bind(fs)
		require.NoError(t, fs.Parse([]string{"--data-dir", t.TempDir(), "--public-url", "https://portal.hospital.example/"}))
		cfg, err := a.nodeConfig(o, "serve-test-admin-token-0123", nil)
		require.NoError(t, err)
		assert.Equal(t, "https://portal.hospital.example", cfg.PublicURL)
	})
	refused := []string{"portal.hospital.example", "ftp://portal.hospital.example", "https://", "https://portal.hospital.example/?a=1", "https://u:p@portal.hospital.example"}
	for _, v := range refused {
		t.Run(v+" is a usage error", func(t *testing.T) {
			_, err := checkPublicURL(v)
			var ue usageError
			require.ErrorAs(t, err, &ue)
		})
	}
	t.Run("the default is localhost on the port listened on", func(t *testing.T) {
		got := defaultPublicURL("http", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080})
		assert.Equal(t, "http://localhost:8080", got)
		assert.True(t, strings.HasPrefix(defaultPublicURL("https", &net.TCPAddr{IP: net.IPv6loopback, Port: 443}), "https://localhost:"))
	})
}
