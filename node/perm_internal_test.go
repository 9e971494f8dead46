package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRestrictEntrySkipsVanishedFiles: a file listed by the walk and
// renamed away before it is looked at (a store's temporary file) is
// skipped, not an error that fails Open.
func TestRestrictEntrySkipsVanishedFiles(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".events.checkpoint.tmp")
	require.NoError(t, os.WriteFile(tmp, []byte("x"), 0o644))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "events.checkpoint")))
	assert.NoError(t, restrictEntry(tmp, entries[0], nil), "the listed file is gone")

	kept := filepath.Join(dir, "kept")
	require.NoError(t, os.WriteFile(kept, []byte("x"), 0o644))
	require.NoError(t, restrictPermissions(dir))
	info, err := os.Stat(kept)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "files still made private")
}
