package embedded_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
)

func TestBackup(t *testing.T) {
	t.Run("a copy taken while blocks commit verifies at the height it names", func(t *testing.T) {
		l := newLedger(t)
		for i := range 20 {
			submit(t, l, "Put", fmt.Sprintf("k%02d", i), "v")
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := l.Submit(t.Context(), ledger.Proposal{Function: "Put", Args: []string{fmt.Sprintf("load%04d", i), "v"}})
				assert.NoError(t, err)
			}
		}()
		dir := filepath.Join(t.TempDir(), "copy")
		info, err := l.Backup(t.Context(), dir)
		close(stop)
		wg.Wait()
		require.NoError(t, err)
		assert.GreaterOrEqual(t, info.Height, uint64(21), "the copy holds the blocks committed before it began")
		assert.Equal(t, "leveldb/3", info.Format)

		rep, err := embedded.VerifyDir(t.Context(), dir)
		require.NoError(t, err, "the copy verifies in full")
		assert.True(t, rep.Anchored, "the copy has its own chain anchor")
		assert.Equal(t, info.Height, rep.Blocks)
		assert.Equal(t, hex.EncodeToString(info.Tip), rep.Tip)

		c := openLedger(t, dir, nil)
		closeAtEnd(t, c)
		assert.Equal(t, info.Height, c.Height(), "New opens the copy at its height")
		assert.Equal(t, "v", evaluate(t, c, "Get", "k19"))
		submit(t, c, "Put", "after", "v")
		assert.Equal(t, l.Identity(true).CertPEM, c.Identity(true).CertPEM, "the copy has the ledger's MSP")
	})
	t.Run("a directory that is not empty is refused", func(t *testing.T) {
		l := newLedger(t)
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "x"), nil, 0o600))
		_, err := l.Backup(t.Context(), dir)
		require.ErrorContains(t, err, "not empty")
	})
	t.Run("a closed ledger is not copied", func(t *testing.T) {
		l := openLedger(t, t.TempDir(), nil)
		require.NoError(t, l.Close())
		_, err := l.Backup(t.Context(), t.TempDir())
		require.ErrorIs(t, err, ledger.ErrUnavailable)
	})
	t.Run("files of the copy are private", func(t *testing.T) {
		l := newLedger(t)
		submit(t, l, "Put", "k", "v")
		dir := filepath.Join(t.TempDir(), "copy")
		_, err := l.Backup(t.Context(), dir)
		require.NoError(t, err)
		require.NoError(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			require.NoError(t, err)
			assert.Zero(t, info.Mode().Perm()&0o077, "%s is %v", p, info.Mode().Perm())
			return nil
		}))
	})
}
