package embedded_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/ipfs/embedded"
	"github.com/medprov/medprov/ipfs/ipfstest"
)

func TestBackupMergeVerify(t *testing.T) {
	ctx := t.Context()
	src := ipfstest.EmbeddedStore(t, "")
	payloads := [][]byte{[]byte("small"), testkit.RandomBytes(t, 1<<20)}
	cids, err := src.PutMany(ctx, payloads)
	require.NoError(t, err)
	backup := filepath.Join(t.TempDir(), "blobs")
	require.NoError(t, src.Backup(ctx, backup))

	t.Run("the copy verifies and serves every payload", func(t *testing.T) {
		st, err := embedded.VerifyDir(ctx, backup)
		require.NoError(t, err)
		assert.Equal(t, len(cids), st.Pins)
		assert.GreaterOrEqual(t, st.Blocks, len(cids))
		copied := ipfstest.EmbeddedStore(t, testkit.CopyDir(t, backup))
		for i, c := range cids {
			got, err := copied.Get(ctx, c)
			require.NoError(t, err)
			assert.Equal(t, payloads[i], got)
		}
	})
	t.Run("merging adds only what a store lacks", func(t *testing.T) {
		dst := ipfstest.EmbeddedStore(t, "")
		own, err := dst.Put(ctx, []byte("only in the destination"))
		require.NoError(t, err)
		st, err := dst.Merge(ctx, backup)
		require.NoError(t, err)
		assert.Equal(t, len(cids), st.Pins)
		for _, c := range append(cids, own) {
			ok, err := dst.Has(ctx, c)
			require.NoError(t, err)
			assert.True(t, ok, "%s after the merge", c)
		}
		again, err := dst.Merge(ctx, backup)
		require.NoError(t, err)
		assert.Zero(t, again, "a second merge adds nothing")
	})
	t.Run("a block altered in the copy fails verification", func(t *testing.T) {
		dir := testkit.CopyDir(t, backup)
		flipByte(t, filepath.Join(dir, "blocks"), cids[0])
		_, err := embedded.VerifyDir(ctx, dir)
		require.ErrorIs(t, err, ipfs.ErrCorrupt)
	})
	t.Run("a directory that is not empty is refused", func(t *testing.T) {
		require.ErrorContains(t, src.Backup(ctx, backup), "not empty")
	})
	t.Run("a closed store is not copied", func(t *testing.T) {
		s, err := embedded.New(ctx, embedded.Config{Dir: t.TempDir()})
		require.NoError(t, err)
		require.NoError(t, s.Close())
		require.ErrorIs(t, s.Backup(ctx, t.TempDir()), ipfs.ErrUnavailable)
	})
}
