package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/medprov/medprov/test/portal"
)

// portalURL is the gateway's address as the portal's people reach it:
// localhost, a secure context without TLS and the relying party's host.
func portalURL(g *Gateway) string {
	return "http://localhost:" + g.Addr[strings.LastIndexByte(g.Addr, ':')+1:]
}

// TestPortalEmbedded runs the portal story in Chromium against the gateway
// binary on the embedded default; the README's screenshots are what it saw.
func TestPortalEmbedded(t *testing.T) {
	g := NewGateway(t)
	g.Args = append(g.Args, "--public-url", portalURL(g))
	g.Start(t)
	portal.Run(t, portal.Env{
		URL:         portalURL(g),
		AdminToken:  g.AdminToken,
		Screenshots: filepath.Join(RepoRoot(t), "docs"),
	})
}
