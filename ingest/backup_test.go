package ingest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQueueBackup(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 100)
	recs := []Record{{Item: item("d1", 1, "a")}, {Item: item("d1", 2, "b")}, {Item: item("d1", 3, "c")}}
	errs, err := q.Append(t.Context(), recs)
	require.NoError(t, err)
	for _, e := range errs {
		require.NoError(t, e)
	}
	require.NoError(t, q.Done(t.Context(), recs[:1], []Outcome{{RecordID: recs[0].ID, State: StateRecorded, TxID: "tx1", Block: 7}}))
	backup := filepath.Join(t.TempDir(), "backup.db")
	require.NoError(t, q.Backup(t.Context(), backup))

	t.Run("the copy checks and counts pending and retained readings", func(t *testing.T) {
		st, err := CheckQueueFile(t.Context(), backup)
		require.NoError(t, err)
		assert.Equal(t, QueueFileStats{Pending: 2, Retained: 1}, st)
	})
	t.Run("the copy opens with the pending records and the queue's memory", func(t *testing.T) {
		c, pending := openTestQueue(t, backup, 100)
		assert.Len(t, pending, 2)
		seen, err := c.Lookup("d1", 1)
		require.NoError(t, err)
		assert.Equal(t, StateRecorded, seen.State)
		assert.Equal(t, uint64(7), seen.Block)
	})
	t.Run("an existing file is not overwritten", func(t *testing.T) {
		require.Error(t, q.Backup(t.Context(), backup))
	})
	t.Run("a queue in use is reported, not read", func(t *testing.T) {
		_, err := CheckQueueFile(t.Context(), q.cfg.Path)
		require.ErrorContains(t, err, "is a node using it?")
	})
	t.Run("a file that is not a queue is unreadable", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.db")
		require.NoError(t, os.WriteFile(bad, []byte("not a bbolt file"), 0o600))
		_, err := CheckQueueFile(t.Context(), bad)
		require.Error(t, err)
	})
	t.Run("a missing file is reported as missing", func(t *testing.T) {
		_, err := CheckQueueFile(t.Context(), filepath.Join(t.TempDir(), "none.db"))
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}
