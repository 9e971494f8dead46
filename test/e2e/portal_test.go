package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/test/portal"
)

// portalURL is the gateway's address as the portal's people reach it:
// localhost, a secure context without TLS and the relying party's host.
// That name reaches the gateway only if it listens on the IPv4 loopback.
func portalURL(t testing.TB, g *Gateway) string {
	t.Helper()
	port, ok := strings.CutPrefix(g.Addr, "127.0.0.1:")
	require.True(t, ok, "the gateway listens on %s, not on 127.0.0.1: localhost would not reach it", g.Addr)
	return "http://localhost:" + port
}

// TestPortalEmbedded runs the portal story in Chromium against the gateway
// binary on the embedded default; the README's screenshots are what it saw.
func TestPortalEmbedded(t *testing.T) {
	g := NewGateway(t)
	g.Args = append(g.Args, "--public-url", portalURL(t, g))
	g.Start(t)
	portal.Run(t, portal.Env{
		URL:         portalURL(t, g),
		AdminToken:  g.AdminToken,
		Screenshots: filepath.Join(RepoRoot(t), "docs"),
	})
}
