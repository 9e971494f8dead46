package embedded_test

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/ledger/ledgertest"
)

// TestConformance runs the ledger.Transactor suite on a fresh embedded
// ledger per clause, running the medprov chaincode on the local clock.
func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Transactor {
		cc, err := chaincode.NewChaincode()
		require.NoError(t, err, "NewChaincode")
		l, err := embedded.New(t.Context(), embedded.Config{Dir: t.TempDir(), Chaincode: cc, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err, "embedded.New")
		return l
	})
}
