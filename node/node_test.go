package node_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/node"
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
			rec := httptest.NewRecorder()
			n.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			assert.Equal(t, http.StatusOK, rec.Code, "ledger and blob store must be ready: %s", rec.Body)
			require.NoError(t, n.Close())
		})
	}
}
