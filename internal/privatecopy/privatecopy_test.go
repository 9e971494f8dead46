package privatecopy_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/privatecopy"
)

func TestTree(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "a", "b"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("hello"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "top"), []byte("x"), 0o644))

	t.Run("a tree is copied with private modes", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "copy")
		require.NoError(t, privatecopy.Tree(src, dst))
		got, err := os.ReadFile(filepath.Join(dst, "a", "b", "f"))
		require.NoError(t, err)
		assert.Equal(t, "hello", string(got))
		for _, p := range []string{dst, filepath.Join(dst, "a"), filepath.Join(dst, "a", "b"), filepath.Join(dst, "top")} {
			info, err := os.Stat(p)
			require.NoError(t, err)
			assert.Zero(t, info.Mode().Perm()&0o077, "%s is %v", p, info.Mode().Perm())
		}
	})
	t.Run("a single file is copied", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "one")
		require.NoError(t, privatecopy.Tree(filepath.Join(src, "top"), dst))
		got, err := os.ReadFile(dst)
		require.NoError(t, err)
		assert.Equal(t, "x", string(got))
	})
	t.Run("an existing file is never overwritten", func(t *testing.T) {
		dst := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dst, "top"), []byte("keep"), 0o600))
		assert.Error(t, privatecopy.Tree(src, dst))
		got, err := os.ReadFile(filepath.Join(dst, "top"))
		require.NoError(t, err)
		assert.Equal(t, "keep", string(got))
	})
	t.Run("a symlink is refused", func(t *testing.T) {
		link := t.TempDir()
		require.NoError(t, os.Symlink(filepath.Join(src, "top"), filepath.Join(link, "l")))
		assert.Error(t, privatecopy.Tree(link, filepath.Join(t.TempDir(), "c")))
	})
}
