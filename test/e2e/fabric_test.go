package e2e

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/test/portal"
	"github.com/medprov/medprov/test/scenario"
)

// fabricGateway starts a Fabric network (2 peer orgs, Raft orderer, TLS,
// chaincode as a service) and a kubo daemon, and prepares a gateway on them.
func fabricGateway(t *testing.T) (*Gateway, *testnet.FabricNetwork) {
	t.Helper()
	n := testnet.StartFabricNetwork(t, testnet.FabricOptions{})
	require.FileExists(t, n.Profile, "the network's connection profile, which the gateway reads")
	k := testnet.StartKubo(t)
	g := NewGateway(t, "--ledger", "fabric", "--fabric-profile", n.Profile, "--blobs", "kubo", "--kubo-api", k.API)
	return g, n
}

// TestScenarioFabricKubo runs the same scenario suite as
// TestScenarioEmbedded against the gateway binary on a real Fabric network
// and a real kubo daemon, then the portal story in Chromium (as
// TestPortalEmbedded does), and checks with Fabric's own peer CLI that the
// chaincode itself enforces passkey signatures.
func TestScenarioFabricKubo(t *testing.T) {
	g, n := fabricGateway(t)
	g.Start(t)
	scenario.Run(t, scenario.Env{
		BaseURL:    g.URL(),
		AdminToken: g.AdminToken,
		Restart: func(t *testing.T) {
			g.Stop(t)
			g.Start(t)
		},
	})
	t.Run("portal story in Chromium", func(t *testing.T) {
		portal.Run(t, portal.Env{URL: portalURL(t, g), AdminToken: g.AdminToken, Prefix: "fab-"})
	})
	t.Run("chaincode enforces passkeys via peer CLI", func(t *testing.T) { checkChaincodeEnforcesPasskeys(t, n) })
	t.Run("offline audit bundles", func(t *testing.T) { auditStory(t, g.URL(), g.AdminToken, "fab-") })
	t.Run("FHIR R4", func(t *testing.T) { fhirStory(t, g.URL(), g.AdminToken, "fab-") })
	t.Run("devices over MQTT", func(t *testing.T) { mqttStory(t, g, "fab-", fabricRecorded(n)) })
}
