package kubo_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/ipfs/ipfstest"
)

// TestPutManySurvivesGarbageCollection checks that content stored by
// PutMany is pinned (through its batch node): a full `ipfs repo gc` must not
// remove any of it, and every payload reads back intact.
func TestPutManySurvivesGarbageCollection(t *testing.T) {
	d := testnet.StartKubo(t)
	s := ipfstest.KuboStore(t, d.API, 30*time.Second)
	ctx := t.Context()
	data := [][]byte{testkit.RandomBytes(t, 100), testkit.RandomBytes(t, 300<<10), testkit.RandomBytes(t, 5000)}
	cids, err := s.PutMany(ctx, data)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.API+"/api/v0/repo/gc", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "repo gc: %s", resp.Status)
	for i, c := range cids {
		got, err := s.Get(ctx, c)
		require.NoError(t, err, "payload %d (%s) after gc", i, c)
		assert.True(t, bytes.Equal(got, data[i]), "payload %d changed after gc", i)
	}
}
