package e2e

import (
	"testing"

	"github.com/medprov/medprov/test/scenario"
)

// TestScenarioEmbedded runs the whole scenario suite against the gateway
// binary on the embedded default (embedded ledger, embedded blob store).
func TestScenarioEmbedded(t *testing.T) {
	g := NewGateway(t)
	g.Start(t)
	scenario.Run(t, scenario.Env{
		BaseURL:    g.URL(),
		AdminToken: g.AdminToken,
		Restart: func(t *testing.T) {
			g.Stop(t)
			g.Start(t)
		},
	})
}
