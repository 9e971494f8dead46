package seal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
)

func TestBackupAndMerge(t *testing.T) {
	ctx := t.Context()
	k, cfg := newTestKeyring(t)
	sealedA := mustSeal(t, k, "pat-a", "dev:1", []byte("a"))
	sealedB := mustSeal(t, k, "pat-b", "dev:1", []byte("b"))
	backup := filepath.Join(t.TempDir(), "keyring.db")
	require.NoError(t, k.Backup(ctx, backup))

	t.Run("the copy opens with the master key and opens what was sealed", func(t *testing.T) {
		n, err := CheckKeyringFile(ctx, backup, cfg.MasterKey)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		c, err := OpenKeyring(ctx, KeyringConfig{Path: copyFile(t, backup), MasterKey: cfg.MasterKey})
		require.NoError(t, err)
		defer func() { assert.NoError(t, c.Close()) }()
		got, err := c.Open(ctx, "pat-a", "dev:1", sealedA)
		require.NoError(t, err)
		assert.Equal(t, []byte("a"), got)
	})
	t.Run("another master key is refused", func(t *testing.T) {
		_, err := CheckKeyringFile(ctx, backup, testkit.RandomBytes(t, MasterKeySize))
		require.ErrorIs(t, err, ErrWrongMasterKey)
		other, _ := newTestKeyring(t)
		_, err = other.Merge(ctx, backup, MergeOptions{})
		require.ErrorIs(t, err, ErrWrongMasterKey)
	})
	t.Run("an existing file is not overwritten", func(t *testing.T) {
		require.ErrorContains(t, k.Backup(ctx, backup), "exists")
	})

	// After the backup: a new patient, a rotated key, an erasure.
	mustSeal(t, k, "pat-c", "dev:1", []byte("c"))
	_, err := k.Rotate(ctx, "pat-a")
	require.NoError(t, err)
	require.NoError(t, k.Shred(ctx, "pat-b"))

	t.Run("a keyring restored from the copy takes the later erasure, and only that, with ErasuresOnly", func(t *testing.T) {
		restored, err := OpenKeyring(ctx, KeyringConfig{Path: copyFile(t, backup), MasterKey: cfg.MasterKey})
		require.NoError(t, err)
		defer func() { assert.NoError(t, restored.Close()) }()
		current := filepath.Join(t.TempDir(), "current.db")
		require.NoError(t, k.Backup(ctx, current))
		st, err := restored.Merge(ctx, current, MergeOptions{ErasuresOnly: true})
		require.NoError(t, err)
		assert.Equal(t, MergeStats{Erased: 1}, st)
		_, err = restored.Open(ctx, "pat-b", "dev:1", sealedB)
		require.ErrorIs(t, err, ErrErased, "the erasure after the backup stays")
		_, err = restored.Seal(ctx, "pat-c", "dev:2", []byte("x"))
		require.NoError(t, err, "a patient unknown to the copy starts afresh")
	})
	t.Run("the current keyring takes what it lacks from the copy and never un-erases", func(t *testing.T) {
		lost := filepath.Join(t.TempDir(), "lost.db")
		fresh, err := OpenKeyring(ctx, KeyringConfig{Path: lost, MasterKey: cfg.MasterKey})
		require.NoError(t, err)
		defer func() { assert.NoError(t, fresh.Close()) }()
		require.NoError(t, fresh.Shred(ctx, "pat-a"))
		st, err := fresh.Merge(ctx, backup, MergeOptions{})
		require.NoError(t, err)
		assert.Equal(t, MergeStats{Patients: 1}, st, "pat-b added whole; pat-a stays erased")
		got, err := fresh.Open(ctx, "pat-b", "dev:1", sealedB)
		require.NoError(t, err)
		assert.Equal(t, []byte("b"), got)
		_, err = fresh.Open(ctx, "pat-a", "dev:1", sealedA)
		require.ErrorIs(t, err, ErrErased)
	})
	t.Run("a patient's keys missing from the current keyring are added", func(t *testing.T) {
		current := filepath.Join(t.TempDir(), "current.db")
		require.NoError(t, k.Backup(ctx, current))
		c, err := OpenKeyring(ctx, KeyringConfig{Path: current, MasterKey: cfg.MasterKey})
		require.NoError(t, err)
		defer func() { assert.NoError(t, c.Close()) }()
		st, err := c.Merge(ctx, backup, MergeOptions{})
		require.NoError(t, err)
		assert.Equal(t, MergeStats{}, st, "the current keyring holds pat-a's keys, pat-b's erasure and pat-c")
		got, err := c.Open(ctx, "pat-a", "dev:1", sealedA)
		require.NoError(t, err, "a reading sealed before the rotation still opens")
		assert.Equal(t, []byte("a"), got)
	})
}

// copyFile copies a keyring file, so that opening it leaves the original
// as it was.
func copyFile(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, b, 0o600))
	return dst
}
