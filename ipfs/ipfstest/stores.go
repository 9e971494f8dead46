package ipfstest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/ipfs/embedded"
	"github.com/medprov/medprov/ipfs/kubo"
)

// EmbeddedStore opens an ipfs/embedded store in dir, or in a new temporary
// directory when dir is "", and closes it when the test ends.
func EmbeddedStore(tb testing.TB, dir string) *embedded.Store {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	s, err := embedded.New(tb.Context(), embedded.Config{Dir: dir})
	require.NoError(tb, err, "embedded.New")
	tb.Cleanup(func() { assert.NoError(tb, s.Close(), "closing the embedded store") })
	return s
}

// KuboStore connects an ipfs/kubo store to the daemon at api (see
// internal/testnet.StartKubo), each request bounded by timeout (zero: the
// store's default), and closes it when the test ends.
func KuboStore(tb testing.TB, api string, timeout time.Duration) *kubo.Store {
	tb.Helper()
	s, err := kubo.New(tb.Context(), kubo.Config{API: api, Timeout: timeout})
	require.NoError(tb, err, "kubo.New")
	tb.Cleanup(func() { assert.NoError(tb, s.Close(), "closing the kubo store") })
	return s
}
